"""What happened to the events offered to a sink: the numbers health and the report read."""

from __future__ import annotations


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
