"""One sink's lane: its bounded stream, counters, batching, retries and log catch-up.

A lane is *live* while it takes chunks from its stream, and *behind* from some
``seq`` on when those events are only in the durable log: because its queue
was full (``spill``), or because its sink said it is down
(``SinkUnavailableError``). A behind lane reads the log from that ``seq``,
rejoins the stream at a chunk boundary, and drops nothing on the way. A down
sink is retried behind a circuit breaker: exponential backoff with jitter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from telemetry.errors import SinkUnavailableError
from telemetry.events import Event
from telemetry.intake import RawChunk
from telemetry.reader import LogTail
from telemetry.sink import Delivery, DurableLog, Sink

log = structlog.get_logger("telemetry")

Chunk = list[Event]
_BREAKER_WAIT = wait_exponential_jitter(multiplier=0.5, max=30.0, jitter=0.5)
"""Seconds before retrying a down sink: 0.5, 1, 2 ... 30, plus up to 0.5 of jitter."""
_RETRY_WAIT = wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05)
"""Seconds between a failed write's retries: 0.05, 0.1, 0.2 ... 2, plus up to 0.05 of jitter."""


def _retry_state(attempt: int) -> RetryCallState:
    """What tenacity's wait strategies read: the number of the attempt that failed."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return state


@dataclass(slots=True)
class ChannelCounts:
    """What happened to the events a sink was offered."""

    delivered: int = 0
    failed: int = 0
    spilled: int = 0
    queued: int = 0


class Breaker:
    """A circuit breaker: closed while the sink works, open with a growing wait after failures."""

    __slots__ = ("failures", "retry_at")

    def __init__(self) -> None:
        self.failures = 0
        self.retry_at = 0.0

    @property
    def open(self) -> bool:
        """The sink failed and has not worked since."""
        return self.failures > 0

    def trip(self) -> float:
        """Record a failure; returns the wait before the next attempt."""
        self.failures += 1
        wait = float(_BREAKER_WAIT(_retry_state(self.failures)))
        self.retry_at = time.monotonic() + wait
        return wait

    def reset(self) -> None:
        self.failures = 0
        self.retry_at = 0.0


class Channel:
    """Feeds one sink from the pump; the pump calls ``offer``, a task runs ``run``."""

    def __init__(
        self,
        sink: Sink,
        delivery: Delivery,
        durable: DurableLog | None,
        pump_state: Callable[[], tuple[bool, int]],
        open_timeout: float = 30.0,
    ) -> None:
        self.sink = sink
        self.name = sink.name
        self.delivery = delivery
        self.counts = ChannelCounts()
        self.last_seq = 0
        self.isolated = False
        self.finished = False
        self.opened = False
        self.error: str | None = None
        self.breaker = Breaker()
        # Events from ``behind_from`` on are only in the durable log for this lane.
        self.behind_from: int | None = None
        self._spill_offset = 0
        self._want_live = False
        self._live_from: int | None = None
        self._tail: LogTail | None = None
        self._durable = durable
        self._pump_state = pump_state  # (pump finished, last seq it dispatched)
        self._open_timeout = open_timeout
        self.durable_channel: Channel | None = None
        self._room: anyio.Event | None = None
        self._logged: set[str] = set()
        self._failures_in_a_row = 0
        self._failed_from: int | None = None  # first seq offered (and counted failed) isolated
        self._gave_up = False
        self.hurry = False  # set while someone waits for this lane to write what it has
        self._fill_scope: anyio.CancelScope | None = None  # the wait for a fuller batch
        self._input_ended: anyio.Event | None = None  # made on the loop, in run()
        self._send: MemoryObjectSendStream[RawChunk]
        self._receive: MemoryObjectReceiveStream[RawChunk]
        self._send, self._receive = anyio.create_memory_object_stream[RawChunk](delivery.capacity)

    @property
    def can_fall_behind(self) -> bool:
        """This lane may leave events in the durable log and read them back later."""
        return self._durable is not None and self.delivery.overflow == "spill"

    # -- pump side (runs on the event loop, never awaits except for ``block``) --

    def offer(self, chunk: RawChunk) -> bool:
        """Queue or spill ``chunk``; False when the sink is full under ``block``."""
        if self.isolated:
            if self._failed_from is None:
                self._failed_from = chunk.first_seq
            self.counts.failed += len(chunk)
            return True
        if self.behind_from is not None:
            if not self._want_live:
                self.counts.spilled += len(chunk)
                return True
            self.behind_from = None
            self._want_live = False
            self._live_from = chunk.first_seq
        counts = self.counts
        if counts.queued and counts.queued + len(chunk) > self.delivery.capacity:
            if self.delivery.overflow == "block":
                return False
            assert self._durable is not None  # the bus refuses spill without a durable log
            self.behind_from = chunk.first_seq
            self._spill_offset = self._durable.written_offset
            counts.spilled += len(chunk)
            return True
        self._send.send_nowait(chunk)
        counts.queued += len(chunk)
        return True

    def wake(self) -> None:
        """Someone waits for this lane (``hurry``): stop waiting for a fuller batch. Loop only."""
        if self._fill_scope is not None:
            self._fill_scope.cancel()

    async def wait_for_room(self) -> None:
        """Wait until the worker takes something off a full ``block`` queue."""
        self._room = anyio.Event()
        await self._room.wait()

    def end_of_input(self) -> None:
        """No more chunks will be offered."""
        self._send.close()
        if self._input_ended is not None:
            self._input_ended.set()

    # -- worker side --

    async def run(self) -> None:
        """Open the sink, then deliver until the input ends and any backlog is caught up."""
        self._input_ended = anyio.Event()
        if self._pump_state()[0]:
            self._input_ended.set()
        try:
            if not self.opened and not self.isolated:
                await self.open()
            while not self._gave_up:
                batch = await self._next_batch()
                if batch is None:
                    return
                await self._deliver(batch)
        finally:
            self.finished = True
            self._receive.close()
            self._close_tail()

    async def open(self) -> bool:
        """Open the sink; a down sink makes the lane fall behind, any other error isolates it."""
        try:
            with anyio.fail_after(self._open_timeout):
                await self.sink.open()
        except (SinkUnavailableError, TimeoutError) as exc:
            reason = str(exc) or f"open took longer than {self._open_timeout} s"
            self.error = f"open failed: {reason}"
            if self.can_fall_behind:
                self._fall_behind(self.last_seq + 1, self.error)
                return False
            self.isolate(self.error)
            return False
        except Exception as exc:
            self.error = f"open failed: {type(exc).__name__}: {exc}"
            self.isolate(self.error)
            return False
        self.opened = True
        return True

    async def _next_batch(self) -> Chunk | None:
        while not self._gave_up:
            # An isolated lane writes nothing, so it has no breaker to wait for: it only
            # still counts, as failed, what it had fallen behind on before the isolation.
            if self.breaker.open and not self.isolated and not await self._wait_for_retry():
                return None
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
            if self.behind_from is not None and chunk.last_seq >= self.behind_from:
                continue  # queued before the lane fell behind; the log has these too
            return await self._fill(chunk.events())
        return None

    def _take(self, chunk: RawChunk) -> RawChunk:
        """Count a chunk off the queue and let a waiting pump go on."""
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
        batch = list(batch)  # a chunk's events may be shared with other lanes: never extend them
        deadline = time.monotonic() + latency
        while len(batch) < size:
            try:
                batch.extend(self._take(self._receive.receive_nowait()).events())
                continue
            except (anyio.WouldBlock, anyio.EndOfStream) as exc:
                if isinstance(exc, anyio.EndOfStream) or self._pump_state()[0] or self.hurry:
                    return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return batch
            # One wait for the rest of the latency; ``wake`` cuts it short for a flush.
            with anyio.move_on_after(remaining) as scope:
                self._fill_scope = scope
                try:
                    batch.extend(self._take(await self._receive.receive()).events())
                except anyio.EndOfStream:
                    return batch
                finally:
                    self._fill_scope = None
        return batch

    # -- a down sink: the circuit breaker --

    def _fall_behind(self, seq: int, reason: str) -> None:
        """The sink is down: leave events from ``seq`` on in the log and retry later."""
        if self.behind_from is None or seq < self.behind_from:
            self.behind_from = seq
        self._want_live = False
        self._live_from = None
        self._close_tail()
        assert self._durable is not None
        self._spill_offset = self._durable.offset_before(self.behind_from)
        wait = self.breaker.trip()
        if self.breaker.failures == 1:
            log.warning(
                "sink_down",
                sink=self.name,
                error=reason,
                behind_from_seq=self.behind_from,
                note="training goes on; events wait in the durable log; retrying with backoff",
            )
        else:
            log.debug("sink_still_down", sink=self.name, retry_in=round(wait, 2))

    async def _wait_for_retry(self) -> bool:
        """Sleep until the breaker lets the next attempt through; False to give up.

        While the bus closes there is one more attempt at once, and then the rest
        is left in the durable log for ``replay``.
        """
        assert self._input_ended is not None
        with anyio.move_on_after(max(0.0, self.breaker.retry_at - time.monotonic())):
            await self._input_ended.wait()
        if self._pump_state()[0]:
            if self._closing_attempted:
                self._give_up()
                return False
            self._closing_attempted = True
        if not self.opened:
            await self.open()
        return not self.isolated

    _closing_attempted = False

    def _give_up(self) -> None:
        self._gave_up = True
        self._close_tail()

    # -- catching up from the durable log --

    def _open_tail(self) -> None:
        assert self._durable is not None
        try:
            self._tail = LogTail(self._durable.path, self._spill_offset)
        except OSError as exc:
            self._log_once("durable_log_unreadable", f"cannot read the durable log: {exc}")
            self._give_up()

    async def _read_tail(self) -> Chunk | None:
        """A batch from the log, or None after switching back to the live stream."""
        assert self._tail is not None
        if self._live_from is not None and self.last_seq >= self._live_from - 1:
            self._close_tail()
            return None
        failed_from = self._failed_from
        if self.isolated and failed_from is not None and self.last_seq >= failed_from - 1:
            # Everything before the isolation is counted; offer() counts the rest.
            self._close_tail()
            self.behind_from = None
            return None
        limit = self._live_from - 1 if self._live_from is not None else None
        # Decoding a megabyte of log takes milliseconds: not on the event loop.
        read = await anyio.to_thread.run_sync(self._tail.read)
        events = [e for e in read if e.seq > self.last_seq and (limit is None or e.seq <= limit)]
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
            self._log_once("durable_log_ended", "the durable log ended before this sink caught up")
            self._give_up()
            return None
        await anyio.sleep(min(0.01, self.delivery.max_latency) or 0.001)
        return None

    def _durable_stalled(self) -> bool:
        """The durable log will grow no more and the tail has read all of it."""
        lane, durable, tail = self.durable_channel, self._durable, self._tail
        if lane is None or durable is None or tail is None:
            return True
        return (lane.finished or lane.isolated) and tail.offset >= durable.written_offset

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
                # A lane isolated while behind still reads the log; what was offered after
                # the isolation is in it too, but offer() counted that failed already.
                limit = self._failed_from
                self.counts.failed += (
                    len(piece) if limit is None else sum(e.seq < limit for e in piece)
                )
                self.last_seq = piece[-1].seq
                continue
            try:
                await self._write_with_retries(piece)
            except SinkUnavailableError as exc:
                if self.can_fall_behind:
                    self._fall_behind(piece[0].seq, str(exc))
                    return
                self._count_failure(piece)
                continue
            except RetryError:
                self._count_failure(piece)
                continue
            self.counts.delivered += len(piece)
            self.last_seq = piece[-1].seq
            self._failures_in_a_row = 0
            if self.breaker.open:
                self.breaker.reset()
                log.info("sink_recovered", sink=self.name, delivered_through_seq=self.last_seq)

    def _count_failure(self, piece: Sequence[Event]) -> None:
        self.counts.failed += len(piece)
        self.last_seq = piece[-1].seq
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= self.delivery.isolate_after:
            self.isolate(f"{self._failures_in_a_row} batches failed in a row")

    async def _write_with_retries(self, piece: Sequence[Event]) -> None:
        """Write, retrying quick glitches; ``RetryError`` when every attempt failed.

        The first attempt is a plain call: tenacity's machinery costs more than a
        small batch's write, and almost every write succeeds. A sink that says it
        is down is not retried here when its lane can fall behind (the breaker
        retries it from the log); a lane that cannot (the durable log itself, a
        lane without one) retries it like any other error.
        """
        behind_on_down = self.can_fall_behind
        try:
            await self._attempt(piece)
            return
        except SinkUnavailableError:
            if behind_on_down:
                raise
        except Exception:  # noted by _attempt; retried below
            pass
        retries = self.delivery.max_retries
        if retries == 0:
            raise RetryError(last_attempt=None)  # type: ignore[arg-type]
        retrying = AsyncRetrying(
            stop=stop_after_attempt(retries),
            # The plain first attempt was attempt 1: tenacity's first is attempt 2.
            wait=lambda state: _RETRY_WAIT(_retry_state(state.attempt_number + 1)),
            retry=retry_if_not_exception_type(SinkUnavailableError)
            if behind_on_down
            else retry_if_exception_type(Exception),
            sleep=anyio.sleep,
            reraise=False,
        )
        await anyio.sleep(_RETRY_WAIT(_retry_state(1)))
        async for attempt in retrying:
            with attempt:
                await self._attempt(piece)

    async def _attempt(self, piece: Sequence[Event]) -> None:
        try:
            await self.sink.write(piece)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            if not (self.can_fall_behind and isinstance(exc, SinkUnavailableError)):
                self._log_once(type(exc).__name__, self.error)
            raise

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
