"""The sweep report: trials table, parameter importance, parallel coordinates, best config.

The numbers are ``telemetry.stats.sweeps.sweep_view``'s, the same the
dashboard's sweep page shows: ``results.jsonl`` for the ended trials, the
sweep's journal for the running ones and for fANOVA importance.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from telemetry.errors import ConfigError
from telemetry.reports.document import Cell, Chart, Report, Section, Series, Table
from telemetry.stats.sweeps import sweep_view
from telemetry.sweep.folder import META_FILE

BEST = "#2e9e5b"
WORST = "#d1495b"


def find_sweeps(root: Path) -> list[tuple[str, Path]]:
    """``(sweep id, folder)`` of every sweep folder under ``root``, oldest first."""
    found: list[tuple[float, str, Path]] = []
    for meta in root.rglob(META_FILE):
        try:
            sweep_id = str(json.loads(meta.read_text(encoding="utf-8"))["id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.append((meta.stat().st_mtime, sweep_id, meta.parent))
    return [(sweep_id, path) for _, sweep_id, path in sorted(found)]


def pick_sweep(root: Path, sweep_id: str | None) -> tuple[str, Path]:
    """The id and folder of the sweep under ``root`` with that id or folder name (the latest
    when ``None``)."""
    sweeps = find_sweeps(root)
    if not sweeps:
        raise ConfigError(f"--runs: no sweep under {root} (no folder holding {META_FILE})")
    if sweep_id is None:
        return sweeps[-1]
    for found, path in reversed(sweeps):
        if sweep_id in (found, path.name):
            return found, path
    known = ", ".join(found for found, _ in sweeps[-5:])
    raise ConfigError(f"--run-id: no sweep {sweep_id!r} under {root} (sweep ids: {known})")


def sweep_report(path: Path, source: str) -> Report:
    """The report of the sweep folder at ``path``."""
    view = sweep_view(path)
    report = Report(title=f"Sweep {view['id']}", source=source)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(view["counts"].items()))
    about = Table(
        "Sweep",
        ["sweep id", "method", "metric", "goal", "trials"],
        [[view["id"], view["method"], view["metric"], view["goal"], counts or "none"]],
    )
    report.sections += [
        Section("Sweep", _problems(view), [about]),
        _best_section(view),
        Section("Trials", "Stopped trials (hyperband) are marked stopped.", [_trials(view)]),
        _importance_section(view),
        _parallel_section(view),
        _best_so_far_section(view),
    ]
    return report


def _problems(view: dict[str, Any]) -> str:
    problems = view["problems"]
    if not problems:
        return ""
    listed = "; ".join(f"{p['file']} line {p['line']}: {p['reason']}" for p in problems[:5])
    return f"Problems reading the sweep: {listed}."


def _best_section(view: dict[str, Any]) -> Section:
    best = view["best"]
    if best is None:
        return Section("Best config", "No trial has finished with a value of the metric yet.")
    rows: list[list[Cell]] = [[name, _cell(v)] for name, v in sorted(best["params"].items())]
    line = " ".join(f"{name}={json.dumps(v)}" for name, v in sorted(best["params"].items()))
    text = (
        f"Trial {best['number']} ({best['state']}): best {view['metric']} = "
        f"{best['best']:.6g}, last {_text(best['last'])}. As overrides: `{line}`"
    )
    return Section("Best config", text, [Table("Best config", ["parameter", "value"], rows)])


def _trials(view: dict[str, Any]) -> Table:
    names = sorted({name for t in view["trials"] for name in t["params"]})
    rows: list[list[Cell]] = [
        [
            t["number"],
            t["state"],
            *(_cell(t["params"].get(name)) for name in names),
            t["best"],
            t["last"],
            t["duration"],
        ]
        for t in view["trials"]
    ]
    metric = view["metric"] or "objective"
    columns = ["trial", "state", *names, f"best {metric}", f"last {metric}", "duration (s)"]
    return Table("Trials", columns, rows)


def _importance_section(view: dict[str, Any]) -> Section:
    weights = view["importance"]["values"]
    note = view["importance"]["note"] or ""
    if not weights:
        return Section("Parameter importance", note or "No importance could be computed.")
    names = list(weights)
    chart = Chart(
        "importance",
        "Parameter importance (fANOVA)",
        [float(i) for i in range(len(names))],
        [Series("importance", [weights[n] for n in names])],
        kind="bars",
        x_label="parameter",
        y_label="importance",
        x_ticks=names,
        legend=False,
    )
    table = Table(
        "Parameter importance", ["parameter", "importance"], [[n, weights[n]] for n in names]
    )
    return Section("Parameter importance", note, [chart, table])


def _parallel_section(view: dict[str, Any]) -> Section:
    parallel = view["parallel"]
    axes = [*parallel["axes"], parallel["metric"]]
    lines = parallel["lines"]
    if not lines or not parallel["axes"]:
        return Section(
            "Parallel coordinates",
            "No trial with a value of the metric and a varying parameter yet.",
        )
    x = [float(i) for i in range(len(axes))]
    values = [line["value"] for line in lines]
    low, high = min(values), max(values)
    maximize = view["goal"] == "maximize"
    series = []
    for line in lines:
        points = [_position(axis, line["params"].get(axis["name"])) for axis in parallel["axes"]]
        points.append(_position(parallel["metric"], line["value"]))
        share = 0.5 if high == low else (line["value"] - low) / (high - low)
        series.append(
            Series(f"trial {line['trial']}", points, _ramp(share if maximize else 1 - share))
        )
    ranges = Table(
        "Axes",
        ["axis", "kind", "from (0)", "to (1)"],
        [[a["name"], a["kind"], *_ends(a)] for a in axes],
    )
    chart = Chart(
        "parallel",
        "Parallel coordinates",
        x,
        series,
        x_label="parameter",
        y_label="position on the axis (0 to 1)",
        x_ticks=[a["name"] for a in axes],
        legend=False,
    )
    text = (
        "One line per trial with a value of the metric, each axis scaled from its lowest (0) to "
        "its highest (1) value (log axes on a log scale, categories evenly); green: better."
    )
    return Section("Parallel coordinates", text, [chart, ranges])


def _best_so_far_section(view: dict[str, Any]) -> Section:
    curve = view["best_so_far"]
    if not curve["order"]:
        return Section("Best so far", "No trial has ended yet.")
    chart = Chart(
        "best-so-far",
        "Best so far",
        [float(i) for i in curve["order"]],
        [
            Series("trial's value", curve["value"], kind="points"),
            Series("best so far", curve["best"], BEST),
        ],
        x_label="trials ended",
        y_label=view["metric"] or "objective",
    )
    return Section("Best so far", "Each ended trial's objective, in end order.", [chart])


def _position(axis: dict[str, Any], value: Any) -> float | None:
    """Where ``value`` sits on ``axis``, 0 (lowest) to 1 (highest)."""
    if axis["kind"] == "categorical":
        options = axis["values"]
        if value not in options:
            return None
        return 0.5 if len(options) < 2 else options.index(value) / (len(options) - 1)
    if not isinstance(value, int | float) or isinstance(value, bool) or axis["min"] is None:
        return None
    low, high, number = float(axis["min"]), float(axis["max"]), float(value)
    if axis.get("log") and low > 0 and number > 0:
        low, high, number = math.log(low), math.log(high), math.log(number)
    return 0.5 if high == low else (number - low) / (high - low)


def _ends(axis: dict[str, Any]) -> list[Cell]:
    if axis["kind"] == "categorical":
        values = axis["values"]
        return [_cell(values[0]) if values else None, _cell(values[-1]) if values else None]
    return [axis["min"], axis["max"]]


def _ramp(share: float) -> str:
    """A colour from the worst (0) to the best (1)."""
    worst = [int(WORST[i : i + 2], 16) for i in (1, 3, 5)]
    best = [int(BEST[i : i + 2], 16) for i in (1, 3, 5)]
    mixed = [round(w + (b - w) * share) for w, b in zip(worst, best, strict=True)]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def _cell(value: Any) -> Cell:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return json.dumps(value)
    return value


def _text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"
