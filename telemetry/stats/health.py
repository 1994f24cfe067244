"""A run's pipeline health and system views, from its durable log.

The bus publishes ``health`` events (``telemetry/published``, ``telemetry/intake...`` and
per sink ``telemetry/<sink>/{delivered,failed,queued,spilled,pending}``, see
``telemetry.report.health_values``); ``health_view`` turns them into one series per sink
and field over time, flags a sink that is behind, and adds the run's ``system/`` metrics,
its alerts and its log records. Every value is JSON-ready (non-finite numbers are None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from telemetry.errors import LogFormatError
from telemetry.events import Alert, Event, Health, LogRecord, Metrics
from telemetry.reader import LogReader

SINK_FIELDS = ("delivered", "failed", "queued", "spilled", "pending")
"""What a health event counts per sink (cumulative counts, except queued and pending)."""
PREFIX = "telemetry/"
SYSTEM = "system/"
GROWING = 3
"""A sink whose pending count rose over this many health samples in a row is behind."""
RECORDS_KEPT = 1000
"""Log records returned at most (the last ones); the total is given beside them."""


@dataclass(slots=True)
class SinkSeries:
    """One sink's counts at each health sample (None where a sample lacks the sink)."""

    name: str
    values: dict[str, list[float | None]] = field(default_factory=dict)

    def last(self, name: str) -> float:
        present = [v for v in self.values.get(name, []) if v is not None]
        return present[-1] if present else 0.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def sink_names(samples: Iterable[Health]) -> list[str]:
    """Every sink named in the samples, in the order first seen."""
    names: dict[str, None] = {}
    for sample in samples:
        for key in sample.values:
            rest = key.removeprefix(PREFIX)
            sink, slash, what = rest.rpartition("/")
            if key.startswith(PREFIX) and slash and what in SINK_FIELDS:
                names.setdefault(sink, None)
    return list(names)


def sink_series(samples: Sequence[Health]) -> list[SinkSeries]:
    """Per sink, each field's value at every sample."""
    out = []
    for name in sink_names(samples):
        series = SinkSeries(name)
        for what in SINK_FIELDS:
            key = f"{PREFIX}{name}/{what}"
            series.values[what] = [_number(s.values.get(key)) for s in samples]
        out.append(series)
    return out


def pipeline_series(samples: Sequence[Health]) -> dict[str, list[float | None]]:
    """The bus's own counters (``telemetry/<name>`` without a sink), at every sample."""
    keys: dict[str, None] = {}
    for sample in samples:
        for key in sample.values:
            if key.startswith(PREFIX) and "/" not in key.removeprefix(PREFIX):
                keys.setdefault(key, None)
    return {key: [_number(s.values.get(key)) for s in samples] for key in keys}


def behind_reasons(series: SinkSeries) -> list[str]:
    """Why the sink is behind: events failed, events spilled (it fell behind and read them
    back from the log), or pending rising over the last ``GROWING`` samples; empty if not."""
    reasons = []
    failed, spilled = series.last("failed"), series.last("spilled")
    if failed > 0:
        reasons.append(f"{failed:g} failed")
    if spilled > 0:
        reasons.append(f"{spilled:g} spilled")
    pending = [v for v in series.values.get("pending", []) if v is not None]
    tail = pending[-(GROWING + 1) :]
    if len(tail) == GROWING + 1 and all(b > a for a, b in pairwise(tail)):
        reasons.append(f"pending growing ({tail[0]:g} to {tail[-1]:g})")
    return reasons


def system_series(metrics: Iterable[Metrics]) -> dict[str, dict[str, list[Any]]]:
    """Each ``system/`` key: its sample steps, times and values, in log order."""
    out: dict[str, dict[str, list[Any]]] = {}
    for event in metrics:
        for key, value in event.values.items():
            if key.startswith(SYSTEM):
                series = out.setdefault(key, {"x": [], "time": [], "y": []})
                series["x"].append(event.step)
                series["time"].append(event.time)
                series["y"].append(_number(value))
    return dict(sorted(out.items()))


ALERT_FIELDS = ("time", "level", "title", "text", "key", "step", "axis")
RECORD_FIELDS = ("time", "level", "logger", "message", "fields")


def event_rows(events: Iterable[Event], names: Sequence[str]) -> list[dict[str, Any]]:
    """The ``names`` fields of each event (alerts, log records), in log order."""
    return [{name: _plain(getattr(event, name)) for name in names} for event in events]


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


@dataclass(slots=True)
class _Collected:
    """The events of a log the views read, sorted by kind."""

    samples: list[Health] = field(default_factory=list)
    metrics: list[Metrics] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    records: list[LogRecord] = field(default_factory=list)

    def add(self, event: Event) -> None:
        if isinstance(event, Health):
            self.samples.append(event)
        elif isinstance(event, Metrics):
            if any(key.startswith(SYSTEM) for key in event.values):
                self.metrics.append(event)
        elif isinstance(event, Alert):
            self.alerts.append(event)
        elif isinstance(event, LogRecord):
            self.records.append(event)


def health_view(run_dir: Path) -> dict[str, Any]:
    """Everything the health page and report show about the run folder at ``run_dir``."""
    found = _Collected()
    problems: list[dict[str, Any]] = []
    reader = LogReader(run_dir)
    try:
        for event in reader:
            found.add(event)
    except LogFormatError as exc:  # not a log at all: say so, show nothing else
        problems.append({"line": 1, "reason": str(exc)})
    problems.extend({"line": p.line, "reason": p.reason} for p in reader.problems)
    sinks = []
    for series in sink_series(found.samples):
        reasons = behind_reasons(series)
        sinks.append(
            {"name": series.name, **series.values, "behind": bool(reasons), "reasons": reasons}
        )
    rows = event_rows(found.records, RECORD_FIELDS)
    return {
        "time": [s.time for s in found.samples],
        "step": [s.step for s in found.samples],
        "sinks": sinks,
        "behind": [s["name"] for s in sinks if s["behind"]],
        "pipeline": pipeline_series(found.samples),
        "system": system_series(found.metrics),
        "alerts": event_rows(found.alerts, ALERT_FIELDS),
        "records": rows[-RECORDS_KEPT:],
        "records_total": len(rows),
        "problems": problems,
    }
