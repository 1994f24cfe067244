"""The run folders and sweep folders under the dashboard's runs folder, cached per run."""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from telemetry.dashboard.paths import PathRefused, relative_id, resolve_under
from telemetry.dashboard.runstate import RunState
from telemetry.reader import LOG_NAME
from telemetry.stats.sweeps import read_results
from telemetry.sweep.folder import RESULTS_FILE

SWEEP_META = "sweep.json"


class NotFound(LookupError):
    """An id that names no run (or sweep) under the runs folder."""


class RunIndex:
    """Finds runs and sweeps under ``root`` and keeps one ``RunState`` per run folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._runs: dict[str, RunState] = {}
        self._sweeps: list[Path] = []
        self._lock = threading.Lock()
        # One thread reads large logs, one after the other: reading twenty at once would
        # only share the GIL and hold twenty chunks of decoded events in memory.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-read")
        self._queued: set[str] = set()

    def read_later(self, state: RunState) -> None:
        """Queue a run whose log has a large unread part for the reader thread."""
        with self._lock:
            if state.id in self._queued:
                return
            self._queued.add(state.id)
        self._reader.submit(self._read, state)

    def _read(self, state: RunState) -> None:
        with self._lock:
            self._queued.discard(state.id)
        state.refresh(wait=False)

    def scan(self, wait: bool = False) -> list[RunState]:
        """Every run folder under the root (following no symlink out of it), refreshed.

        ``wait``: read every log here, one after the other (the start-up warming);
        otherwise a large unread log is read in the background and shows what it has.
        """
        found: list[Path] = []
        sweeps: list[Path] = []
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            dirs.sort()
            if LOG_NAME in files and self._inside(Path(folder) / LOG_NAME):
                found.append(Path(folder))
            if SWEEP_META in files:
                sweeps.append(Path(folder))
        with self._lock:
            self._sweeps = sweeps
            states = [self._state(folder) for folder in found]
        for state in states:
            if wait:
                state.refresh(wait=False)  # a run another thread is reading is left to it
            else:
                state.refresh_soon(self.read_later)
        return states

    def _inside(self, path: Path) -> bool:
        """Whether a file found by walking resolves under the root (a symlinked log may not)."""
        try:
            resolve_under(self.root, path.relative_to(self.root).as_posix())
        except PathRefused:
            return False
        return True

    def _state(self, folder: Path) -> RunState:
        run_id = relative_id(self.root, folder)
        state = self._runs.get(run_id)
        if state is None:
            state = self._runs[run_id] = RunState(run_id, folder)
        return state

    def run(self, run_id: str) -> RunState:
        """The refreshed state of the run ``run_id``; ``PathRefused`` outside the root."""
        folder = resolve_under(self.root, run_id)
        resolve_under(self.root, f"{run_id.rstrip('/')}/{LOG_NAME}")  # the log itself stays in
        if not (folder / LOG_NAME).is_file():
            raise NotFound(f"no run {run_id!r} under the runs folder")
        with self._lock:
            state = self._state(folder)
        state.refresh_soon(self.read_later)
        return state

    def listing(self) -> dict[str, Any]:
        """The runs table: every run's summary, newest first, and every sweep's."""
        runs = [state.summary() for state in self.scan()]
        runs.sort(key=lambda row: row["start"] or 0.0, reverse=True)
        return {"runs": runs, "sweeps": [sweep_summary(self.root, p) for p in self._sweeps]}

    def nbytes(self) -> int:
        return sum(state.metrics.nbytes() for state in self._runs.values())


def sweep_summary(root: Path, folder: Path) -> dict[str, Any]:
    """A sweep's row: its method and metric from sweep.yaml, its trials from results.jsonl."""
    meta = _read_json(folder / SWEEP_META)
    spec = _read_yaml(folder / "sweep.yaml")
    found = spec.get("metric")
    metric: dict[str, Any] = found if isinstance(found, dict) else {}
    goal = metric.get("goal", "minimize")
    try:
        results, _ = read_results(folder / RESULTS_FILE)
    except OSError:
        results = []
    bests = [r["best"] for r in results if isinstance(r.get("best"), (int, float))]
    best = (max(bests) if goal == "maximize" else min(bests)) if bests else None
    trials_dir = folder / "trials"
    trials = len(list(trials_dir.iterdir())) if trials_dir.is_dir() else len(results)
    return {
        "id": relative_id(root, folder),
        "sweep_id": meta.get("id", folder.name),
        "method": spec.get("method"),
        "metric": metric.get("name"),
        "goal": goal,
        "trials": trials,
        "finished": len(results),
        "best": best,
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


__all__ = ["NotFound", "PathRefused", "RunIndex", "sweep_summary"]
