"""The sink contract and the per-sink delivery settings the bus applies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TypeVar, runtime_checkable

from telemetry.checks import COUNT, UP_TO_A_MINUTE, Interval, check_numbers
from telemetry.errors import ConfigError
from telemetry.events import Envelope, Event

E = TypeVar("E", bound=Envelope)
Overflow = Literal["block", "spill"]
OVERFLOW_POLICIES: tuple[Overflow, ...] = ("block", "spill")
PROCESSES = ("auto", "in", "sidecar")
"""Where a sink runs: ``in`` the training process, in the ``sidecar`` that follows the log,
or ``auto``: the run's ``sidecar.default`` (the console and test sinks stay in)."""


@runtime_checkable
class Sink(Protocol):
    """Where events go. Open once, write batches in ``seq`` order, close within a deadline.

    ``write`` may be called again with events it has already seen (at-least-once
    delivery); a sink skips any event whose ``seq`` it has already written (``fresh``).
    Blocking client libraries must run in worker threads, never on the event loop.
    """

    name: str

    async def open(self) -> None:
        """Acquire files, clients, connections."""

    async def write(self, batch: Sequence[Event]) -> None:
        """Record a batch of events, in ``seq`` order."""

    async def close(self, timeout: float) -> None:
        """Flush and release everything, giving up after ``timeout`` seconds."""


def fresh(batch: Sequence[E], last_seq: int) -> Sequence[E]:
    """The events of ``batch`` (in ``seq`` order) after ``last_seq``: what a sink has not written.

    The batch itself when it holds nothing old, as almost every batch does.
    """
    if not batch or batch[0].seq > last_seq:
        return batch
    return [e for e in batch if e.seq > last_seq]


@runtime_checkable
class DurableLog(Protocol):
    """A sink that is the run's source of truth: spilled sinks catch up from its file."""

    path: Path

    @property
    def written_offset(self) -> int:
        """Bytes of whole lines written to ``path`` so far (readable by another handle)."""

    def offset_before(self, seq: int) -> int:
        """A byte offset at a line start at or before the line of ``seq``."""


@dataclass(kw_only=True)
class Delivery:
    """How the bus feeds one sink: its queue bound, overflow policy and batching.

    Every sink's config section holds these keys besides its own.
    """

    capacity: int = 10_000
    """Events queued in memory for the sink at most; past it the overflow policy applies."""
    overflow: str = "spill"
    """``block``: the bus waits for room; ``spill``: the sink falls behind onto the durable log."""
    batch_size: int = 1_000
    """Events per ``write`` call at most."""
    max_latency: float = 0.05
    """Seconds an event may wait for its batch to fill before it is written anyway."""
    max_retries: int = 3
    """Extra attempts at a failed batch before it is counted failed."""
    isolate_after: int = 3
    """Consecutive failed batches after which the sink is isolated (gets no more events)."""
    process: str = "auto"
    """``in`` the training process, in the ``sidecar`` process that follows the log, or
    ``auto``: the run's ``sidecar.default`` (the console stays in unless asked)."""

    def validate(self, section: str) -> None:
        """Raise ``ConfigError`` naming ``section.key`` for the first value not allowed.

        The numbers first (``limits``), then the other checks (``extra_checks``).
        """
        check_numbers(section, self, self.limits())
        checks = [
            ("overflow", self.overflow in OVERFLOW_POLICIES, " or ".join(OVERFLOW_POLICIES)),
            ("process", self.process in PROCESSES, ", ".join(PROCESSES)),
        ]
        for key, ok, allowed in checks + self.extra_checks():
            if not ok:
                value = getattr(self, key)
                raise ConfigError(f"{section}.{key} must be {allowed}, got {value!r}")

    def limits(self) -> dict[str, Interval]:
        """The numbers allowed for each numeric key; a sink adds its own to ``super().limits()``."""
        return {
            "capacity": COUNT,
            "batch_size": COUNT,
            "max_latency": UP_TO_A_MINUTE,
            "max_retries": Interval(0, integer=True, text="0 or more"),
            "isolate_after": COUNT,
        }

    def extra_checks(self) -> list[tuple[str, bool, str]]:
        """A sink's own keys other than numbers: ``(key, is valid, what is allowed)``."""
        return []


@dataclass(frozen=True, slots=True)
class RelayedCounts:
    """One sink fed by another process (a sidecar): its counts, as a lane's would read."""

    name: str
    delivered: int
    failed: int
    queued: int = 0
    spilled: int = 0
    isolated: bool = False
    error: str | None = None


@runtime_checkable
class Relay(Protocol):
    """A sink that hands events on to sinks in another process (``telemetry.sidecar``).

    Health and the close report show those sinks' counts in its place.
    """

    deadline_missed: bool
    """Some sink it feeds did not close within the close deadline."""

    def relayed(self) -> Sequence[RelayedCounts]:
        """The counts of every sink it feeds, now."""


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What a sink builder may need to know about the run it serves."""

    run_id: str
    run_dir: Path
    run_name: str
    resumed: bool = False
