"""The performance report: the last runs compared, learning curves, final and best values, config.

"Main metrics" are the ``metrics`` and ``evaluation`` keys of the runs outside
the pipeline's and the machine's own namespaces (``telemetry/``, ``system/``)
and the bookkeeping ones (``buffer/``, ``training/`` timings), the
trainers' headline namespaces first (``fitness/``, ``validation/``,
``eval/``, ``episode/``, ``rewards/``...); the first ``MAX_CURVES`` get a chart,
every one gets a row in the tables.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from tsdownsample import MinMaxLTTBDownsampler

from telemetry.params import dotted
from telemetry.reports.document import Cell, Chart, Report, Section, Series, Table
from telemetry.reports.runs import KeySeries, RunLog

MAX_CURVES = 12
"""Learning-curve charts at most; the tables list every main key."""
MAX_POINTS = 1500
"""Points per run and chart beyond which a curve is thinned (min/max-LTTB, extremes kept)."""
HEADLINE = (
    "fitness",
    "validation",
    "eval",
    "episode",
    "rewards",
    "performance",
    "charts",
    "train",
    "losses",
)
"""Namespaces in the order their keys are charted; others follow, alphabetically."""
BOOKKEEPING = ("telemetry", "system", "buffer", "training")
"""Namespaces left out: the pipeline's counters, the machine, buffer fill and timings."""
_LOWER_IS_BETTER = ("loss", "error", "mae", "rmse", "mse", "cost", "drawdown", "time")


def lower_is_better(key: str) -> bool:
    """Whether a key's best value is its lowest (losses, errors, costs), by its name."""
    return any(word in key.lower() for word in _LOWER_IS_BETTER)


def main_keys(runs: Sequence[RunLog]) -> list[str]:
    """The runs' main metric keys, headline namespaces first."""
    keys = {k for run in runs for k in run.series if k.split("/")[0] not in BOOKKEEPING}

    def rank(key: str) -> tuple[int, str]:
        space = key.split("/")[0]
        return (HEADLINE.index(space) if space in HEADLINE else len(HEADLINE), key)

    return sorted(keys, key=rank)


def labels(runs: Sequence[RunLog]) -> list[str]:
    """A short distinct label per run: its name, with its run id when names repeat."""
    names = [run.name or run.folder.run_id for run in runs]
    return [
        name if names.count(name) == 1 else f"{name} ({run.folder.run_id})"
        for name, run in zip(names, runs, strict=True)
    ]


def performance_report(runs: Sequence[RunLog], source: str) -> Report:
    """The report comparing ``runs`` (oldest first)."""
    names = labels(runs)
    keys = main_keys(runs)
    title = f"Performance of the last {len(runs)} runs" if len(runs) > 1 else "Performance of a run"
    report = Report(title=title, source=source)
    report.sections.append(Section("Runs", items=[_runs_table(runs, names)]))
    charted = keys[:MAX_CURVES]
    left = keys[MAX_CURVES:]
    text = "One chart per main metric key, every run overlaid; x is the key's step axis."
    if left:
        text += f" Not charted ({len(left)}, in the tables below): {', '.join(left)}."
    charts: list[Chart | Table] = [_curve(key, runs, names) for key in charted]
    report.sections.append(Section("Learning curves", text, charts))
    report.sections.append(
        Section(
            "Final and best values",
            "Final: the key's last logged value. Best: its highest, or its lowest for losses, "
            "errors, costs and times.",
            [
                _values_table("Final values", keys, runs, names, best=False),
                _values_table("Best values", keys, runs, names, best=True),
            ],
        )
    )
    report.sections.append(_config_section(runs, names))
    return report


def _runs_table(runs: Sequence[RunLog], names: list[str]) -> Table:
    rows: list[list[Cell]] = [
        [
            name,
            run.folder.run_id,
            run.trainer,
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run.folder.start)),
            None if run.duration is None else round(run.duration, 1),
            run.status,
            run.folder.id,
        ]
        for name, run in zip(names, runs, strict=True)
    ]
    columns = ["run", "run id", "trainer", "started", "duration (s)", "status", "folder"]
    return Table("Runs compared", columns, rows)


def _curve(key: str, runs: Sequence[RunLog], names: list[str]) -> Chart:
    """One key's series of every run, on the union of their (thinned) steps."""
    thinned = {
        name: _thin(run.series[key])
        for name, run in zip(names, runs, strict=True)
        if key in run.series
    }
    steps = sorted({s for xs, _ in thinned.values() for s in xs})
    series = []
    for name, (xs, ys) in thinned.items():
        at = dict(zip(xs, ys, strict=True))
        series.append(Series(name, [at.get(s) for s in steps]))
    axis = next(run.series[key].axis for run in runs if key in run.series)
    chart_id = "curve-" + "".join(c if c.isalnum() else "-" for c in key)
    return Chart(chart_id, key, steps, series, x_label=axis, y_label=key)


def _thin(series: KeySeries) -> tuple[list[float], list[float]]:
    """The series' finite points, down to about ``MAX_POINTS`` with its extremes kept."""
    x = np.asarray(series.steps, dtype=np.float64)
    y = np.asarray(series.values, dtype=np.float64)
    finite = np.isfinite(y)
    x, y = x[finite], y[finite]
    if x.size > MAX_POINTS:
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        sampler = MinMaxLTTBDownsampler()  # type: ignore[no-untyped-call]  # untyped constructor
        keep = sampler.downsample(x, y, n_out=MAX_POINTS).astype(np.int64)
        keep = np.unique(np.concatenate([keep, [int(np.argmin(y)), int(np.argmax(y))]]))
        x, y = x[keep], y[keep]
    return x.tolist(), y.tolist()


def _values_table(
    title: str, keys: list[str], runs: Sequence[RunLog], names: list[str], *, best: bool
) -> Table:
    rows: list[list[Cell]] = []
    for key in keys:
        row: list[Cell] = [key]
        for run in runs:
            series = run.series.get(key)
            if series is None:
                row.append(None)
            else:
                row.append(series.best(lower_is_better(key)) if best else series.last())
        rows.append(row)
    return Table(title, ["key", *names], rows)


def _config_section(runs: Sequence[RunLog], names: list[str]) -> Section:
    flats = [dotted(run.config) for run in runs]
    keys = sorted({k for flat in flats for k in flat})
    missing = object()
    differing = [k for k in keys if len({_text(f.get(k, missing)) for f in flats}) > 1]
    rows: list[list[Cell]] = [
        [key, *(_cell(flat.get(key, missing), missing) for flat in flats)] for key in differing
    ]
    text = (
        f"The {len(differing)} config keys whose values differ between the runs "
        f"(of {len(keys)}; from each log's run_started event)."
    )
    if len(runs) < 2:
        text = "A single run: nothing to compare."
    return Section("Config differences", text, [Table("Config differences", ["key", *names], rows)])


def _text(value: object) -> str:
    return repr(value)


def _cell(value: object, missing: object) -> Cell:
    if value is missing:
        return "(absent)"
    if isinstance(value, bool) or value is None or isinstance(value, list | dict | tuple):
        return str(value)
    if isinstance(value, int | float | str):
        return value
    return str(value)
