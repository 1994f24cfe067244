"""The bus's intake: where publishers put events, stamped in order, bounded, handed to the pump.

``log`` stores only the checked values dict and a ``(seq, time, step, axis)``
stamp (``telemetry.chunk`` builds the events later). The intake holds at most
``capacity`` events, counting those the pump has taken and not yet handed to
every lane. When it is full a publisher on another thread waits for room (as
Vector's ``when_full: block`` and wandb-core do), and the wait is counted; a
publisher on the event loop's own thread cannot wait (the pump it would wait
for runs there), so ``log`` goes over the bound and counts an overrun, and
``alog`` waits for room instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import anyio

from telemetry.chunk import Item, Stamp
from telemetry.errors import BusClosedError, InvalidMetricError
from telemetry.events import SCALAR_EVENTS, Event
from telemetry.params import coerce_params
from telemetry.values import coerce_values

E = TypeVar("E", bound=Event)
INTAKE_CAPACITY = 20_000
"""Events the intake holds by default before publishers wait: about 10 MiB of 8-scalar steps."""


class LogCall(Protocol):
    """The signature of ``Bus.log``."""

    def __call__(self, values: Mapping[str, Any], *, step: int, axis: str = "step") -> int: ...


class Intake:
    """Stamps and stores published events under one lock until the pump takes them."""

    __slots__ = (
        "_idle",
        "_items",
        "_lock",
        "_loop",
        "_loop_thread",
        "_refusal",
        "_room",
        "_room_cond",
        "_room_left",
        "_stamps",
        "_wakeup",
        "capacity",
        "first_seq",
        "forwarded",
        "held",
        "overruns",
        "run_id",
        "seq",
        "wait_seconds",
        "waits",
    )

    def __init__(self, run_id: str, *, first_seq: int = 0, capacity: int = INTAKE_CAPACITY) -> None:
        self.run_id = run_id
        self.capacity = capacity
        self.first_seq = first_seq
        self.seq = first_seq  # a resumed run continues its log's numbering
        self.forwarded = 0
        self.held = 0  # taken by the pump, not yet offered to every lane
        self.waits = 0
        self.wait_seconds = 0.0
        self.overruns = 0
        self._lock = threading.Lock()
        self._room_cond = threading.Condition(self._lock)
        self._room_left = capacity  # capacity - held: compared with len(items) on every publish
        # Dicts of numbers and tuples of atomic values are not tracked by the garbage
        # collector, so a backlog of 10^5 steps costs full collections nothing.
        self._items: list[Item] = []
        self._stamps: list[Stamp | None] = []
        self._refusal: str | None = (
            f"bus of run {run_id} is not open yet; use 'async with Bus(...)' first"
        )
        self._idle = False
        self._wakeup: anyio.Event | None = None
        self._room: anyio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    @property
    def size(self) -> int:
        """Events waiting for the pump."""
        return len(self._items)

    # -- publishing: the trainer's hot path --

    def log(self, values: Mapping[str, Any], *, step: int, axis: str = "step") -> int:
        """Stamp and store one step's scalars; returns its ``seq`` (``Bus.log`` itself)."""
        checked = coerce_values(values)
        if type(step) is not int or step < 0:
            step = check_step(step)
        with self._lock:
            if self._refusal is not None:
                raise BusClosedError(self._refusal)
            if len(self._items) >= self._room_left:
                self._wait_for_room()
            self.seq = seq = self.seq + 1
            self._items.append(checked)
            self._stamps.append((seq, time.time(), step, axis))
        if self._idle:
            self.wake()
        return seq

    def emit(self, event_type: type[E], fields: dict[str, Any]) -> E:
        """Check, stamp and store any event kind from its fields."""
        if "values" in fields:
            values = fields["values"]
            scalar = event_type in SCALAR_EVENTS
            fields["values"] = coerce_values(values) if scalar else coerce_params(values)
        if "metadata" in fields:
            fields["metadata"] = coerce_params(fields["metadata"], what="metadata")
        if "step" in fields and (type(fields["step"]) is not int or fields["step"] < 0):
            fields["step"] = check_step(fields["step"])
        with self._lock:
            self._admit_locked()
            event = self._stamp_locked(event_type, fields)
        if self._idle:
            self.wake()
        return event

    def emit_internal(self, event_type: type[E], fields: dict[str, Any]) -> E:
        """Store an event of the pipeline's own (aggregates, health), even while closing."""
        with self._lock:
            return self._stamp_locked(event_type, fields)

    def _stamp_locked(self, event_type: type[E], fields: dict[str, Any]) -> E:
        self.seq = seq = self.seq + 1
        event = event_type(run_id=self.run_id, seq=seq, time=time.time(), **fields)
        self._items.append(event)
        self._stamps.append(None)
        return event

    def forward(self, event: Event) -> None:
        """Store an event that already has its ``seq`` (replay)."""
        with self._lock:
            self._admit_locked()
            self.seq = max(self.seq, event.seq)
            self.forwarded += 1
            self._items.append(event)
            self._stamps.append(None)
        if self._idle:
            self.wake()

    def _admit_locked(self) -> None:
        """Refuse once stopped; wait while full. ``log`` spells this out: it is the hot path."""
        if self._refusal is not None:
            raise BusClosedError(self._refusal)
        if len(self._items) >= self._room_left:
            self._wait_for_room()

    def _wait_for_room(self) -> None:
        """Called with the lock held: wait until the pump frees room (never on the loop)."""
        if threading.get_ident() == self._loop_thread or self._loop is None:
            self.overruns += 1
            return
        self.waits += 1
        started = time.perf_counter()
        while len(self._items) >= self._room_left and self._refusal is None:
            self._room_cond.wait(0.1)
        self.wait_seconds += time.perf_counter() - started
        if self._refusal is not None:
            raise BusClosedError(self._refusal)

    async def room(self) -> None:
        """Wait until the intake has room (for async publishers on the loop)."""
        while len(self._items) >= self._room_left and self._refusal is None:
            if self._room is None:
                self._room = anyio.Event()
            self.wake()
            await self._room.wait()

    # -- the pump's side --

    def start(self) -> None:
        """Accept events; call on the event loop the pump runs on."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wakeup = anyio.Event()
        self._refusal = None

    def stop(self) -> None:
        """Refuse events from now on (the pipeline's own still go in) and wake the pump."""
        with self._lock:
            self._refusal = (
                f"bus of run {self.run_id} is closed; events published after close are refused"
            )
            self._room_cond.notify_all()
        if self._wakeup is not None:
            self._wakeup.set()

    @property
    def stopped(self) -> bool:
        return self._refusal is not None

    def take(self) -> tuple[list[Item], list[Stamp | None]]:
        """Everything published so far, in order; the pump holds it until ``release``."""
        with self._lock:
            items, stamps = self._items, self._stamps
            self._items, self._stamps = [], []
            self.held += len(items)
            self._room_left = self.capacity - self.held
        return items, stamps

    def release(self, count: int) -> None:
        """The pump has offered ``count`` taken events to every lane: room for as many more."""
        with self._lock:
            self.held -= count
            self._room_left = self.capacity - self.held
            if self.waits:
                self._room_cond.notify_all()
        room = self._room
        if room is not None:
            self._room = None
            room.set()

    async def wait_for_input(self) -> None:
        """Sleep until something is published, or the intake stops."""
        self._wakeup = wakeup = anyio.Event()
        self._idle = True
        if self._items or self._refusal is not None:
            self._idle = False
            return
        await wakeup.wait()

    def wake(self) -> None:
        """Wake the pump (from any thread)."""
        self._idle = False
        if self._wakeup is not None:
            self.on_loop(self._wakeup.set)

    def on_loop(self, func: Callable[[], object]) -> None:
        """Run ``func`` on the event loop: now if this is its thread, else soon."""
        if threading.get_ident() == self._loop_thread:
            func()
        elif self._loop is not None:
            # RuntimeError: the loop is gone; close() drains what is left.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(func)

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread


def check_step(step: Any) -> int:
    """A step as a plain int of 0 or more (a 0-d integer array or tensor is accepted)."""
    if isinstance(step, bool) or not isinstance(step, int):
        item = getattr(step, "item", None)
        if getattr(step, "ndim", None) == 0 and callable(item) and isinstance(item(), int):
            step = int(item())
        else:
            raise InvalidMetricError(f"step must be an int, got {type(step).__name__} {step!r}")
    if step < 0:
        raise InvalidMetricError(f"step must be 0 or more, got {step}")
    return int(step)
