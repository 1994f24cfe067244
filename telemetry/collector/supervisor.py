"""The collector's deliverer processes: one per run, started again if one dies."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import structlog

from telemetry.codec import decode
from telemetry.collector.deliverer import RESTART_AFTER, spawn
from telemetry.collector.delivery import STATE_DIR
from telemetry.events import RunFinished
from telemetry.reader import LOG_NAME

logger = structlog.get_logger("telemetry.collector")
RECHECK_EVERY = 5.0
"""Seconds between checks that a delivered run has not grown since."""


def delivered(run_dir: Path, sinks: Sequence[str]) -> bool:
    """The central log ends with run_finished and each sink's cursor is there (a collector
    started again after the run was delivered starts no deliverer for it)."""
    path = run_dir / LOG_NAME
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 65536))
        lines = handle.read().splitlines()
    try:
        last = decode(lines[-1]) if lines else None
    except ValueError:
        return False
    if not isinstance(last, RunFinished):
        return False
    for sink in sinks:
        cursor = run_dir / STATE_DIR / "cursors" / f"{sink}.json"
        try:
            if orjson.loads(cursor.read_bytes()).get("seq", 0) < last.seq:
                return False
        except (OSError, ValueError):
            return False
    return True


class Deliverers:
    """Keeps a deliverer running for every run it was told of, until the run is delivered."""

    def __init__(self, overrides: Sequence[str], sinks: Sequence[str]) -> None:
        self._overrides = list(overrides)
        self._sinks = list(sinks)
        self._runs: set[Path] = set()
        self._done: set[Path] = set()
        self._children: dict[Path, subprocess.Popen[bytes]] = {}
        self._restart_at: dict[Path, float] = {}
        self._recheck_at = 0.0

    def want(self, run_dir: Path) -> None:
        """Deliver ``run_dir``, unless every sink already has it through its run_finished."""
        self._runs.add(run_dir)
        if delivered(run_dir, self._sinks):
            self._done.add(run_dir)

    def tend(self) -> None:
        """Start what is missing, note what ended; called every round of the collector."""
        now = time.monotonic()
        if now >= self._recheck_at:
            # A delivered run that grew again (a resumed run, a late rank) is delivered again.
            self._recheck_at = now + RECHECK_EVERY
            self._done = {r for r in self._done if delivered(r, self._sinks)}
        for run_dir in self._runs - self._done:
            child = self._children.get(run_dir)
            if child is None:
                if now >= self._restart_at.get(run_dir, 0.0):
                    self._children[run_dir] = spawn(run_dir, self._overrides)
                continue
            code = child.poll()
            if code is None:
                continue
            del self._children[run_dir]
            if code == 0:
                self._done.add(run_dir)  # delivered through its run_finished
            else:
                logger.warning("deliverer_died", run_dir=str(run_dir), status=code)
                self._restart_at[run_dir] = now + RESTART_AFTER

    def stop(self, timeout: float) -> None:
        """SIGTERM every deliverer (each delivers what its log holds), kill what is late."""
        for child in self._children.values():
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self._children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._children.clear()
