"""An in-memory sink for users' tests: keeps every event, de-duplicated by ``seq``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telemetry.events import SCALAR_EVENTS, Event
from telemetry.sink import Delivery, SinkContext, fresh
from telemetry.values import Scalar


@dataclass(kw_only=True)
class MemoryOptions(Delivery):
    """Settings of the in-memory sink: only how the bus feeds it."""

    overflow: str = "block"
    """Tests want every event in memory, in order, without a durable log."""


class MemorySink:
    """Collects events in a list; ``values(key)`` gives one metric's history."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.events: list[Event] = []
        self.opened = False
        self.closed = False
        self._last_seq = 0

    async def open(self) -> None:
        self.opened = True

    async def write(self, batch: Sequence[Event]) -> None:
        new = fresh(batch, self._last_seq)
        if new:
            self.events.extend(new)
            self._last_seq = new[-1].seq

    async def close(self, timeout: float) -> None:
        self.closed = True

    def of_type(self, kind: type[Event]) -> list[Event]:
        """Events of one kind, in ``seq`` order."""
        return [e for e in self.events if isinstance(e, kind)]

    def values(self, key: str) -> list[tuple[int, Scalar]]:
        """``(step, value)`` pairs of one metric key across all scalar events."""
        return [
            (e.step, e.values[key])
            for e in self.events
            if isinstance(e, SCALAR_EVENTS) and key in e.values
        ]


OPTIONS = MemoryOptions


def build(context: SinkContext, options: MemoryOptions) -> MemorySink:
    """A fresh in-memory sink."""
    return MemorySink()
