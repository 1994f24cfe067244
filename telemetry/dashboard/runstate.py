"""One run folder's state, read from its log once and extended from the last offset read."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from telemetry.codec import FORMAT_NAME, decode
from telemetry.dashboard.columns import Column, Columns
from telemetry.events import (
    Aggregate,
    Alert,
    ArtifactSaved,
    Evaluation,
    Event,
    Health,
    Hyperparameters,
    Metrics,
    RunFinished,
    RunStarted,
    SystemInfo,
    TradeClosed,
)
from telemetry.reader import LOG_NAME, LogTail

CHUNK_BYTES = 4 << 20
BACKGROUND_BYTES = 4 << 20
"""An unread part of a log larger than this is read in the background (about 25,000 lines)."""
_LOWER_IS_BETTER = ("loss", "error", "mae", "rmse", "mse", "cost", "drawdown", "time")


def lower_is_better(key: str) -> bool:
    """Whether a key's best value is its lowest (losses, errors, costs), by its name."""
    name = key.lower()
    return any(word in name for word in _LOWER_IS_BETTER)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class RunState:
    """What the dashboard knows of one run: columns per key, summary fields, problems.

    ``refresh`` reads only what the log gained since the last call (by size and
    mtime), through the log's own tail reader, so a million-point log is read once.
    """

    def __init__(self, run_id: str, folder: Path) -> None:
        self.id = run_id
        self.folder = folder
        self.log = folder / LOG_NAME
        self.lock = threading.Lock()
        """Held while the data changes, and by readers taking a consistent view of it."""
        self._refreshing = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.offset = 0
        self.lines = 0
        self.last_seq = 0
        self.stamp: tuple[int, int] = (-1, -1)
        self.problems: list[dict[str, Any]] = []
        self.started: RunStarted | None = None
        self.finished: RunFinished | None = None
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.hyperparameters: dict[str, Any] = {}
        self.system_info: dict[str, Any] = {}
        self.artifacts: list[dict[str, Any]] = []
        self.metrics = Columns()
        self.evaluations = Columns()
        self.aggregates = Columns()
        self.has = {"trades": False, "health": False, "alerts": False}

    def refresh(self, wait: bool = True) -> None:
        """Read what the log gained since the last call; cheap (one stat) when nothing did.

        The data lock is held per chunk only, so a first read of a large log lets
        other requests see it grow; ``wait=False`` returns at once if another
        thread is already reading it.
        """
        if not self._refreshing.acquire(blocking=wait):
            return
        try:
            self._refresh()
        finally:
            self._refreshing.release()

    def refresh_soon(self, background: Callable[[RunState], None]) -> None:
        """Bring the state up to date for a request without making it wait for a long read.

        A few chunks are read at once (a live run's new lines); a large unread part
        (a first look at a million-point log) is handed to ``background`` (the index's
        one reader thread) while the request answers with what is read so far
        (``details()["read"]`` says how far).
        """
        if self._refreshing.locked():
            return
        try:
            size = self.log.stat().st_size
        except OSError:
            return
        if size - self.offset <= BACKGROUND_BYTES:
            self.refresh(wait=True)
        else:
            background(self)

    def _refresh(self) -> None:
        try:
            stat = self.log.stat()
        except OSError:
            return
        stamp = (stat.st_size, stat.st_mtime_ns)
        if stamp == self.stamp:
            return
        if stat.st_size < self.offset:  # replaced or truncated: start over
            with self.lock:
                self._reset()
        if self.offset == 0 and not self._read_header():
            return
        tail = LogTail(self.log, self.offset)
        try:
            while True:
                before, seen = tail.offset, tail.problems
                events = tail.read(CHUNK_BYTES)
                if tail.offset == before:
                    break
                with self.lock:
                    if tail.problems != seen:
                        self._locate_problems(before, tail.offset)
                    self._take(events)
                    self.lines += len(events) + tail.problems - seen
                    self.offset = tail.offset
        finally:
            tail.close()
        self.stamp = stamp

    def _read_header(self) -> bool:
        with self.log.open("rb") as handle:
            first = handle.readline()
        if not first.endswith(b"\n"):
            return False  # the header is still being written
        try:
            parsed = decode(first)
        except (ValueError, TypeError):
            parsed = None
        if not isinstance(parsed, dict) or parsed.get("format") != FORMAT_NAME:
            self.problems.append({"line": 1, "reason": f"not a {FORMAT_NAME} schema header"})
        self.offset = len(first)
        self.lines = 1
        return True

    def _locate_problems(self, start: int, end: int) -> None:
        """Name the bad lines of a chunk the tail counted problems in (rare, so read it again)."""
        with self.log.open("rb") as handle:
            handle.seek(start)
            data = handle.read(end - start)
        for number, raw in enumerate(data.split(b"\n")[:-1], start=self.lines + 1):
            try:
                decode(raw)
            except (ValueError, TypeError) as exc:
                reason = (
                    "empty line"
                    if not raw.strip()
                    else f"not valid JSON ({exc.msg})"
                    if isinstance(exc, orjson.JSONDecodeError)
                    else str(exc)
                )
                self.problems.append({"line": number, "reason": reason})

    def _take(self, events: list[Event]) -> None:
        last_seq = self.last_seq
        batches: dict[Columns, list[Metrics | Evaluation | Aggregate]] = {
            self.metrics: [],
            self.evaluations: [],
            self.aggregates: [],
        }
        for event in events:
            if event.seq <= last_seq:
                self.problems.append(
                    {"line": None, "reason": f"seq {event.seq} is not after {last_seq}; skipped"}
                )
                continue
            last_seq = event.seq
            kind = type(event)
            if kind is Metrics:
                batches[self.metrics].append(event)  # type: ignore[arg-type]
            elif kind is Evaluation:
                batches[self.evaluations].append(event)  # type: ignore[arg-type]
            elif kind is Aggregate:
                batches[self.aggregates].append(event)  # type: ignore[arg-type]
            else:
                self._take_other(event)
        if events:
            if self.first_time is None:
                self.first_time = events[0].time
            self.last_time = max(self.last_time or events[-1].time, events[-1].time)
        self.last_seq = last_seq
        for columns, batch in batches.items():
            columns.extend(batch)

    def _take_other(self, event: Event) -> None:
        kind = type(event)
        if kind is RunStarted:
            self.started = event  # type: ignore[assignment]
            self.finished = None  # a resumed run runs again
        elif kind is RunFinished:
            self.finished = event  # type: ignore[assignment]
        elif kind is Hyperparameters:
            self.hyperparameters.update(event.values)  # type: ignore[union-attr]
        elif kind is SystemInfo:
            self.system_info.update(event.values)  # type: ignore[union-attr]
        elif kind is ArtifactSaved:
            fields = asdict(event)
            self.artifacts.append({k: v for k, v in fields.items() if k not in ("run_id", "type")})
        elif kind is TradeClosed:
            self.has["trades"] = True
        elif kind is Health:
            self.has["health"] = True
        elif kind is Alert:
            self.has["alerts"] = True

    def keys(self) -> dict[str, list[str]]:
        """Every chartable key (metrics and evaluations), grouped by namespace."""
        grouped: dict[str, list[str]] = {}
        for key in sorted({*self.metrics.by_key, *self.evaluations.by_key}):
            grouped.setdefault(key.split("/", 1)[0] if "/" in key else "", []).append(key)
        return grouped

    def column(self, key: str) -> Column | None:
        return self.metrics.by_key.get(key) or self.evaluations.by_key.get(key)

    def summary(self) -> dict[str, Any]:
        """The runs table's row for this run."""
        started = self.started
        end = self.finished.time if self.finished else self.last_time
        metrics: dict[str, Any] = {}
        for key, column in {**self.evaluations.by_key, **self.metrics.by_key}.items():
            if column.size == 0:
                continue
            best = column.low if lower_is_better(key) else column.high
            metrics[key] = {
                "last": _finite(float(column.value[-1])),
                "best": _finite(best),
                "count": column.size,
            }
        start = started.time if started else self.first_time
        return {
            "id": self.id,
            "run_id": started.run_id if started else None,
            "name": started.name if started else self.folder.name,
            "trainer": (started.config.get("trainer") if started else None),
            "project": started.project if started else None,
            "status": self.finished.status if self.finished else "running",
            "start": start,
            "duration": (end - start) if start is not None and end is not None else None,
            "tags": list(started.tags) if started else [],
            "group": started.group if started else None,
            "sweep": self.id.split("/")[1] if self.id.startswith("sweeps/") else None,
            "metrics": metrics,
            "problems": len(self.problems),
            "has_trades": self.has["trades"],
            "has_system": any(key.startswith("system/") for key in self.metrics.by_key),
            "has_health": self.has["health"],
            "has_alerts": self.has["alerts"],
        }

    def _size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return self.offset

    def details(self) -> dict[str, Any]:
        """The run page's data besides its series."""
        return {
            "summary": self.summary(),
            "config": dict(self.started.config) if self.started else {},
            "hyperparameters": self.hyperparameters,
            "system_info": self.system_info,
            "artifacts": self.artifacts,
            "keys": self.keys(),
            "problems": self.problems[:1000],
            "offset": self.offset,
            "read": {"offset": self.offset, "size": self._size()},
            "error": self.finished.error if self.finished else None,
        }
