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
from collections.abc import Sequence

import anyio
import structlog

from telemetry.batching import ChunkQueue
from telemetry.catchup import CatchUp, Step
from telemetry.chunk import RawChunk
from telemetry.counts import LaneCounts
from telemetry.events import Event
from telemetry.progress import Progress
from telemetry.retry import Breaker
from telemetry.sink import Delivery, DurableLog, Sink, fresh
from telemetry.writer import Outcome, Writer

logger = structlog.get_logger("telemetry")


class LaneMode(enum.Enum):
    """Where a lane is; see the module's docstring."""

    LIVE = "live"
    BEHIND = "behind"
    REJOINING = "rejoining"
    ISOLATED = "isolated"
    DONE = "done"


class Lane:
    """Feeds one sink: the pump calls ``offer``; a task runs ``run``, which opens and closes it.

    ``log`` is the durable log a ``spill`` lane reads back from. The log's own
    lane is a ``LogLane`` (telemetry/log_lane.py).
    """

    writes_log = False
    """This is the durable log's own lane."""

    def __init__(
        self,
        sink: Sink,
        delivery: Delivery,
        progress: Progress,
        *,
        log: DurableLog | None = None,
        first_seq: int = 0,
        open_timeout: float = 60.0,
    ) -> None:
        self.delivery = delivery
        self.mode = LaneMode.LIVE
        self.counts = LaneCounts(first_seq)
        self.last_seq = first_seq  # a resumed run's log already holds seqs up to first_seq
        self._progress = progress
        self._log = log if delivery.overflow == "spill" else None
        self._writer = Writer(
            sink,
            delivery,
            progress,
            down_is_final=self._log is not None,
            open_timeout=open_timeout,
        )
        self._catchup: CatchUp | None = None
        self._queue = ChunkQueue(delivery, self.counts)

    @property
    def sink(self) -> Sink:
        return self._writer.sink

    @property
    def name(self) -> str:
        return self._writer.sink.name

    @property
    def error(self) -> str | None:
        """The sink's last error, if any."""
        return self._writer.error

    @property
    def breaker(self) -> Breaker:
        return self._writer.breaker

    @property
    def isolated(self) -> bool:
        return self.mode is LaneMode.ISOLATED

    # -- the pump's side: runs on the event loop, never awaits --

    def offer(self, chunk: RawChunk) -> bool:
        """Queue, spill or count ``chunk``; False when a ``block`` queue is full (try again)."""
        counts, size, mode = self.counts, len(chunk), self.mode
        if mode is LaneMode.LIVE:
            if not self._queue.has_room(size):
                if self._log is None:
                    return False  # block: the pump waits for room
                self._fall_behind(chunk.first_seq)
                counts.spilled += size
            else:
                self._queue.put(chunk)
        elif mode is LaneMode.BEHIND:
            counts.spilled += size
        elif mode is LaneMode.REJOINING:
            assert self._catchup is not None
            self._catchup.limit = chunk.first_seq - 1
            self.mode = LaneMode.LIVE
            self._queue.put(chunk)
        elif mode is LaneMode.ISOLATED:
            counts.failed += size
        self._count_offer(chunk)
        return True

    def _count_offer(self, chunk: RawChunk) -> None:
        self.counts.offered += len(chunk)
        self.counts.last_offered = chunk.last_seq

    async def wait_for_room(self) -> None:
        """Wait until the worker takes something off a full ``block`` queue."""
        await self._queue.wait_for_room()

    def hurry(self) -> None:
        """Someone waits for this lane (a flush): stop waiting for a fuller batch. Loop only."""
        self._queue.hurry()

    def end_of_input(self) -> None:
        """No more chunks will be offered."""
        self._queue.end_of_input()

    # -- the worker's side --

    async def open(self) -> bool:
        """Open the sink; a down sink makes the lane fall behind, any other error isolates it."""
        outcome = await self._writer.open()
        error = self._writer.error or ""
        if outcome is Outcome.DOWN and self._log is not None:
            self._down(self.last_seq + 1, error)
        elif outcome is not Outcome.DONE:
            self.isolate(error)
        return outcome is Outcome.DONE

    async def run(self) -> None:
        """Open the sink, deliver until the input ends and any backlog is caught up, close it."""
        try:
            if not self._writer.opened and self.mode is not LaneMode.ISOLATED:
                await self.open()
            while (batch := await self._next_batch()) is not None:
                await self._deliver(batch)
        finally:
            if self.mode is not LaneMode.ISOLATED:
                self.mode = LaneMode.DONE
            self._queue.close()
            self._stop_catching_up()
            self._ended()
            await self._writer.close()

    def _ended(self) -> None:
        """The worker has ended (before the sink is closed)."""

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
                chunk = self._queue.take_nowait()
                if chunk is None and self._catchup is None:
                    chunk = await self._queue.take()
                    if chunk is None:
                        return None
            except anyio.EndOfStream:
                chunk = None
            if chunk is None:  # nothing queued: the rest is in the log
                if self._catchup is None:
                    return None
                self._start_reading_back()
                continue
            if self._catchup is not None and chunk.last_seq >= self._catchup.from_seq:
                continue  # queued before the lane fell behind; the log has these too
            return await self._queue.fill(chunk.events(), self._stop_filling)
        return None

    def _stop_filling(self) -> bool:
        return self._progress.pump_done

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
        self._writer.went_down(reason, seq)

    async def _retry_due(self) -> bool:
        """Wait for the breaker (and reopen a sink that never opened); False to give up."""
        if not await self._writer.retry_due():
            self._give_up()
            return False
        if not self._writer.opened:
            await self.open()
        return self.mode is not LaneMode.ISOLATED

    def _start_reading_back(self) -> None:
        assert self._catchup is not None
        try:
            self._catchup.open()
        except OSError as exc:
            self._writer.report_once("durable_log_unreadable", f"cannot read the log: {exc}")
            self._give_up()

    async def _read_back(self, catchup: CatchUp) -> list[Event] | None:
        """A batch from the log; None once the read-back is over (or after a short wait)."""
        step, events = await catchup.next(self.last_seq, self._progress)
        if step is Step.EVENTS:
            return events
        if step is Step.WAITING:
            if catchup.limit is None and self.mode is LaneMode.BEHIND:
                self.mode = LaneMode.REJOINING  # the next chunk offered goes live
            await anyio.sleep(min(0.01, self.delivery.max_latency) or 0.001)
        elif step is Step.ENDED:
            self._writer.report_once("durable_log_ended", "the log ended before this caught up")
            self._give_up()
        else:
            if step is Step.GAP and catchup.limit is not None:
                self.counts.failed += catchup.limit - self.last_seq  # the log never wrote them
                self.last_seq = catchup.limit
            self._stop_catching_up()
            self.mode = LaneMode.LIVE
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
            piece = fresh(batch[start : start + size], self.last_seq)
            if not piece:
                continue
            if not await self._logged(piece[-1].seq):
                self._give_up()  # the log will never hold these: no sink may get them
                return
            if self.mode is LaneMode.ISOLATED:
                await self._while_isolated(piece)
                continue
            outcome = await self._writer.write(piece)
            if outcome is Outcome.BEHIND:
                held = self._writer.held
                if self._log is not None and held < piece[0].seq - 1:
                    self.last_seq = held  # read back what the sink lacks; it keeps the rest
                    self._fall_behind(held + 1, rewind=True)
                    return
                outcome = await self._writer.write(piece)  # nothing to read back from
            if outcome is Outcome.DOWN:
                self._down(piece[0].seq, self._writer.error or "down")
                return
            if outcome is Outcome.FAILED and await self._written_after_all(piece):
                outcome = Outcome.DONE
            if outcome is Outcome.DONE:
                self._delivered(piece)
            else:
                self._failed(piece)

    def _delivered(self, piece: Sequence[Event]) -> None:
        self.counts.delivered += self.counts.ours(piece)
        self._count_gap(piece)
        self._settled(piece[-1].seq)

    def _failed(self, piece: Sequence[Event]) -> None:
        self.counts.failed += self.counts.ours(piece)
        self._count_gap(piece)
        self._settled(piece[-1].seq)
        if self._writer.streak >= self.delivery.isolate_after:
            self.isolate(f"{self._writer.streak} batches failed in a row")

    def _count_gap(self, piece: Sequence[Event]) -> None:
        """Seqs missing from a piece read back from the log are ones it never wrote: failed.

        Only live buses read back, and their seqs are consecutive (a replay's
        are not: it skips unreadable lines, and its lanes never read back).
        """
        if self._catchup is not None and self._catchup.reading:
            self.counts.failed += self.counts.missing(piece, after=self.last_seq)

    def _settled(self, seq: int) -> None:
        self.last_seq = seq

    async def _logged(self, seq: int) -> bool:
        """Wait until the log holds ``seq`` (write-ahead); False if it never will."""
        return await self._progress.wait_logged(seq)

    async def _while_isolated(self, piece: Sequence[Event]) -> None:
        """A piece taken while isolated (none is queued then: offers are counted failed)."""

    async def _written_after_all(self, piece: Sequence[Event]) -> bool:
        """Every attempt at ``piece`` failed: a last resort before it is counted failed."""
        return False

    def isolate(self, reason: str) -> None:
        """Stop writing to this sink; everything offered and not delivered is counted failed."""
        if self.mode is LaneMode.ISOLATED:
            return
        self.mode = LaneMode.ISOLATED
        self._stop_catching_up()
        counts = self.counts
        self._queue.drop_all()
        counts.failed = counts.offered - counts.delivered
        self._settled(max(self.last_seq, counts.last_offered))
        logger.error("sink_isolated", sink=self.name, reason=reason, error=self.error)
