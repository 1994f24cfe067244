"""Catching a lane up from the durable log: what it missed, read back in ``seq`` order."""

from __future__ import annotations

import anyio

from telemetry.events import Event
from telemetry.reader import LogTail
from telemetry.sink import DurableLog


class CatchUp:
    """Reads a lane's missed events back from the log: from ``from_seq`` up to ``limit``.

    Created when the lane falls behind, at a line start the log's index puts at
    or before ``from_seq``; the file is opened only once the lane's queue is
    empty (what was queued before the lane fell behind goes first). ``limit``
    is set when the lane rejoins the live stream: the first live chunk starts
    at ``limit + 1``.
    """

    __slots__ = ("_log", "_offset", "_tail", "from_seq", "limit")

    def __init__(self, log: DurableLog, from_seq: int) -> None:
        self._log = log
        self.from_seq = from_seq
        self.limit: int | None = None
        self._offset = log.offset_before(from_seq)
        self._tail: LogTail | None = None

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
        assert self._tail is not None
        # Decoding a megabyte of log takes milliseconds: not on the event loop.
        read = await anyio.to_thread.run_sync(self._tail.read)
        limit = self.limit
        if limit is None:
            return [e for e in read if e.seq > after], False
        return [e for e in read if after < e.seq <= limit], bool(read) and read[-1].seq > limit

    def done(self, last_seq: int) -> bool:
        """The lane has everything up to the live stream."""
        return self.limit is not None and last_seq >= self.limit

    def at_end_of(self, log: DurableLog) -> bool:
        """Everything the log has written so far has been read."""
        return self._tail is not None and self._tail.offset >= log.written_offset

    def close(self) -> None:
        if self._tail is not None:
            self._tail.close()
            self._tail = None
