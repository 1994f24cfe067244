"""Following a run's log as it grows: the pump of a sidecar, offering what it reads to lanes."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path

import anyio

from telemetry.chunk import Item, RawChunk
from telemetry.events import Event, RunFinished
from telemetry.lane import Lane
from telemetry.progress import Progress
from telemetry.pump import CHUNK
from telemetry.reader import LogTail

POLL = 0.05
"""Seconds between looks at a log that has not grown."""


class FollowedLog:
    """The log a sidecar follows, as the lanes' ``DurableLog``: what has been read of it so far.

    A spill lane that falls behind reads back from it; ``offset_before`` finds
    the line of a ``seq`` in an index of the chunks read.
    """

    __slots__ = ("_index", "path", "written_offset")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written_offset = 0
        self._index: list[tuple[int, int]] = []

    def offset_before(self, seq: int) -> int:
        at = bisect.bisect_right(self._index, seq, key=lambda entry: entry[0]) - 1
        return self._index[at][1] if at >= 0 else 0

    def read_to(self, first_seq: int, offset: int, end: int) -> None:
        """The lines from ``offset`` to ``end`` were read; the first holds ``first_seq``."""
        if len(self._index) < 4096:
            self._index.append((first_seq, offset))
        self.written_offset = end


class Until:
    """When ``deliver_log`` stops delivering: what a caller tells it, on the event loop.

    By default once the log's ``run_finished`` has been handed to every sink
    (``at_run_finished``). ``through(seq, within=)``: once every event up to
    ``seq`` has (the bus closing: the log holds nothing more), closing the
    sinks within ``within`` seconds. ``now()``: at once, cancelling what is in
    flight; what a sink did not get stays in the log, its cursor says where.
    """

    def __init__(self, *, at_run_finished: bool = True, close_timeout: float = 10.0) -> None:
        self.at_run_finished = at_run_finished
        self.close_timeout = close_timeout
        self.target: int | None = None
        self.stopped = anyio.Event()
        self.changed = anyio.Event()

    def through(self, seq: int, *, within: float | None = None) -> None:
        """Stop once every event up to ``seq`` has been delivered (or counted failed)."""
        self.target = seq
        if within is not None:
            self.close_timeout = within
        self._wake()

    def now(self) -> None:
        """Stop at once."""
        self.stopped.set()
        self._wake()

    def _wake(self) -> None:
        changed, self.changed = self.changed, anyio.Event()
        changed.set()


class Follower:
    """Reads whole lines appended to the log and offers them to every lane, in chunks.

    It plays the durable log's part for the lanes: what it has read, the log
    holds (``Progress.log_settled``), so the lanes' write-ahead wait is met.
    """

    def __init__(
        self,
        log: FollowedLog,
        lanes: Sequence[Lane],
        progress: Progress,
        until: Until,
        *,
        after: int,
    ) -> None:
        self._log = log
        self._lanes = lanes
        self._progress = progress
        self._until = until
        self._after = after
        self.last_seq = after
        """The last ``seq`` offered to the lanes."""
        self.finished = False
        """The log's ``run_finished`` was offered."""

    def _done(self) -> bool:
        until = self._until
        if until.stopped.is_set():
            return True
        if until.at_run_finished and self.finished:
            return True
        return until.target is not None and self.last_seq >= until.target

    async def run(self) -> None:
        """Follow the log until ``Until`` says stop; then tell every lane the input has ended."""
        try:
            while not self._log.path.exists() and not self._done():
                await self._pause()
            if self._done():
                return
            tail = LogTail(self._log.path, 0)
            try:
                while not self._done():
                    offset = tail.offset
                    # Decoding a megabyte of log takes milliseconds: not on the event loop.
                    events = await anyio.to_thread.run_sync(tail.read)
                    if events:
                        self._log.read_to(events[0].seq, offset, tail.offset)
                        await self._offer([e for e in events if e.seq > self._after])
                        # The cursors were past the run's end already: it was delivered.
                        self.finished |= type(events[-1]) is RunFinished
                    else:
                        self._log.written_offset = tail.offset
                        await self._pause()
            finally:
                tail.close()
        finally:
            self._progress.end_input()
            for lane in self._lanes:
                lane.end_of_input()

    async def _pause(self) -> None:
        with anyio.move_on_after(POLL):
            await self._until.changed.wait()

    async def _offer(self, events: list[Event]) -> None:
        target = self._until.target
        if target is not None:
            events = [e for e in events if e.seq <= target]
        end = next((i for i, e in enumerate(events) if type(e) is RunFinished), None)
        if end is not None and self._until.at_run_finished:
            events = events[: end + 1]  # what follows is a later process's (a resume)
        for start in range(0, len(events), CHUNK):
            piece = events[start : start + CHUNK]
            items: list[Item] = list(piece)
            chunk = RawChunk(piece[0].run_id, items, [None] * len(piece))
            self._progress.log_settled(chunk.last_seq)
            for lane in self._lanes:
                while not lane.offer(chunk):
                    await lane.wait_for_room()
            self._progress.dispatched = chunk.last_seq
            self.last_seq = chunk.last_seq
        if end is not None:
            self.finished = True
