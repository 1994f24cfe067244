"""One sink's lane: its bounded queue, its mode, batching, and delivery with retries.

Modes (``Lane.mode``, the one field that says where the lane is):

- ``LIVE``: chunks offered by the pump are queued and written in order.
- ``BEHIND``: from ``CatchUp.from_seq`` on, the lane's events are only in the
  durable log, because its queue was full (``spill``) or its sink is down
  (``SinkUnavailableError``, retried behind the breaker). Offers are counted
  spilled; the lane reads what it missed back from the log.
- ``REJOINING``: the read-back reached the log's end: the next offer is queued
  and the lane is ``LIVE`` again once the read-back reaches that chunk.
- ``ISOLATED``: the sink failed too often; offers are counted failed. The
  durable log's own lane keeps probing behind its breaker and is ``LIVE``
  again as soon as a write succeeds.
- ``DONE``: the lane gave up (closing, or nothing left to read): offers stay pending.

Write-ahead: a lane that is not the log's delivers no event before the log
has settled it (``Progress.logged``).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from tenacity import RetryError

from telemetry.catchup import CatchUp
from telemetry.chunk import RawChunk
from telemetry.errors import SinkUnavailableError
from telemetry.events import Event
from telemetry.progress import Progress
from telemetry.retry import Breaker, write_with_retries
from telemetry.sink import Delivery, DurableLog, Sink

logger = structlog.get_logger("telemetry")


class LaneMode(enum.Enum):
    """Where a lane is; see the module's docstring."""

    LIVE = "live"
    BEHIND = "behind"
    REJOINING = "rejoining"
    ISOLATED = "isolated"
    DONE = "done"


class LaneCounts:
    """What happened to the events a sink was offered."""

    __slots__ = ("delivered", "failed", "last_offered", "offered", "queued", "spilled")

    def __init__(self, first_seq: int = 0) -> None:
        self.delivered = 0
        self.failed = 0
        self.offered = 0
        self.last_offered = first_seq
        self.queued = 0
        self.spilled = 0


class Lane:
    """Feeds one sink: the pump calls ``offer``; a task runs ``run``, which opens and closes it.

    ``log`` is the durable log a ``spill`` lane reads back from; ``writes_log``
    marks the log's own lane, which settles ``progress.logged``.
    """

    def __init__(
        self,
        sink: Sink,
        delivery: Delivery,
        progress: Progress,
        *,
        log: DurableLog | None = None,
        writes_log: bool = False,
        first_seq: int = 0,
        open_timeout: float = 60.0,
    ) -> None:
        self.sink = sink
        self.delivery = delivery
        self.mode = LaneMode.LIVE
        self.counts = LaneCounts(first_seq)
        self.last_seq = first_seq  # a resumed run's log already holds seqs up to first_seq
        self.error: str | None = None
        self.breaker = Breaker()
        self._progress = progress
        self._log = log if delivery.overflow == "spill" else None
        self._writes_log = writes_log
        self._open_timeout = open_timeout
        self._opened = False
        self._closing_attempted = False
        self._streak = 0  # failed batches in a row
        self._catchup: CatchUp | None = None
        self._room: anyio.Event | None = None
        self._fill_scope: anyio.CancelScope | None = None
        self._reported: set[str] = set()
        self._send: MemoryObjectSendStream[RawChunk]
        self._receive: MemoryObjectReceiveStream[RawChunk]
        self._send, self._receive = anyio.create_memory_object_stream[RawChunk](delivery.capacity)

    @property
    def name(self) -> str:
        return self.sink.name

    @property
    def isolated(self) -> bool:
        return self.mode is LaneMode.ISOLATED

    @property
    def writes_log(self) -> bool:
        """This is the durable log's own lane."""
        return self._writes_log

    # -- the pump's side: runs on the event loop, never awaits --

    def offer(self, chunk: RawChunk) -> bool:
        """Queue, spill or count ``chunk``; False when a ``block`` queue is full (try again)."""
        counts, size, mode = self.counts, len(chunk), self.mode
        if mode is LaneMode.LIVE or (mode is LaneMode.ISOLATED and self._writes_log):
            if counts.queued and counts.queued + size > self.delivery.capacity:
                if self._log is None:
                    return False  # block: the pump waits for room
                self._fall_behind(chunk.first_seq)
                counts.spilled += size
            else:
                self._queue(chunk)
        elif mode is LaneMode.BEHIND:
            counts.spilled += size
        elif mode is LaneMode.REJOINING:
            assert self._catchup is not None
            self._catchup.limit = chunk.first_seq - 1
            self.mode = LaneMode.LIVE
            self._queue(chunk)
        elif mode is LaneMode.ISOLATED:
            counts.failed += size
        counts.offered += size
        counts.last_offered = chunk.last_seq
        return True

    def _queue(self, chunk: RawChunk) -> None:
        try:
            self._send.send_nowait(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return  # the worker has ended: the chunk stays pending
        self.counts.queued += len(chunk)

    async def wait_for_room(self) -> None:
        """Wait until the worker takes something off a full ``block`` queue."""
        self._room = anyio.Event()
        await self._room.wait()

    def hurry(self) -> None:
        """Someone waits for this lane (a flush): stop waiting for a fuller batch. Loop only."""
        if self._fill_scope is not None:
            self._fill_scope.cancel()

    def end_of_input(self) -> None:
        """No more chunks will be offered."""
        self._send.close()

    # -- the worker's side --

    async def open(self) -> bool:
        """Open the sink; a down sink makes the lane fall behind, any other error isolates it."""
        try:
            with anyio.fail_after(self._open_timeout):
                await self.sink.open()
        except (SinkUnavailableError, TimeoutError) as exc:
            reason = str(exc) or f"open took longer than {self._open_timeout} s"
            self.error = f"open failed: {reason}"
            if self._log is not None:
                self._down(self.last_seq + 1, self.error)
            else:
                self.isolate(self.error)
            return False
        except Exception as exc:
            self.error = f"open failed: {type(exc).__name__}: {exc}"
            self.isolate(self.error)
            return False
        self._opened = True
        return True

    async def run(self) -> None:
        """Open the sink, deliver until the input ends and any backlog is caught up, close it."""
        try:
            if not self._opened and self.mode is not LaneMode.ISOLATED:
                await self.open()
            while (batch := await self._next_batch()) is not None:
                await self._deliver(batch)
        finally:
            if self.mode is not LaneMode.ISOLATED:
                self.mode = LaneMode.DONE
            self._receive.close()
            self._stop_catching_up()
            if self._writes_log:
                self._progress.log_ended()
            await self._close_sink()

    async def _close_sink(self) -> None:
        # A sink that missed the deadline still gets a moment to flush what it has.
        close_by = self._progress.close_by
        remaining = max(0.05, close_by - time.monotonic()) if close_by else 1.0
        with anyio.CancelScope(shield=True), anyio.move_on_after(remaining):
            try:
                await self.sink.close(remaining)
            except Exception as exc:
                self.error = self.error or f"close failed: {type(exc).__name__}: {exc}"
                logger.warning("sink_close_failed", sink=self.name, error=str(exc))

    async def _next_batch(self) -> list[Event] | None:
        while self.mode is not LaneMode.DONE:
            if self.breaker.open and self._log is not None and not await self._retry_due():
                return None
            catchup = self._catchup
            if catchup is not None and catchup.reading:
                batch = await self._read_back(catchup)
                if batch:
                    return batch
                continue
            try:
                chunk = self._receive.receive_nowait()
            except anyio.WouldBlock:
                if self._catchup is not None:
                    self._start_reading_back()
                    continue
                try:
                    chunk = await self._receive.receive()
                except anyio.EndOfStream:
                    chunk = None
            except anyio.EndOfStream:
                chunk = None
            if chunk is None:
                if self._catchup is None:
                    return None
                self._start_reading_back()
                continue
            self._took(chunk)
            if self._catchup is not None and chunk.last_seq >= self._catchup.from_seq:
                continue  # queued before the lane fell behind; the log has these too
            return await self._fill(chunk.events())
        return None

    def _took(self, chunk: RawChunk) -> None:
        """Count a chunk off the queue and let a waiting pump go on."""
        self.counts.queued -= len(chunk)
        if self._room is not None:
            self._room.set()
            self._room = None

    async def _fill(self, batch: list[Event]) -> list[Event]:
        """Wait up to ``max_latency`` for the batch to reach ``batch_size``."""
        size, progress = self.delivery.batch_size, self._progress
        if len(batch) >= size:
            return batch
        batch = list(batch)  # a chunk's events may be shared with other lanes: never extend them
        deadline = time.monotonic() + self.delivery.max_latency
        while len(batch) < size:
            try:
                chunk = self._receive.receive_nowait()
                self._took(chunk)
                batch.extend(chunk.events())
                continue
            except anyio.EndOfStream:
                return batch
            except anyio.WouldBlock:
                if progress.pump_done or (self._writes_log and progress.flush_to > self.last_seq):
                    return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
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
                self._took(chunk)
                batch.extend(chunk.events())
        return batch

    # -- behind: a full queue or a down sink; catching up from the log --

    def _fall_behind(self, seq: int, *, rewind: bool = False) -> None:
        """From ``seq`` on, this lane's events are only in the log.

        A lane still reading back reads on past its limit; with ``rewind`` (its
        sink failed a batch it had read) it starts reading again from ``seq``.
        """
        assert self._log is not None
        if self._catchup is None or rewind:
            self._stop_catching_up()
            self._catchup = CatchUp(self._log, seq)
        self._catchup.limit = None
        self.mode = LaneMode.BEHIND

    def _down(self, seq: int, reason: str) -> None:
        """The sink is down: leave events from ``seq`` on in the log and retry later."""
        self._fall_behind(seq, rewind=True)
        wait = self.breaker.trip()
        if self.breaker.failures == 1:
            logger.warning(
                "sink_down",
                sink=self.name,
                error=reason,
                behind_from_seq=seq,
                note="training goes on; events wait in the durable log; retrying with backoff",
            )
        else:
            logger.debug("sink_still_down", sink=self.name, retry_in=round(wait, 2))

    async def _retry_due(self) -> bool:
        """Sleep until the breaker lets the next attempt through; False to give up.

        While the bus closes there is one more attempt at once, and then the rest
        is left in the durable log for ``replay``.
        """
        await self._progress.sleep_unless_ended(self.breaker.retry_at - time.monotonic())
        if self._progress.pump_done:
            if self._closing_attempted:
                self._give_up()
                return False
            self._closing_attempted = True
        if not self._opened:
            await self.open()
        return self.mode is not LaneMode.ISOLATED

    def _start_reading_back(self) -> None:
        assert self._catchup is not None
        try:
            self._catchup.open()
        except OSError as exc:
            self._report_once("durable_log_unreadable", f"cannot read the durable log: {exc}")
            self._give_up()

    async def _read_back(self, catchup: CatchUp) -> list[Event] | None:
        """A batch from the log; None (and no wait) once the read-back is over."""
        if catchup.done(self.last_seq):
            self._stop_catching_up()
            return None
        events, passed = await catchup.read(self.last_seq)
        if events:
            return events
        if passed and catchup.limit is not None:
            self.counts.failed += catchup.limit - self.last_seq  # never written to the log
            self.last_seq = catchup.limit
            self._stop_catching_up()
            return None
        progress, log = self._progress, self._log
        assert log is not None
        if progress.pump_done and catchup.limit is None and self.last_seq >= progress.dispatched:
            self._stop_catching_up()
            self.mode = LaneMode.LIVE
            return None
        if progress.log_done and catchup.at_end_of(log):
            self._report_once(
                "durable_log_ended", "the durable log ended before this sink caught up"
            )
            self._give_up()
            return None
        if catchup.limit is None and self.mode is LaneMode.BEHIND:
            self.mode = LaneMode.REJOINING
        await anyio.sleep(min(0.01, self.delivery.max_latency) or 0.001)
        return None

    def _stop_catching_up(self) -> None:
        if self._catchup is not None:
            self._catchup.close()
        self._catchup = None

    def _give_up(self) -> None:
        """Deliver nothing more: what is left stays pending (in the log, for ``replay``)."""
        self.mode = LaneMode.DONE
        self._stop_catching_up()

    # -- writing, with retries and isolation --

    async def _deliver(self, batch: Sequence[Event]) -> None:
        size = self.delivery.batch_size
        for start in range(0, len(batch), size):
            piece = [e for e in batch[start : start + size] if e.seq > self.last_seq]
            if not piece:
                continue
            if not self._writes_log and not await self._progress.wait_logged(piece[-1].seq):
                self._give_up()  # the log will never hold these: no sink may get them
                return
            if self.mode is LaneMode.ISOLATED:
                if self._writes_log:  # the isolated log still settles its events in order
                    await self._probe(piece)
                continue
            try:
                await write_with_retries(
                    lambda p=piece: self._attempt(p),  # type: ignore[misc]
                    self.delivery.max_retries,
                    down_is_final=self._log is not None,
                )
            except SinkUnavailableError as exc:
                self._down(piece[0].seq, str(exc))
                return
            except RetryError:
                if not self._writes_log:
                    self._failed(piece)
                elif not await self._hold(piece):
                    self._failed(piece)
                    self.isolate(f"the log could not be written for {self.breaker.failures} tries")
                continue
            self._delivered(piece)

    async def _attempt(self, piece: Sequence[Event]) -> None:
        try:
            await self.sink.write(piece)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            if not (self._log is not None and isinstance(exc, SinkUnavailableError)):
                self._report_once(type(exc).__name__, self.error)
            raise

    def _delivered(self, piece: Sequence[Event]) -> None:
        self.counts.delivered += len(piece)
        self._count_gap(piece)
        self._settled(piece[-1].seq)
        self._streak = 0
        if self.breaker.open:
            self.breaker.reset()
            logger.info("sink_recovered", sink=self.name, delivered_through_seq=self.last_seq)

    def _failed(self, piece: Sequence[Event]) -> None:
        self.counts.failed += len(piece)
        self._count_gap(piece)
        self._settled(piece[-1].seq)
        self._streak += 1
        if self._streak >= self.delivery.isolate_after:
            self.isolate(f"{self._streak} batches failed in a row")

    def _count_gap(self, piece: Sequence[Event]) -> None:
        """Seqs missing from a piece read back from the log are ones it never wrote: failed.

        Only live buses read back, and their seqs are consecutive (a replay's
        are not: it skips unreadable lines, and its lanes never read back).
        """
        if self._catchup is not None and self._catchup.reading:
            self.counts.failed += piece[-1].seq - self.last_seq - len(piece)

    def _settled(self, seq: int) -> None:
        self.last_seq = seq
        if self._writes_log:
            self._progress.log_settled(seq)

    async def _hold(self, piece: Sequence[Event]) -> bool:
        """The log cannot write: keep the batch and retry it behind the breaker.

        Everything behind it waits (in the lane's queue, then the bounded intake,
        then the publisher). After ``isolate_after`` more failed attempts, or when
        the bus closes, the log is isolated and training is told.
        """
        while True:
            wait = self.breaker.trip()
            if self.breaker.failures == 1:
                logger.warning(
                    "sink_down",
                    sink=self.name,
                    error=self.error,
                    note="later events wait in memory; the publisher waits once the intake is full",
                )
            if self.breaker.failures >= self.delivery.isolate_after or self._progress.pump_done:
                return False
            await self._progress.sleep_unless_ended(wait)
            try:
                await self._attempt(piece)
            except Exception:
                continue
            self._delivered(piece)
            return True

    async def _probe(self, piece: Sequence[Event]) -> None:
        """An isolated log's piece: counted failed, or once the breaker allows, one attempt
        that makes it ``LIVE`` again if it writes."""
        if not self.breaker.due:
            self.counts.failed += len(piece)
            self._settled(piece[-1].seq)
            return
        try:
            if not self._opened and not await self.open():
                raise SinkUnavailableError(self.error or "cannot open")
            await self._attempt(piece)
        except Exception:
            self.counts.failed += len(piece)
            self._settled(piece[-1].seq)
            self.breaker.trip()
            return
        self.mode = LaneMode.LIVE
        self._delivered(piece)

    def isolate(self, reason: str) -> None:
        """Stop writing to this sink; everything offered and not delivered is counted failed."""
        if self.mode is LaneMode.ISOLATED:
            return
        self.mode = LaneMode.ISOLATED
        self._stop_catching_up()
        counts = self.counts
        while True:
            try:
                self._took(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
        counts.failed = counts.offered - counts.delivered
        self._settled(max(self.last_seq, counts.last_offered))
        if self._writes_log:
            self.breaker.trip()
        logger.error("sink_isolated", sink=self.name, reason=reason, error=self.error)

    def _report_once(self, kind: str, message: str) -> None:
        if kind in self._reported:
            return
        self._reported.add(kind)
        logger.warning(
            "sink_error", sink=self.name, error=message, note="further errors of this kind counted"
        )
