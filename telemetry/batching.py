"""A lane's bounded queue of chunks, and batches filled from it by size and latency."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

from telemetry.chunk import RawChunk
from telemetry.counts import LaneCounts
from telemetry.events import Event
from telemetry.sink import Delivery


class ChunkQueue:
    """The pump puts chunks; the lane's worker takes them and fills batches.

    ``counts.queued`` counts the events waiting; a ``block`` pump waits for room.
    """

    __slots__ = ("_counts", "_delivery", "_fill_scope", "_receive", "_room", "_send")

    def __init__(self, delivery: Delivery, counts: LaneCounts) -> None:
        self._delivery = delivery
        self._counts = counts
        self._room: anyio.Event | None = None
        self._fill_scope: anyio.CancelScope | None = None
        # The stream's own bound counts chunks; ``delivery.capacity`` (events) is checked
        # by ``has_room`` before every put.
        self._send, self._receive = anyio.create_memory_object_stream[RawChunk](delivery.capacity)

    # -- the pump's side --

    def has_room(self, size: int) -> bool:
        """A chunk of ``size`` events fits (an empty queue takes any chunk)."""
        queued = self._counts.queued
        return not queued or queued + size <= self._delivery.capacity

    def put(self, chunk: RawChunk) -> None:
        try:
            self._send.send_nowait(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return  # the worker has ended: the chunk stays pending
        self._counts.queued += len(chunk)

    async def wait_for_room(self) -> None:
        """Wait until the worker takes a chunk."""
        self._room = anyio.Event()
        await self._room.wait()

    def end_of_input(self) -> None:
        """No more chunks will be put."""
        self._send.close()

    # -- the worker's side --

    def take_nowait(self) -> RawChunk | None:
        """The next chunk; None if none is queued; ``anyio.EndOfStream`` at the end."""
        try:
            return self._took(self._receive.receive_nowait())
        except anyio.WouldBlock:
            return None

    async def take(self) -> RawChunk | None:
        """Wait for the next chunk; None at the end of input."""
        try:
            return self._took(await self._receive.receive())
        except anyio.EndOfStream:
            return None

    def drop_all(self) -> None:
        """Take everything queued and drop it (the lane counts it)."""
        while True:
            try:
                self._took(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                return

    def close(self) -> None:
        self._receive.close()

    def _took(self, chunk: RawChunk) -> RawChunk:
        self._counts.queued -= len(chunk)
        if self._room is not None:
            self._room.set()
            self._room = None
        return chunk

    async def fill(self, batch: list[Event], stop: Callable[[], bool]) -> list[Event]:
        """Add chunks to ``batch`` for up to ``max_latency`` until it reaches ``batch_size``.

        ``stop`` ends the wait early when nothing is queued (closing, or a flush waits).
        """
        size = self._delivery.batch_size
        if len(batch) >= size:
            return batch
        batch = list(batch)  # a chunk's events may be shared with other lanes: never extend them
        deadline = time.monotonic() + self._delivery.max_latency
        while len(batch) < size:
            try:
                chunk = self._receive.receive_nowait()
            except anyio.EndOfStream:
                return batch
            except anyio.WouldBlock:
                remaining = deadline - time.monotonic()
                if stop() or remaining <= 0:
                    return batch
                # One wait for the rest of the latency; ``hurry`` cuts it short for a flush.
                with anyio.move_on_after(remaining) as scope:
                    self._fill_scope = scope
                    try:
                        chunk = await self._receive.receive()
                    except anyio.EndOfStream:
                        return batch
                    finally:
                        self._fill_scope = None
                if scope.cancelled_caught:
                    return batch
            batch.extend(self._took(chunk).events())
        return batch

    def hurry(self) -> None:
        """Stop waiting for a fuller batch. Loop only."""
        if self._fill_scope is not None:
            self._fill_scope.cancel()
