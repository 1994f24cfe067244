"""Catching a lane up from the durable log: what it missed, read back in ``seq`` order."""

from __future__ import annotations

import enum

import anyio

from telemetry.events import Event
from telemetry.progress import Progress
from telemetry.reader import LogTail
from telemetry.sink import DurableLog, fresh


class Step(enum.Enum):
    """What one look at the log found."""

    EVENTS = "events"
    """A batch read back."""
    OVER = "over"
    """Nothing more to read: the lane reached its live stream, or the end of the run."""
    GAP = "gap"
    """The log went past ``limit`` without the lane's last seqs: it never wrote them."""
    WAITING = "waiting"
    """Nothing new in the log yet."""
    ENDED = "ended"
    """The log's lane has ended and everything it wrote has been read."""
    CLOSED = "closed"
    """The read-back was closed while it read (the lane fell behind again): its
    lane has a new one, and what this one read is dropped."""


class CatchUp:
    """Reads a lane's missed events back from the log: from ``from_seq`` up to ``limit``.

    Created when the lane falls behind, at a line start the log's index puts at
    or before ``from_seq``; the file is opened only once the lane's queue is
    empty (what was queued before the lane fell behind goes first). ``limit``
    is set when the lane rejoins the live stream: the first live chunk starts
    at ``limit + 1``. The pump may close it while a read runs in a worker
    thread: the file is then closed once that read returns.
    """

    __slots__ = ("_log", "_offset", "_reads", "_tail", "from_seq", "limit")

    def __init__(self, log: DurableLog, from_seq: int) -> None:
        self._log = log
        self.from_seq = from_seq
        self.limit: int | None = None
        self._offset = log.offset_before(from_seq)
        self._tail: LogTail | None = None
        self._reads = 0  # reads in flight in a worker thread

    @property
    def reading(self) -> bool:
        """The log file is open: the lane's queue was empty when it looked."""
        return self._tail is not None

    def open(self) -> None:
        """Start reading the file; ``OSError`` if it cannot be read."""
        if self._tail is None:
            self._tail = LogTail(self._log.path, self._offset)

    async def read(self, after: int) -> tuple[list[Event], bool]:
        """Whole lines written since the last read with ``after < seq <= limit``, and
        whether the log has gone past ``limit`` (what it lacks below it, it never wrote)."""
        tail = self._tail
        assert tail is not None
        self._reads += 1
        try:  # decoding a megabyte of log takes milliseconds: not on the event loop
            read = await anyio.to_thread.run_sync(tail.read)
        finally:
            self._reads -= 1
            if self._tail is None:  # closed while it read
                tail.close()
        limit = self.limit
        if limit is None:
            return list(fresh(read, after)), False
        return [e for e in read if after < e.seq <= limit], bool(read) and read[-1].seq > limit

    async def next(self, last_seq: int, progress: Progress) -> tuple[Step, list[Event]]:
        """The next batch after ``last_seq``, or why there is none."""
        if self.limit is not None and last_seq >= self.limit:
            return Step.OVER, []
        events, passed = await self.read(last_seq)
        if self._tail is None:
            return Step.CLOSED, []
        if events:
            return Step.EVENTS, events
        if passed:
            return Step.GAP, []
        if progress.pump_done and self.limit is None and last_seq >= progress.dispatched:
            return Step.OVER, []
        if progress.log_done and self._tail.offset >= self._log.written_offset:
            return Step.ENDED, []
        return Step.WAITING, []

    def close(self) -> None:
        if self._tail is not None and not self._reads:
            self._tail.close()
        self._tail = None  # a read in flight closes the file when it returns
