"""A ``spill`` lane: when its queue is full or its sink is down it falls behind onto the
durable log, reads what it missed back from it, and rejoins the live stream.

``BEHIND``: from ``CatchUp.from_seq`` on, the lane's events are only in the log;
offers are counted spilled. A down sink (``SinkUnavailableError``) is retried
behind the breaker. Once the read-back reaches the log's end the lane is
``REJOINING``: the next chunk offered is queued, and the lane is ``LIVE``
again when the read-back reaches that chunk.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from telemetry.catchup import CatchUp, Step
from telemetry.chunk import RawChunk
from telemetry.events import Event
from telemetry.lane import Lane, LaneMode
from telemetry.progress import Progress
from telemetry.sink import Delivery, DurableLog, Sink
from telemetry.writer import Outcome


class SpillLane(Lane):
    """A lane that can leave its events in the log ``log`` and read them back later."""

    def __init__(
        self,
        sink: Sink,
        delivery: Delivery,
        progress: Progress,
        log: DurableLog,
        *,
        first_seq: int = 0,
        open_timeout: float = 60.0,
    ) -> None:
        super().__init__(
            sink,
            delivery,
            progress,
            first_seq=first_seq,
            open_timeout=open_timeout,
            down_is_final=True,  # the breaker retries a down sink from the log
        )
        self._log = log
        self._catchup: CatchUp | None = None

    # -- the pump's side --

    def offer(self, chunk: RawChunk) -> bool:
        mode, size = self.mode, len(chunk)
        if mode is LaneMode.LIVE and not self._queue.has_room(size):
            self._fall_behind(chunk.first_seq)
            mode = LaneMode.BEHIND
        elif mode is LaneMode.REJOINING:
            assert self._catchup is not None
            self._catchup.limit = chunk.first_seq - 1
            self.mode = LaneMode.LIVE
        if mode is not LaneMode.BEHIND:
            return super().offer(chunk)
        self.counts.spilled += size
        self._count_offer(chunk)
        return True

    # -- the worker's side --

    def _open_failed(self, outcome: Outcome) -> None:
        if outcome is Outcome.DOWN:  # retried behind the breaker; the events wait in the log
            self._down(self.last_seq + 1, self._writer.error or "")
        else:
            super()._open_failed(outcome)

    async def _next_batch(self) -> list[Event] | None:
        while self.mode is not LaneMode.DONE:
            if self.breaker.open and not await self._retry_due():
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

    def _fell_behind(self, outcome: Outcome, piece: Sequence[Event]) -> bool:
        if outcome is Outcome.DOWN:
            self._down(piece[0].seq, self._writer.error or "down")
            return True
        held = self._writer.held
        if held >= piece[0].seq - 1:
            return False
        self.last_seq = held  # read back what the sink lacks; it keeps the rest
        self._fall_behind(held + 1, rewind=True)
        return True

    def _fall_behind(self, seq: int, *, rewind: bool = False) -> None:
        """From ``seq`` on, this lane's events are only in the log.

        A lane still reading back with no limit reads on. With ``rewind`` (its sink
        failed a batch it had read), or while it reads back up to a limit (its reader
        has passed, and dropped, events beyond it that are also in the queue), it
        starts reading again after what it has delivered.
        """
        if self._catchup is not None and self._catchup.limit is not None:
            rewind, seq = True, self.last_seq + 1
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
        if catchup is not self._catchup:  # fell behind again, or stopped, while it read
            return None
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

    def _count_gap(self, piece: Sequence[Event]) -> None:
        # Read back from the log, a missing seq is one it never wrote (it was isolated):
        # only live buses read back, and their seqs are consecutive.
        if self._catchup is not None and self._catchup.reading:
            self.counts.failed += self.counts.missing(piece, after=self.last_seq)

    def _stop_catching_up(self) -> None:
        if self._catchup is not None:
            self._catchup.close()
        self._catchup = None

    def _give_up(self) -> None:
        super()._give_up()
        self._stop_catching_up()

    def _ended(self) -> None:
        self._stop_catching_up()

    def isolate(self, reason: str) -> None:
        self._stop_catching_up()
        super().isolate(reason)
