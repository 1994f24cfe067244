"""One sink's lane: its bounded stream, counters, batching, retries and log catch-up."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from tenacity import AsyncRetrying, RetryError, stop_after_attempt, wait_exponential_jitter

from telemetry.events import Event
from telemetry.reader import LogTail
from telemetry.sink import Delivery, DurableLog, Sink

log = structlog.get_logger("telemetry")

Chunk = list[Event]


@dataclass(slots=True)
class ChannelCounts:
    """What happened to the events a sink was offered."""

    delivered: int = 0
    failed: int = 0
    spilled: int = 0
    queued: int = 0


class Channel:
    """Feeds one sink from the pump; the pump calls ``offer``, a task runs ``run``."""

    def __init__(
        self,
        sink: Sink,
        delivery: Delivery,
        durable: DurableLog | None,
        pump_state: Callable[[], tuple[bool, int]],
    ) -> None:
        self.sink = sink
        self.name = sink.name
        self.delivery = delivery
        self.counts = ChannelCounts()
        self.last_seq = 0
        self.isolated = False
        self.finished = False
        self.error: str | None = None
        # Spill state: events from ``behind_from`` on are only in the durable log.
        self.behind_from: int | None = None
        self._spill_offset = 0
        self._want_live = False
        self._live_from: int | None = None
        self._tail: LogTail | None = None
        self._durable = durable
        self._pump_state = pump_state  # (pump finished, last seq it dispatched)
        self.durable_channel: Channel | None = None
        self._room: anyio.Event | None = None
        self._logged: set[str] = set()
        self._failures_in_a_row = 0
        self._send: MemoryObjectSendStream[Chunk]
        self._receive: MemoryObjectReceiveStream[Chunk]
        self._send, self._receive = anyio.create_memory_object_stream[Chunk](delivery.capacity)

    # -- pump side (runs on the event loop, never awaits except for ``block``) --

    def offer(self, chunk: Chunk) -> bool:
        """Queue or spill ``chunk``; False when the sink is full under ``block``."""
        if self.isolated or self.finished:
            self.counts.failed += len(chunk)
            return True
        if self.behind_from is not None:
            if not self._want_live:
                self.counts.spilled += len(chunk)
                return True
            self.behind_from = None
            self._want_live = False
            self._live_from = chunk[0].seq
        counts = self.counts
        if counts.queued and counts.queued + len(chunk) > self.delivery.capacity:
            if self.delivery.overflow == "block":
                return False
            assert self._durable is not None  # the bus refuses spill without a durable log
            self.behind_from = chunk[0].seq
            self._spill_offset = self._durable.written_offset
            counts.spilled += len(chunk)
            return True
        self._send.send_nowait(chunk)
        counts.queued += len(chunk)
        return True

    async def wait_for_room(self) -> None:
        """Wait until the worker takes something off a full ``block`` queue."""
        self._room = anyio.Event()
        await self._room.wait()

    def end_of_input(self) -> None:
        """No more chunks will be offered."""
        self._send.close()

    # -- worker side --

    async def run(self) -> None:
        """Deliver until the input ends and any spilled backlog is caught up."""
        try:
            while True:
                batch = await self._next_batch()
                if batch is None:
                    return
                await self._deliver(batch)
        finally:
            self.finished = True
            self._receive.close()
            if self._tail is not None:
                self._tail.close()

    async def _next_batch(self) -> Chunk | None:
        while True:
            if self._tail is not None:
                batch = await self._read_tail()
                if batch is None:
                    continue
                return batch
            try:
                chunk = self._take(self._receive.receive_nowait())
            except anyio.WouldBlock:
                if self.behind_from is not None:
                    self._open_tail()
                    continue
                try:
                    chunk = self._take(await self._receive.receive())
                except anyio.EndOfStream:
                    if self.behind_from is not None:
                        self._open_tail()
                        continue
                    return None
            except anyio.EndOfStream:
                if self.behind_from is not None:
                    self._open_tail()
                    continue
                return None
            return await self._fill(chunk)

    def _take(self, chunk: Chunk) -> Chunk:
        self.counts.queued -= len(chunk)
        if self._room is not None:
            self._room.set()
            self._room = None
        return chunk

    async def _fill(self, batch: Chunk) -> Chunk:
        """Wait up to ``max_latency`` for the batch to reach ``batch_size``."""
        size, latency = self.delivery.batch_size, self.delivery.max_latency
        if len(batch) >= size:
            return batch
        batch = list(batch)  # chunks are shared by every channel: never extend one in place
        deadline = time.monotonic() + latency
        while len(batch) < size:
            try:
                batch.extend(self._take(self._receive.receive_nowait()))
                continue
            except (anyio.WouldBlock, anyio.EndOfStream) as exc:
                if isinstance(exc, anyio.EndOfStream) or self._pump_state()[0]:
                    return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return batch
            with anyio.move_on_after(remaining):
                try:
                    batch.extend(self._take(await self._receive.receive()))
                    continue
                except anyio.EndOfStream:
                    return batch
            return batch
        return batch

    # -- catching up from the durable log --

    def _open_tail(self) -> None:
        assert self._durable is not None
        self._tail = LogTail(self._durable.path, self._spill_offset)

    async def _read_tail(self) -> Chunk | None:
        """A batch from the log, or None after switching back to the live stream."""
        assert self._tail is not None
        if self._live_from is not None and self.last_seq >= self._live_from - 1:
            self._close_tail()
            return None
        limit = self._live_from - 1 if self._live_from is not None else None
        events = [
            e
            for e in self._tail.read()
            if e.seq > self.last_seq and (limit is None or e.seq <= limit)
        ]
        if events:
            return events
        pump_done, final_seq = self._pump_state()
        if pump_done and self._live_from is None and self.last_seq >= final_seq:
            self._close_tail()
            self.behind_from = None
            return None
        if self._live_from is None and self.behind_from is not None:
            self._want_live = True
        if self._durable_stalled():
            self._give_up_tail()
            return None
        await anyio.sleep(min(0.01, self.delivery.max_latency) or 0.001)
        return None

    def _durable_stalled(self) -> bool:
        """The durable log will grow no more and the tail has read all of it."""
        lane, durable, tail = self.durable_channel, self._durable, self._tail
        if lane is None or durable is None or tail is None:
            return True
        return (lane.finished or lane.isolated) and tail.offset >= durable.written_offset

    def _give_up_tail(self) -> None:
        self._log_once("durable_log_ended", "the durable log ended before this sink caught up")
        self._close_tail()
        self.behind_from = None
        self._live_from = None

    def _close_tail(self) -> None:
        if self._tail is not None:
            self._tail.close()
        self._tail = None
        self._live_from = None

    # -- writing, with retries and isolation --

    async def _deliver(self, batch: Sequence[Event]) -> None:
        size = self.delivery.batch_size
        for start in range(0, len(batch), size):
            piece = [e for e in batch[start : start + size] if e.seq > self.last_seq]
            if not piece:
                continue
            if self.isolated:
                self.counts.failed += len(piece)
                continue
            if await self._write_with_retries(piece):
                self.counts.delivered += len(piece)
                self._failures_in_a_row = 0
            else:
                self.counts.failed += len(piece)
                self._failures_in_a_row += 1
                if self._failures_in_a_row >= self.delivery.isolate_after:
                    self.isolate(f"{self._failures_in_a_row} batches failed in a row")
            self.last_seq = piece[-1].seq

    async def _write_with_retries(self, piece: Sequence[Event]) -> bool:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.delivery.max_retries + 1),
            wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05),
            sleep=anyio.sleep,
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        await self.sink.write(piece)
                    except Exception as exc:
                        self.error = f"{type(exc).__name__}: {exc}"
                        self._log_once(type(exc).__name__, self.error)
                        raise
        except RetryError:
            return False
        return True

    def isolate(self, reason: str) -> None:
        """Stop writing to this sink; everything offered from now on is counted failed."""
        if not self.isolated:
            self.isolated = True
            log.error("sink_isolated", sink=self.name, reason=reason, error=self.error)

    def _log_once(self, kind: str, message: str) -> None:
        if kind in self._logged:
            return
        self._logged.add(kind)
        log.warning(
            "sink_error", sink=self.name, error=message, note="further errors of this kind counted"
        )
