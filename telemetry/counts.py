"""What happened to the events offered to a sink: the numbers health and the report read."""

from __future__ import annotations

from collections.abc import Sequence

from telemetry.events import Event


class LaneCounts:
    """What happened to the events a sink was offered."""

    __slots__ = ("delivered", "failed", "first_seq", "last_offered", "offered", "queued", "spilled")

    def __init__(self, first_seq: int = 0) -> None:
        self.first_seq = first_seq
        """Seqs up to this one are an earlier process's (a resumed run): not counted here."""
        self.delivered = 0
        self.failed = 0
        self.offered = 0
        self.last_offered = first_seq
        self.queued = 0
        self.spilled = 0

    def ours(self, piece: Sequence[Event]) -> int:
        """Events of ``piece`` this bus published (a resumed sink may be sent older ones)."""
        first = self.first_seq
        return len(piece) if piece[0].seq > first else sum(e.seq > first for e in piece)

    def missing(self, piece: Sequence[Event], *, after: int) -> int:
        """This bus's seqs between ``after`` and the end of ``piece`` that ``piece`` lacks."""
        return max(0, piece[-1].seq - max(after, self.first_seq) - self.ours(piece))
