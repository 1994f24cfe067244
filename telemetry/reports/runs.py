"""The run folders under a runs folder, picked by id, and one run's log read for a report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from telemetry.errors import ConfigError
from telemetry.events import Evaluation, Metrics, RunFinished, RunStarted
from telemetry.reader import LOG_NAME, LogReader


@dataclass(frozen=True, slots=True)
class RunFolder:
    """A folder holding a log, known by its header alone (cheap to list)."""

    path: Path
    id: str
    """The folder relative to the runs folder, posix (the dashboard's id)."""
    run_id: str
    start: float


@dataclass(slots=True)
class KeySeries:
    """One metric key of a run: its step axis, steps and values in log order."""

    axis: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def last(self) -> float:
        return self.values[-1] if self.values else math.nan

    def best(self, lower: bool) -> float:
        finite = [v for v in self.values if math.isfinite(v)]
        if not finite:
            return math.nan
        return min(finite) if lower else max(finite)


@dataclass(slots=True)
class RunLog:
    """What a report needs of one run's log: who it is, its config, its metric series."""

    folder: RunFolder
    name: str = ""
    trainer: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    """``running`` until ``run_finished``, then its status."""
    duration: float | None = None
    series: dict[str, KeySeries] = field(default_factory=dict)
    problems: int = 0


def find_runs(root: Path) -> list[RunFolder]:
    """Every run folder under ``root`` (sweep trials included), oldest first.

    Raises ``ConfigError`` when ``root`` is not a folder or holds no run.
    """
    if not root.is_dir():
        raise ConfigError(f"--runs: {root} is not a folder (give the folder holding run folders)")
    found = [_folder(root, log.parent) for log in sorted(root.rglob(LOG_NAME))]
    runs = sorted((f for f in found if f is not None), key=lambda f: (f.start, f.id))
    if not runs:
        raise ConfigError(f"--runs: no run under {root} (no folder holding {LOG_NAME})")
    return runs


def pick_run(runs: list[RunFolder], run_id: str) -> RunFolder:
    """The run whose run id, folder name or id under the runs folder is ``run_id``."""
    for run in reversed(runs):  # a resumed copy elsewhere: the newest wins
        if run_id in (run.run_id, run.path.name, run.id):
            return run
    known = ", ".join(r.path.name for r in runs[-5:])
    raise ConfigError(
        f"--run-id: no run {run_id!r} under the runs folder "
        f"(give a run id or a run folder name; latest: {known})"
    )


def read_run(folder: RunFolder) -> RunLog:
    """The run's name, trainer, config, status and every ``metrics``/``evaluation`` series."""
    run = RunLog(folder=folder)
    reader = LogReader(folder.path)
    started: float | None = None
    for event in reader:
        if isinstance(event, Metrics | Evaluation):
            for key, value in event.values.items():
                series = run.series.setdefault(key, KeySeries(event.axis))
                series.steps.append(event.step)
                series.values.append(float(value))
        elif isinstance(event, RunStarted):
            started = started if started is not None else event.time
            run.name, run.config = event.name, dict(event.config)
            run.trainer = str(event.config.get("trainer") or "")
            run.status = "running"
        elif isinstance(event, RunFinished):
            run.status = event.status
            run.duration = event.time - (started if started is not None else folder.start)
    run.problems = len(reader.problems)
    return run


def _folder(root: Path, path: Path) -> RunFolder | None:
    """The folder by its log's header; ``None`` for a file that is not a log."""
    try:
        with (path / LOG_NAME).open("rb") as handle:
            header = orjson.loads(handle.readline())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(header, dict) or header.get("type") != "schema":
        return None
    return RunFolder(
        path=path,
        id=path.relative_to(root).as_posix(),
        run_id=str(header.get("run_id", "")),
        start=float(header.get("time") or 0.0),
    )
