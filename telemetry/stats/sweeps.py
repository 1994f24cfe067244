"""A sweep folder's views: trials table, parallel coordinates, importance, best so far, best config.

Pure functions over what a sweep folder holds (see README "Sweeps"): ``results.jsonl``
(one line per ended trial, in end order) is the record of every ended trial; the engine's
storage adds the trials not ended yet (running, waiting) and gives parameter importance
(fANOVA, ``telemetry.sweep.show.importance``). The dashboard and the sweep report read
the same ``sweep_view``; every value in it is JSON-ready (non-finite numbers are None).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from telemetry.errors import TelemetryError
from telemetry.reader import LOG_NAME, Problem
from telemetry.sweep.folder import JOURNAL_FILE, RESULTS_FILE, SWEEP_FILE, SweepFolder, find_sweep
from telemetry.sweep.show import TrialRow, importance, rows
from telemetry.sweep.spec import SweepSpec

WITH_VALUE = ("finished", "stopped")
"""Outcomes whose trial has an objective (its best value of the metric)."""


@dataclass(frozen=True, slots=True)
class Trial(TrialRow):
    """One trial of the sweep, ended (from ``results.jsonl``) or not (from the engine).

    ``state``: finished, stopped, failed, interrupted (ended); running, waiting (not yet);
    ``best`` is the objective (the best value of the metric) of finished and stopped trials.
    """

    values: int | None = None
    """How many values of the metric the trial logged."""
    error: str | None = None

    @property
    def stopped(self) -> bool:
        return self.state == "stopped"

    @property
    def objective(self) -> float | None:
        return self.best if self.state in WITH_VALUE else None


def read_results(path: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The records of ``results.jsonl`` in end order, and the lines that are not records."""
    records: list[dict[str, Any]] = []
    problems: list[Problem] = []
    if not path.is_file():
        return records, problems
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError as exc:
                if raw.endswith(b"\n"):  # else the agent is writing it now: next time
                    problems.append(Problem(number, f"not valid JSON ({exc})"))
                continue
            if not isinstance(record, dict) or not isinstance(record.get("trial"), int):
                problems.append(Problem(number, "not a trial record (no integer 'trial')"))
                continue
            records.append(record)
    return records, problems


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def trials_from_results(records: Sequence[dict[str, Any]]) -> list[Trial]:
    """One ``Trial`` per record, in end order (a trial number written twice: the last wins)."""
    found: dict[int, Trial] = {}
    for record in records:
        number = int(record["trial"])
        found.pop(number, None)  # keeps end order: the later record moves to the end
        values = record.get("values")
        found[number] = Trial(
            number=number,
            state=str(record.get("outcome") or "failed"),
            params=dict(params) if isinstance(params := record.get("params"), dict) else {},
            best=_number(record.get("best")),
            last=_number(record.get("last")),
            values=values if isinstance(values, int) and not isinstance(values, bool) else None,
            duration=_number(record.get("duration")),
            run_dir=record.get("run_dir") if isinstance(record.get("run_dir"), str) else None,
            error=record.get("error") if isinstance(record.get("error"), str) else None,
        )
    return list(found.values())


def parallel_coordinates(
    trials: Sequence[Trial], spec: SweepSpec | None, metric: str | None
) -> dict[str, Any]:
    """Axes (per parameter: a numeric range or categorical values, then the metric) and one
    line per trial with an objective; constant parameters are left out."""
    distributions = {p.name: p for p in spec.params} if spec is not None else {}
    names = sorted({name for t in trials for name in t.params})
    lined = [t for t in trials if t.objective is not None]
    axes: list[dict[str, Any]] = []
    for name in names:
        param = distributions.get(name)
        if param is not None and param.distribution == "constant":
            continue
        seen = [t.params[name] for t in trials if name in t.params]
        if param is None and len({json.dumps(v, sort_keys=True) for v in seen}) < 2:
            continue
        axes.append(_axis(name, seen, param.distribution if param else None, param))
    objectives = [t.objective for t in lined if t.objective is not None]
    metric_axis = {
        "name": metric or "objective",
        "kind": "numeric",
        "min": min(objectives, default=None),
        "max": max(objectives, default=None),
        "log": False,
    }
    lines = [
        {
            "trial": t.number,
            "state": t.state,
            "params": {a["name"]: t.params.get(a["name"]) for a in axes},
            "value": t.objective,
        }
        for t in lined
    ]
    return {"axes": axes, "metric": metric_axis, "lines": lines}


def _axis(name: str, seen: list[Any], distribution: str | None, param: Any) -> dict[str, Any]:
    numbers = [float(v) for v in seen if _number(v) is not None]
    if seen and len(numbers) == len(seen):  # numbers listed as values are still an order
        return {
            "name": name,
            "kind": "numeric",
            "min": min(numbers),
            "max": max(numbers),
            "log": bool(distribution and "log" in distribution and min(numbers) > 0),
        }
    listed = list(param.values) if param is not None and param.values else []
    values = listed + [v for v in _unique(seen) if v not in listed]
    return {"name": name, "kind": "categorical", "values": values}


def _unique(values: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def best_so_far(trials: Sequence[Trial], maximize: bool) -> dict[str, list[Any]]:
    """Over the ended trials in end order: each one's objective (None: failed, interrupted)
    and the best objective so far (None until the first)."""
    ended = [t for t in trials if t.state not in ("running", "waiting")]
    order, numbers, values, best = [], [], [], []
    current: float | None = None
    for index, trial in enumerate(ended, start=1):
        value = trial.objective
        if value is not None and (
            current is None or (value > current if maximize else value < current)
        ):
            current = value
        order.append(index)
        numbers.append(trial.number)
        values.append(value)
        best.append(current)
    return {"order": order, "trial": numbers, "value": values, "best": best}


def best_trial(trials: Sequence[Trial], maximize: bool) -> Trial | None:
    """The trial with the best objective (the first one ended, on a tie)."""
    done = [t for t in trials if t.objective is not None]
    if not done:
        return None
    pick = max if maximize else min
    return pick(done, key=lambda t: t.objective or 0.0)


def trial_log(folder: SweepFolder, trial: Trial) -> Path | None:
    """The trial's run folder (the one holding its log): the recorded one when it is in the
    trial's folder, else the one found there (a sweep folder copied from elsewhere), else
    the recorded one wherever it is."""
    base = folder.trial_folder(trial.number)
    recorded = Path(trial.run_dir) if trial.run_dir else None
    if recorded is not None and recorded.name and (base / recorded.name / LOG_NAME).is_file():
        return base / recorded.name
    if (base / LOG_NAME).is_file():
        return base
    found = next((p.parent for p in sorted(base.glob(f"*/{LOG_NAME}"))), None)
    if found is None and recorded is not None and (recorded / LOG_NAME).is_file():
        return recorded
    return found


def engine_view(folder: SweepFolder, ended: Sequence[Trial]) -> tuple[list[Trial], dict[str, Any]]:
    """From the engine's storage: the trials not in ``results.jsonl`` yet (running, waiting)
    and parameter importance; when the storage cannot be read, none and a note saying why."""
    with_value = sum(t.objective is not None for t in ended)
    journal = _journal(folder)
    if journal is None:
        why = f"parameter importance is read from a journal file; this sweep's is {folder.storage}"
        return [], {"values": {}, "note": why}
    try:
        with replace(folder, storage=str(journal)).engine() as engine:
            extra = [_from_row(row) for row in rows(engine)]
            weights = importance(engine)
    except (TelemetryError, OSError, ValueError, KeyError) as exc:
        why = f"the sweep's storage could not be read ({type(exc).__name__}: {exc})"
        return [], {"values": {}, "note": why}
    known = {t.number for t in ended}
    pending = [t for t in extra if t.number not in known and t.state in ("running", "waiting")]
    note: str | None = None
    if not weights:
        note = (
            f"parameter importance needs at least 2 finished trials, {with_value} so far"
            if with_value < 2
            else "parameter importance could not be fitted (too few distinct values)"
        )
    return pending, {"values": weights, "note": note}


def _journal(folder: SweepFolder) -> Path | None:
    """The sweep's journal file: its own folder's (also when the folder was copied from
    elsewhere), else the one its settings name; None for a database, which is not opened
    here: opening one may create its tables, and the views only read."""
    own = folder.path / JOURNAL_FILE
    if own.is_file():
        return own
    named = Path(folder.storage)
    return named if "://" not in folder.storage and named.is_file() else None


def _from_row(row: TrialRow) -> Trial:
    return Trial(
        number=row.number,
        state=row.state,
        params=dict(row.params),
        best=_number(row.best),
        last=_number(row.last),
        duration=_number(row.duration),
        run_dir=row.run_dir,
    )


def sweep_view(path: Path) -> dict[str, Any]:
    """Everything the sweep page and report show about the sweep folder at ``path``."""
    folder = find_sweep(str(path), path, None)
    problems: list[dict[str, Any]] = []
    try:
        spec: SweepSpec | None = folder.spec
    except (TelemetryError, OSError) as exc:
        spec = None
        problems.append({"file": SWEEP_FILE, "line": None, "reason": str(exc)})
    metric = spec.metric.name if spec is not None and spec.metric is not None else None
    maximize = spec is not None and spec.metric is not None and spec.metric.goal == "maximize"
    records, bad = read_results(folder.path / RESULTS_FILE)
    problems.extend({"file": RESULTS_FILE, "line": p.line, "reason": p.reason} for p in bad)
    ended = trials_from_results(records)
    pending, weights = engine_view(folder, ended) if spec is not None else ([], _no_engine())
    trials = sorted([*ended, *pending], key=lambda t: t.number)
    best = best_trial(ended, maximize)
    return {
        "id": folder.id,
        "method": spec.method if spec is not None else None,
        "metric": metric,
        "goal": "maximize" if maximize else "minimize",
        "trials": [_row(folder, t) for t in trials],
        "counts": _counts(trials),
        "parallel": parallel_coordinates(trials, spec, metric),
        "importance": weights,
        "best_so_far": best_so_far(ended, maximize),
        "best": None if best is None else _row(folder, best),
        "problems": problems,
    }


def _no_engine() -> dict[str, Any]:
    return {"values": {}, "note": "the sweep file could not be read"}


def _row(folder: SweepFolder, trial: Trial) -> dict[str, Any]:
    run = trial_log(folder, trial)
    return {
        **{k: v for k, v in asdict(trial).items() if k != "run_dir"},
        "stopped": trial.stopped,
        "run_dir": None if run is None else str(run),
    }


def _counts(trials: Sequence[Trial]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state] = counts.get(trial.state, 0) + 1
    return counts
