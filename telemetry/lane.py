"""One sink's lane: its bounded queue, its mode, batching, and delivery with retries.

``Lane.mode`` is the one field that says where a lane is:

- ``LIVE``: chunks offered by the pump are queued and written in order.
- ``BEHIND`` and ``REJOINING``: a ``spill`` lane whose events are, from some
  ``seq`` on, only in the durable log, and that reads them back
  (``telemetry/spill_lane.py``).
- ``ISOLATED``: the sink failed ``isolate_after`` batches in a row; offers
  are counted failed. (The log's own lane comes back: ``telemetry/log_lane.py``.)
- ``DONE``: the worker has ended or given up; what is left stays pending.

Write-ahead: a lane that is not the log's delivers no event before the log
has settled it (``Progress.logged``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import structlog

from telemetry.batching import ChunkQueue
from telemetry.chunk import RawChunk
from telemetry.counts import LaneCounts
from telemetry.events import Event
from telemetry.progress import Progress
from telemetry.retry import Breaker
from telemetry.sink import Delivery, Sink, fresh
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

    This lane blocks (the pump waits for room); ``SpillLane`` and ``LogLane``
    are the lanes of the other sinks and of the log when a bus has a log.
    """

    writes_log = False
    """This is the durable log's own lane."""
    queues_while_isolated = False
    """Isolated, the lane still takes chunks in order (the log's, to settle and probe)."""

    def __init__(
        self,
        sink: Sink,
        delivery: Delivery,
        progress: Progress,
        *,
        first_seq: int = 0,
        open_timeout: float = 60.0,
        down_is_final: bool = False,
    ) -> None:
        self.delivery = delivery
        self.mode = LaneMode.LIVE
        self.counts = LaneCounts(first_seq)
        self.last_seq = first_seq  # a resumed run's log already holds seqs up to first_seq
        self._progress = progress
        self._writer = Writer(
            sink, delivery, progress, down_is_final=down_is_final, open_timeout=open_timeout
        )
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
        """Queue or count ``chunk``; False when the queue is full (the pump waits for room)."""
        isolated = self.mode is LaneMode.ISOLATED
        if self.mode is LaneMode.LIVE or (isolated and self.queues_while_isolated):
            if not self._queue.has_room(len(chunk)):
                return False
            self._queue.put(chunk)
        elif isolated:
            self.counts.failed += len(chunk)
        self._count_offer(chunk)
        return True

    def _count_offer(self, chunk: RawChunk) -> None:
        self.counts.offered += len(chunk)
        self.counts.last_offered = chunk.last_seq

    async def wait_for_room(self) -> None:
        """Wait until the worker takes something off a full queue."""
        await self._queue.wait_for_room()

    def hurry(self) -> None:
        """Someone waits for this lane (a flush): stop waiting for a fuller batch. Loop only."""
        self._queue.hurry()

    def end_of_input(self) -> None:
        """No more chunks will be offered."""
        self._queue.end_of_input()

    # -- the worker's side --

    async def open(self) -> bool:
        """Open the sink; True if it opened."""
        outcome = await self._writer.open()
        if outcome is not Outcome.DONE:
            self._open_failed(outcome)
        return outcome is Outcome.DONE

    def _open_failed(self, outcome: Outcome) -> None:
        """The sink did not open: the lane is isolated."""
        self.isolate(self._writer.error or "")

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
            self._ended()
            await self._writer.close()

    def _ended(self) -> None:
        """The worker has ended (before the sink is closed)."""

    async def _next_batch(self) -> list[Event] | None:
        chunk = await self._queue.take()
        if chunk is None or self.mode is LaneMode.DONE:
            return None
        return await self._queue.fill(chunk.events(), self._stop_filling)

    def _stop_filling(self) -> bool:
        return self._progress.pump_done

    def _give_up(self) -> None:
        """Deliver nothing more: what is left stays pending (in the log, for ``replay``)."""
        self.mode = LaneMode.DONE

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
            if outcome in (Outcome.BEHIND, Outcome.DOWN) and self._fell_behind(outcome, piece):
                return
            if outcome is Outcome.BEHIND:
                outcome = await self._writer.write(piece)  # no log to read back from: go on
            if outcome is Outcome.FAILED and await self._written_after_all(piece):
                outcome = Outcome.DONE
            if outcome is Outcome.DONE:
                self._delivered(piece)
            else:
                self._failed(piece)

    def _fell_behind(self, outcome: Outcome, piece: Sequence[Event]) -> bool:
        """The sink is down, or holds less than it was handed: True if the lane fell behind."""
        return False

    async def _logged(self, seq: int) -> bool:
        """Wait until the log holds ``seq`` (write-ahead); False if it never will."""
        return await self._progress.wait_logged(seq)

    async def _while_isolated(self, piece: Sequence[Event]) -> None:
        """A piece taken while isolated (none is queued then: offers are counted failed)."""

    async def _written_after_all(self, piece: Sequence[Event]) -> bool:
        """Every attempt at ``piece`` failed: a last resort before it is counted failed."""
        return False

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
        """Seqs missing from ``piece`` that the lane will never be handed: counted failed."""

    def _settled(self, seq: int) -> None:
        self.last_seq = seq

    def isolate(self, reason: str) -> None:
        """Stop writing to this sink; everything offered and not delivered is counted failed."""
        if self.mode is LaneMode.ISOLATED:
            return
        self.mode = LaneMode.ISOLATED
        self._queue.drop_all()
        counts = self.counts
        counts.failed = counts.offered - counts.delivered
        self._settled(max(self.last_seq, counts.last_offered))
        logger.error("sink_isolated", sink=self.name, reason=reason, error=self.error)
