"""The durable log's own lane: it writes first, settles the seqs every other lane waits for,
holds a batch it cannot write, and comes back after isolation."""

from __future__ import annotations

from collections.abc import Sequence

from telemetry.events import Event
from telemetry.lane import Lane, LaneMode


class LogLane(Lane):
    """A lane whose sink is the durable log; what it settles, ``Progress.logged`` says.

    A batch the log cannot write (a full disk) is held and retried behind the
    breaker while everything behind it waits; after ``isolate_after`` tries
    the lane is isolated. Isolated, it still takes every chunk, in order:
    each is counted failed (and settled, so the other lanes go on), except
    when the breaker lets a try through, and the first write that works makes
    it ``LIVE`` again.
    """

    writes_log = True
    queues_while_isolated = True

    def _settled(self, seq: int) -> None:
        self.last_seq = seq
        self._progress.log_settled(seq)

    async def _logged(self, seq: int) -> bool:
        return True  # this lane is what the others wait for

    def _ended(self) -> None:
        self._progress.log_ended()

    def _stop_filling(self) -> bool:
        progress = self._progress
        return progress.pump_done or progress.flush_to > self.last_seq  # a flush waits

    async def _written_after_all(self, piece: Sequence[Event]) -> bool:
        return await self._writer.hold(piece)

    def _failed(self, piece: Sequence[Event]) -> None:
        super()._failed(piece)  # held and tried until isolate_after: the log is isolated
        self.isolate(f"the log could not be written in {self.breaker.failures} tries")

    async def _while_isolated(self, piece: Sequence[Event]) -> None:
        if self.breaker.due and await self._writer.try_once(piece):
            self.mode = LaneMode.LIVE
            self._delivered(piece)
            return
        if self.breaker.due:
            self.breaker.trip()
        self.counts.failed += len(piece)
        self._settled(piece[-1].seq)

    def isolate(self, reason: str) -> None:
        if self.mode is not LaneMode.ISOLATED:
            super().isolate(reason)
            self.breaker.trip()  # the first try to write again waits for the breaker
