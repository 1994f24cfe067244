"""A run's central log: the run folder's ``events.jsonl``, written by collectors, durably.

The file is in the same format as a training run's log, so ``replay``, the
dashboard and reports read it as any run. Every write is one ``os.write`` of
whole lines followed by ``fsync``, under an exclusive ``flock`` of the run
folder's lock file: several collectors may share an output folder, and each first
reads what the others appended (``_catch_up``), so that the log, and what it says
it holds (``held``: per rank, the last origin ``seq``, ``telemetry.collector.origin``),
is one thing whoever wrote it. A torn last line (a writer killed mid-write)
is cut off by the next writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from telemetry.codec import decode, encode_lines, header
from telemetry.collector.origin import Segment, is_marker, marker, segment_of
from telemetry.collector.ranks import central_event
from telemetry.events import Event, LogRecord, RunFinished
from telemetry.reader import LOG_NAME

LOCK_NAME = ".collector.lock"


class CentralLog:
    """One run's central log and, read back from it, which (rank, seq) it holds."""

    def __init__(self, run_dir: Path, run_id: str) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.path = run_dir / LOG_NAME
        self.last_seq = 0
        """The last central ``seq`` written."""
        self.held: dict[int, int] = {}
        """Per rank, the last origin ``seq`` the log holds (or consumed without a line)."""
        self.finished: set[int] = set()
        """Ranks whose ``run_finished`` the log has consumed."""
        self.restamped = False
        """The log holds markers: lines after the first one have central ``seq``s."""
        self._segment: Segment | None = None
        self._offset = 0

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run folder's lock, with the state brought up to what the file holds."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._catch_up()
            yield
        finally:
            os.close(fd)  # releases the lock

    def append(self, rank: int, events: Sequence[Event]) -> int:
        """Write rank ``rank``'s next origin events (after ``held[rank]``, in ``seq`` order).

        Call inside ``locked()``. Returns the number of lines written; the events
        are durable (fsynced) when it returns.
        """
        if not events:
            return 0
        lines: list[Event] = []
        if rank == 0 and not self.restamped:
            lines = list(events)  # a single process's run: each line keeps its seq
        else:
            seq = self.last_seq + 1
            kept: list[Event] = []
            origins: list[int] = []
            for event in events:
                line = central_event(event, rank, seq + 1 + len(kept))
                if line is not None:
                    kept.append(line)
                    origins.append(event.seq)
            segment = Segment(
                rank=rank,
                seqs=origins,
                through=events[-1].seq,
                finished=any(type(e) is RunFinished for e in events),
            )
            lines = [marker(self.run_id, seq, time.time(), segment), *kept]
        data = encode_lines(lines)
        with open(self.path, "ab", buffering=0) as handle:
            view = memoryview(data)
            while view:
                view = view[handle.write(view) :]
            os.fsync(handle.fileno())
        self._offset += len(data)
        for line in lines:
            self._scan(line)
        return len(lines) - (0 if lines[0] is events[0] else 1)

    def _catch_up(self) -> None:
        """Read what was appended since we last looked (by us or another collector)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._create()
            return
        with open(self.path, "rb+") as handle:
            handle.seek(self._offset)
            data = handle.read()
            cut = data.rfind(b"\n") + 1
            if cut < len(data):  # a writer died mid-write: whole lines only from here on
                handle.truncate(self._offset + cut)
                os.fsync(handle.fileno())
        for raw in data[:cut].splitlines():
            parsed = decode(raw)
            if not isinstance(parsed, dict):
                self._scan(parsed)
        self._offset += cut

    def _create(self) -> None:
        line = header(self.run_id, time.time()) + b"\n"
        with open(self.path, "wb", buffering=0) as handle:
            handle.write(line)
            os.fsync(handle.fileno())
        dir_fd = os.open(self.run_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._offset = len(line)

    def _scan(self, event: Event) -> None:
        """Take one line of the log into the state (``held``, ``finished``, ``last_seq``)."""
        self.last_seq = event.seq
        if is_marker(event):
            assert isinstance(event, LogRecord)
            self.restamped = True
            self._segment = segment_of(event)
            self._settle_if_whole(self._segment)
            return
        segment = self._segment
        if segment is None:  # before any marker: rank 0's line, with its own seq
            self.held[0] = event.seq
            if type(event) is RunFinished:
                self.finished.add(0)
            return
        segment.seen += 1
        if segment.seen <= len(segment.seqs):
            self.held[segment.rank] = segment.seqs[segment.seen - 1]
        self._settle_if_whole(segment)

    def _settle_if_whole(self, segment: Segment) -> None:
        if segment.seen == len(segment.seqs):
            self.held[segment.rank] = max(self.held.get(segment.rank, 0), segment.through)
            if segment.finished:
                self.finished.add(segment.rank)
