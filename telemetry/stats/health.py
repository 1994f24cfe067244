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

import numpy as np

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
POINTS = 4000
"""Health samples (and system samples per key) returned at most; past it they are thinned."""
GAUGES = ("pending", "queued", f"{PREFIX}intake")
"""Levels rather than counts: a thinned bucket keeps its highest, so a backlog never hides."""


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


def thin(values: Sequence[Any], size: int, highest: bool) -> list[Any]:
    """One value per bucket of ``size`` consecutive samples: the last (cumulative counts, as
    they stand at the bucket's end), or the highest (levels such as pending)."""
    if size <= 1:
        return list(values)
    out = []
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        if highest:
            present = [v for v in chunk if v is not None]
            out.append(max(present) if present else None)
        else:
            out.append(chunk[-1])
    return out


def bucket_size(count: int, points: int) -> int:
    """Samples per bucket so that ``count`` samples make at most ``points``."""
    return max(1, -(-count // max(1, points)))


def _pick(series: dict[str, list[Any]], points: int) -> dict[str, list[Any]]:
    """At most ``points`` of one system key, by min/max-LTTB (tsdownsample): its peaks and
    troughs stay."""
    if len(series["y"]) <= points:
        return series
    from tsdownsample import MinMaxLTTBDownsampler, NaNMinMaxLTTBDownsampler

    x = np.asarray(series["time"], dtype=np.float64)
    y = np.asarray([np.nan if v is None else v for v in series["y"]], dtype=np.float64)
    finite = bool(np.isfinite(y).all())
    sampler = MinMaxLTTBDownsampler() if finite else NaNMinMaxLTTBDownsampler()  # type: ignore[no-untyped-call]
    keep = sampler.downsample(x, y, n_out=max(points, 4)).tolist()
    return {name: [values[i] for i in keep] for name, values in series.items()}


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
    last_seq: int = 0
    """The last event read: a page following the log from before it skips up to here."""

    def add(self, event: Event) -> None:
        self.last_seq = event.seq
        if isinstance(event, Health):
            self.samples.append(event)
        elif isinstance(event, Metrics):
            if any(key.startswith(SYSTEM) for key in event.values):
                self.metrics.append(event)
        elif isinstance(event, Alert):
            self.alerts.append(event)
        elif isinstance(event, LogRecord):
            self.records.append(event)


def health_view(run_dir: Path, points: int = POINTS) -> dict[str, Any]:
    """Everything the health page and report show about the run folder at ``run_dir``;
    series of more than ``points`` samples are thinned (whether a sink is behind is
    decided on every sample)."""
    found = _Collected()
    problems: list[dict[str, Any]] = []
    reader = LogReader(run_dir)
    try:
        for event in reader:
            found.add(event)
    except LogFormatError as exc:  # not a log at all: say so, show nothing else
        problems.append({"line": 1, "reason": str(exc)})
    problems.extend({"line": p.line, "reason": p.reason} for p in reader.problems)
    size = bucket_size(len(found.samples), points)
    sinks = []
    for series in sink_series(found.samples):
        reasons = behind_reasons(series)
        values = {k: thin(v, size, k in GAUGES) for k, v in series.values.items()}
        sinks.append({"name": series.name, **values, "behind": bool(reasons), "reasons": reasons})
    pipeline = {k: thin(v, size, k in GAUGES) for k, v in pipeline_series(found.samples).items()}
    rows = event_rows(found.records, RECORD_FIELDS)
    return {
        "time": thin([s.time for s in found.samples], size, False),
        "step": thin([s.step for s in found.samples], size, False),
        "samples": len(found.samples),
        "last_seq": found.last_seq,
        "growing": GROWING,
        "thinned": size > 1,
        "sinks": sinks,
        "behind": [s["name"] for s in sinks if s["behind"]],
        "pipeline": pipeline,
        "system": {k: _pick(v, points) for k, v in system_series(found.metrics).items()},
        "alerts": event_rows(found.alerts, ALERT_FIELDS),
        "records": rows[-RECORDS_KEPT:],
        "records_total": len(rows),
        "problems": problems,
    }
