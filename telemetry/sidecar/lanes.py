"""The bus's lanes, keeping a durable cursor: what a sidecar delivers each moved sink with."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from telemetry.events import Event
from telemetry.lane import Lane
from telemetry.progress import Progress
from telemetry.sidecar.cursor import Cursor, CursorFile
from telemetry.sink import Delivery, DurableLog, Sink
from telemetry.spill_lane import SpillLane
from telemetry.writer import Outcome


class Resume:
    """Where a sink's lane starts, from its saved cursor, and the cursor it keeps saving.

    ``keeps_steps_open``: the sink holds each axis's last step until the next
    one arrives (wandb's rows), so a sidecar killed meanwhile lost those steps
    and its successor hands them again (and only them, ``Cursor.resent``).
    ``asks_sink``: the sink knows, once reopened, what its backend holds (a
    resumed wandb run's summary): the cursor is only for the counts, and the
    sink is handed everything since the bus's first ``seq``, as a resumed
    training process hands it, and skips what it holds.
    """

    __slots__ = ("cursor", "file", "keeps_steps_open", "start", "window_end")

    def __init__(
        self,
        folder: Path,
        sink: str,
        first_seq: int,
        *,
        keeps_steps_open: bool,
        asks_sink: bool = False,
    ) -> None:
        self.file = CursorFile(folder, sink)
        saved = self.file.load()
        self.keeps_steps_open = keeps_steps_open
        if saved is None:  # as a lane in the training process: from the bus's first seq
            saved = Cursor(seq=first_seq, base=first_seq)
        elif saved.base != first_seq:  # an earlier process's counts: its bus reported them
            # Its bus publishes its own run_started: the earlier one is not handed again.
            saved = Cursor(seq=saved.seq, base=first_seq, open=saved.open)
        if not keeps_steps_open:
            saved.open = {}
        self.cursor = saved
        self.window_end = saved.seq
        """Seqs up to this were settled by an earlier sidecar: only held-open steps go again."""
        self.start = saved.resend_from - 1
        """The lane's ``last_seq`` at start."""
        if asks_sink:
            self.start = min(saved.seq, first_seq)
            self.window_end = 0

    def only_new(self, batch: Sequence[Event]) -> Sequence[Event]:
        """``batch`` without what an earlier sidecar settled (held-open steps excepted)."""
        end = self.window_end
        if not batch or batch[0].seq > end:
            return batch
        cursor = self.cursor
        return [e for e in batch if e.seq > end or cursor.resent(e)]

    def sink_knows(self) -> None:
        """The sink said what it holds (``SinkBehindError``): it is handed everything after."""
        self.window_end = 0

    def settled(self, seq: int, delivered: int, failed: int, piece: Sequence[Event]) -> None:
        cursor = self.cursor
        cursor.follow(piece, steps=self.keeps_steps_open)
        cursor.seq = max(cursor.seq, seq)
        cursor.delivered, cursor.failed = delivered, failed
        self.file.save(cursor)


class _SavesCursor(Lane):
    """What both cursor lanes add to their lane: skip what the sink holds, save after each batch."""

    resume: Resume

    async def _deliver(self, batch: Sequence[Event]) -> None:
        await super()._deliver(self.resume.only_new(batch))

    def _delivered(self, piece: Sequence[Event]) -> None:
        super()._delivered(piece)
        _save(self, self.resume, piece)

    def _failed(self, piece: Sequence[Event]) -> None:
        super()._failed(piece)
        _save(self, self.resume, piece)


class CursorLane(_SavesCursor):
    """A ``block`` lane that saves its sink's cursor after every batch it settles."""

    def __init__(self, sink: Sink, delivery: Delivery, progress: Progress, resume: Resume) -> None:
        super().__init__(sink, delivery, progress, first_seq=resume.cursor.base)
        _start(self, resume)
        self.resume = resume


class CursorSpillLane(_SavesCursor, SpillLane):
    """A ``spill`` lane (it falls behind onto the followed log) that saves its sink's cursor."""

    def __init__(
        self,
        sink: Sink,
        delivery: Delivery,
        progress: Progress,
        log: DurableLog,
        resume: Resume,
    ) -> None:
        super().__init__(sink, delivery, progress, log, first_seq=resume.cursor.base)
        _start(self, resume)
        self.resume = resume

    def _fell_behind(self, outcome: Outcome, piece: Sequence[Event]) -> bool:
        if outcome is Outcome.BEHIND:
            self.resume.sink_knows()
        return super()._fell_behind(outcome, piece)


def _start(lane: Lane, resume: Resume) -> None:
    """Start ``lane`` where its cursor says, with the counts it had for this bus."""
    cursor = resume.cursor
    lane.last_seq = resume.start
    # Seqs up to the cursor were counted by an earlier sidecar (saved in the cursor).
    lane.counts.first_seq = max(cursor.base, cursor.seq)
    lane.counts.last_offered = max(cursor.base, cursor.seq)
    lane.counts.delivered, lane.counts.failed = cursor.delivered, cursor.failed
    lane.counts.offered = cursor.delivered + cursor.failed


def save_cursor(lane: Lane) -> None:
    """Save where ``lane`` is now (its worker has ended: isolated, done or cancelled)."""
    if isinstance(lane, _SavesCursor):
        _save(lane, lane.resume, ())


def _save(lane: Lane, resume: Resume, piece: Sequence[Event]) -> None:
    counts = lane.counts
    resume.settled(lane.last_seq, counts.delivered, counts.failed, piece)


def cursor_lane(
    sink: Sink, delivery: Delivery, progress: Progress, log: DurableLog, resume: Resume
) -> Lane:
    """The lane the bus would give ``sink`` (``spill`` or ``block``), keeping its cursor."""
    if delivery.overflow == "spill":
        return CursorSpillLane(sink, delivery, progress, log, resume)
    return CursorLane(sink, delivery, progress, resume)
