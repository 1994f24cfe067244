"""The durable JSON Lines log: one event per line, group-committed with fsync."""

from __future__ import annotations

import bisect
import contextlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from telemetry.checks import UP_TO_A_MINUTE, Interval
from telemetry.codec import encode_lines, header
from telemetry.errors import SinkUnavailableError, write_failure
from telemetry.events import Event
from telemetry.reader import LOG_NAME
from telemetry.sink import Delivery, SinkContext, fresh


@dataclass(kw_only=True)
class JsonlOptions(Delivery):
    """Settings of the JSON Lines log."""

    overflow: str = "block"
    """The durable log never spills: it is what other sinks spill onto."""
    fsync_interval: float = 0.2
    """Seconds between fsyncs (group commit); 0 syncs after every batch."""
    isolate_after: int = 6
    """Tries behind the breaker (0.5, 1, 2, 4, 8 s apart) before a log that cannot write
    (a full disk) is isolated; meanwhile later events wait in the bounded intake."""

    def limits(self) -> dict[str, Interval]:
        return {**super().limits(), "fsync_interval": UP_TO_A_MINUTE}

    def extra_checks(self) -> list[tuple[str, bool, str]]:
        return [("overflow", self.overflow == "block", "block (the durable log cannot spill)")]


_INDEX_SIZE = 4096


class JsonlSink:
    """Appends events to ``path``; the run's source of truth that other sinks catch up from.

    Each batch is encoded and written with one ``os.write`` in a worker thread,
    so a reader sees whole lines or, after a ``kill -9`` mid-write, at most a
    torn last line. A failed write is truncated back to the last whole batch.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        run_id: str,
        options: JsonlOptions | None = None,
        name: str = "jsonl",
    ) -> None:
        self.name = name
        self.path = Path(path)
        self.run_id = run_id
        self.options = options or JsonlOptions()
        self.truncated_bytes = 0
        self._fd = -1
        self._offset = 0
        self._last_seq = 0
        self._last_sync = 0.0
        self._dirty = False
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        # (first seq, offset) of written batches, thinned to stay small on long runs.
        self._index: list[tuple[int, int]] = []

    @property
    def written_offset(self) -> int:
        """Bytes of whole lines in the file."""
        return self._offset

    def offset_before(self, seq: int) -> int:
        """A line-start offset at or before the line of ``seq``, from a sparse batch index."""
        index = self._index.copy()  # the writer's thread may thin it meanwhile
        at = bisect.bisect_right(index, seq, key=lambda entry: entry[0]) - 1
        return index[at][1] if at >= 0 else 0

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self._open)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise SinkUnavailableError(_explain(self.path, exc)) from exc
        size = os.fstat(self._fd).st_size
        if size == 0:
            self._write_all(header(self.run_id, time.time()) + b"\n")
            os.fsync(self._fd)
        else:
            self._drop_torn_tail(size)
            self._last_seq = _last_seq_in(self.path)
        self._offset = os.fstat(self._fd).st_size

    def _drop_torn_tail(self, size: int) -> None:
        """On reopening after a crash, cut a torn last line so appends start on a new line."""
        with self.path.open("rb") as handle:
            start = max(0, size - (1 << 20))
            handle.seek(start)
            tail = handle.read()
        if tail.endswith(b"\n"):
            return
        keep = start + tail.rfind(b"\n") + 1
        os.ftruncate(self._fd, keep)
        self.truncated_bytes = size - keep

    async def write(self, batch: Sequence[Event]) -> None:
        await anyio.to_thread.run_sync(self._write_batch, batch)

    def _write_batch(self, batch: Sequence[Event]) -> None:
        new = fresh(batch, self._last_seq)
        if not new:
            return
        data = encode_lines(new)
        with self._lock:
            try:
                self._write_all(data)
            except OSError as exc:
                # Leave no half batch behind: the next write must start on a whole line.
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._offset)
                raise SinkUnavailableError(_explain(self.path, exc)) from exc
            self._remember(new[0].seq, self._offset)
            self._offset += len(data)
            self._last_seq = new[-1].seq
            self._dirty = True
            self._sync_if_due()

    def _remember(self, seq: int, offset: int) -> None:
        index = self._index
        index.append((seq, offset))
        if len(index) > _INDEX_SIZE:
            del index[1::2]

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _sync_if_due(self) -> None:
        interval = self.options.fsync_interval
        now = time.monotonic()
        if interval == 0 or now - self._last_sync >= interval:
            self._sync()
        elif self._timer is None:
            # Nothing may sit unsynced for longer than the interval, even if no batch follows.
            self._timer = threading.Timer(interval, self._timed_sync)
            self._timer.daemon = True
            self._timer.start()

    def _timed_sync(self) -> None:
        with self._lock:
            self._timer = None
            if self._dirty and self._fd >= 0:
                with contextlib.suppress(OSError):
                    self._sync()

    def _sync(self) -> None:
        os.fsync(self._fd)
        self._dirty = False
        self._last_sync = time.monotonic()

    async def close(self, timeout: float) -> None:
        await anyio.to_thread.run_sync(self._close, abandon_on_cancel=True)

    def _close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._fd < 0:
                return
            try:
                if self._dirty:
                    self._sync()
            finally:
                os.close(self._fd)
                self._fd = -1


def _explain(path: Path, exc: OSError) -> str:
    return f"cannot write the event log {path}: {write_failure(exc)}"


def _last_seq_in(path: Path) -> int:
    """The highest ``seq`` in an existing log, read from its last whole lines."""
    from telemetry.codec import decode

    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - (1 << 16)))
        lines = handle.read().splitlines()
    for raw in reversed(lines):
        try:
            event = decode(raw)
        except (ValueError, TypeError):
            continue
        seq = event.get("seq", 0) if isinstance(event, dict) else event.seq
        if isinstance(seq, int):
            return seq
    return 0


OPTIONS = JsonlOptions


def build(context: SinkContext, options: JsonlOptions) -> JsonlSink:
    """The durable log at ``<run folder>/events.jsonl``."""
    return JsonlSink(context.run_dir / LOG_NAME, context.run_id, options)
