"""The event bus: stamps events, fans them out to one bounded lane per sink, closes on time."""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import structlog
from anyio.abc import TaskGroup

from telemetry.aggregate import AggregateSpec, Aggregator
from telemetry.alerts import Alerts, AlertSpec, StopRequest
from telemetry.checks import COUNT, TIMEOUT
from telemetry.errors import ConfigError, describe
from telemetry.events import Event, Health, RunFinished, RunStarted, RunStatus
from telemetry.intake import INTAKE_CAPACITY, Intake, LogCall
from telemetry.pump import Pump, SinkItem, fan_out
from telemetry.report import (
    CloseReport,
    Heartbeat,
    SinkReport,
    close_report,
    health_values,
    say_what_is_missing,
)
from telemetry.sink import Delivery

__all__ = ["Bus", "CloseReport", "Phase", "RunInfo", "SinkReport"]

logger = structlog.get_logger("telemetry")

E = TypeVar("E", bound=Event)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a run is called; the bus publishes it as ``RunStarted`` when it opens."""

    name: str
    project: str = "rltelemetry"
    tags: tuple[str, ...] = ()
    group: str | None = None
    notes: str | None = None
    config: Mapping[str, Any] | None = None
    resumed: bool = False

    def started_fields(self) -> dict[str, Any]:
        """The ``RunStarted`` event's fields."""
        fields = {f: getattr(self, f) for f in self.__slots__}
        return fields | {"tags": tuple(self.tags), "config": dict(self.config or {})}


class Phase(enum.Enum):
    """A bus's life: ``NEW``, ``OPEN`` in ``async with``, ``CLOSING`` in ``aclose``, ``CLOSED``."""

    NEW = "new"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Bus:
    """Stamps events with ``run_id``, ``seq`` and ``time`` and fans them out to sinks.

    ``log(values, step=, axis=)`` and ``emit`` are safe from any thread and cost about a
    microsecond:
    they append to a bounded intake (``telemetry.intake``). A pump task moves the
    intake to one lane per sink (``telemetry.lane``), the durable log's first; no
    other lane delivers an event before the log has written it. Each lane
    batches, retries and isolates its sink on its own, so one slow or broken
    sink delays no other.

    ``alerts`` rules (``telemetry.alerts``) are evaluated by the pump on every metric
    value; one with ``action: stop`` sets ``stop_request``, which the run's owner
    waits on (``until_stop_requested``) to close the bus with status ``stopped``.
    """

    def __init__(
        self,
        run_id: str,
        sinks: Sequence[SinkItem],
        *,
        run: RunInfo | None = None,
        aggregate: AggregateSpec | None = None,
        alerts: AlertSpec | None = None,
        health_interval: float | None = 5.0,
        close_timeout: float = 10.0,
        open_timeout: float = 60.0,
        first_seq: int = 0,
        intake_capacity: int = INTAKE_CAPACITY,
    ) -> None:
        if not run_id:
            raise ConfigError("run_id must be a non-empty string")
        TIMEOUT.check("close_timeout", close_timeout)
        COUNT.check("intake_capacity", intake_capacity)
        self.run = run
        self.close_timeout = close_timeout
        self.phase = Phase.NEW
        self.report: CloseReport | None = None
        self._intake = Intake(run_id, first_seq=first_seq, capacity=intake_capacity)
        self.log: LogCall = self._intake.log
        """Publish the scalars of one step; returns the event's ``seq``. The intake's own
        method, bound here: the hot path pays no call through the bus. Waits only when the
        intake is full (and never on the event loop's thread)."""
        self._replaying = False
        self._heartbeat = Heartbeat(health_interval)
        self.lanes, self._progress = fan_out(sinks, first_seq=first_seq, open_timeout=open_timeout)
        aggregator = Aggregator(aggregate) if aggregate and aggregate.every else None
        self.stop_request = StopRequest()
        """Set when an alert rule with ``action: stop`` fires: the run's owner then closes
        the bus with status ``stopped`` (``telemetry.alerts.until_stop_requested``)."""
        self._alerts = Alerts(alerts, self.stop_request) if alerts and alerts.rules else None
        self._pump = Pump(self._intake, self.lanes, self._progress, aggregator, self._alerts)
        self._tg: TaskGroup | None = None
        self._all_done: anyio.Event | None = None

    @property
    def run_id(self) -> str:
        return self._intake.run_id

    @classmethod
    def replaying(cls, sinks: Sequence[SinkItem], *, close_timeout: float = 60.0) -> Bus:
        """A bus that forwards recorded events (``forward``) with their own ``seq`` and time.

        Its lanes wait for room instead of spilling (the log being read is the
        only copy), and it publishes no health or run events of its own.
        """
        blocking = [
            (s, Delivery(overflow="block"))
            if not isinstance(s, tuple)
            else (s[0], replace(s[1], overflow="block"))
            for s in sinks
        ]
        bus = cls("replay", blocking, health_interval=None, close_timeout=close_timeout)
        bus._replaying = True
        return bus

    # -- publishing: the trainer's hot path --

    def emit(self, event_type: type[E], /, **fields: Any) -> E:
        """Publish any event kind from its fields; ``run_id``, ``seq`` and ``time`` are stamped."""
        return self._intake.emit(event_type, fields)

    def forward(self, event: Event) -> None:
        """Pass on an event that already has its ``seq``; only on a ``Bus.replaying`` bus."""
        if not self._replaying:
            raise ConfigError("forward() is for replay buses (Bus.replaying); use emit() or log()")
        self._intake.forward(event)

    async def alog(self, values: Mapping[str, Any], *, step: int, axis: str = "step") -> int:
        """``log`` for async producers: waits for room in the intake, yielding to the loop."""
        await self.wait_for_room()
        return self._intake.log(values, step=step, axis=axis)

    async def aemit(self, event_type: type[E], /, **fields: Any) -> E:
        """``emit`` for async producers."""
        await self.wait_for_room()
        return self._intake.emit(event_type, fields)

    async def wait_for_room(self) -> None:
        """Yield to the loop, and wait while the intake is full: what an async producer calls
        after a burst of ``log``/``emit`` calls on the loop (which cannot wait themselves)."""
        await anyio.lowlevel.checkpoint()
        await self._intake.room()

    @property
    def published(self) -> int:
        """Events this bus has taken in (stamped, or forwarded by a replay)."""
        intake = self._intake
        return intake.forwarded if self._replaying else intake.seq - intake.first_seq

    async def drain(self, timeout: float = math.inf) -> bool:
        """Wait until the pump has taken everything published so far (producer backpressure).

        Returns False if that took longer than ``timeout`` seconds.
        """
        with anyio.move_on_after(timeout):
            while self._intake.size:
                self._intake.wake()
                await anyio.sleep(0.001)
            return True
        return False

    async def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the durable log holds every event published so far.

        Trainers call it before writing a checkpoint, so that a crash can never
        leave a checkpoint whose steps the log does not have. False on timeout.
        """
        target = self._intake.seq
        with anyio.move_on_after(timeout):
            # Polled: the log's progress is a counter, read from threads too.
            while not self._logged_through(target):  # noqa: ASYNC110
                await anyio.sleep(0.001)
            return True
        return False

    def flush_from_thread(self, timeout: float = 30.0) -> bool:
        """``flush`` for a worker thread: blocks that thread, never the loop."""
        if self._intake.on_loop_thread():
            raise RuntimeError("flush_from_thread() would block the event loop; await flush()")
        target = self._intake.seq
        deadline = time.monotonic() + timeout
        while not self._logged_through(target):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def _logged_through(self, seq: int) -> bool:
        progress = self._progress
        if progress.logged >= seq or progress.log_done:
            return True
        if progress.flush_to < seq:
            progress.flush_to = seq
            log_lane = next(lane for lane in self.lanes if lane.writes_log)
            self._intake.on_loop(log_lane.hurry)
        self._intake.wake()
        return False

    # -- health --

    def health(self) -> dict[str, int | float]:
        """The pipeline's counters now, keyed as published under ``telemetry/``."""
        values = health_values(self.published, self._intake, self.lanes)
        if self._alerts is not None:
            values.update(self._alerts.health())
        return values

    def _publish_health(self) -> None:
        if not self._replaying:
            step = self._heartbeat.beat()
            self._intake.emit_internal(Health, {"step": step, "values": self.health()})

    async def _health_loop(self, interval: float) -> None:
        while self.phase is Phase.OPEN:
            await anyio.sleep(interval)
            if self.phase is Phase.OPEN:
                self._publish_health()
                self._intake.wake()

    # -- life cycle --

    async def __aenter__(self) -> Self:
        if self.phase is not Phase.NEW:
            raise RuntimeError(f"bus of run {self.run_id} was already opened")
        self._progress.start()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        # The durable log opens first: every other lane may need to read it back.
        for lane in self.lanes:
            if lane.writes_log:
                await lane.open()
        self._intake.start()
        self.phase = Phase.OPEN
        self._all_done = anyio.Event()
        self._tg.start_soon(self._pump.run_with_lanes, self._all_done)
        if self._heartbeat.interval:
            self._tg.start_soon(self._health_loop, self._heartbeat.interval)
        if self.run is not None:
            self.emit(RunStarted, **self.run.started_fields())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status: RunStatus = "finished"
        error = None
        if exc is not None:
            interrupted = isinstance(exc, (KeyboardInterrupt, anyio.get_cancelled_exc_class()))
            status = "interrupted" if interrupted else "failed"
            error = None if interrupted else describe(exc)
        await self.aclose(status=status, error=error)

    async def aclose(
        self,
        status: RunStatus = "finished",
        error: str | None = None,
        timeout: float | None = None,
    ) -> CloseReport:
        """Stop intake, drain and flush every sink, close within ``timeout`` seconds."""
        if self.report is not None:
            return self.report
        if self._tg is None or self._all_done is None:
            self.phase = Phase.CLOSED
            self.report = close_report(self.published, self.lanes, True)
            return self.report
        budget = self.close_timeout if timeout is None else timeout
        self._progress.close_by = time.monotonic() + budget
        if self.phase is Phase.OPEN:
            self._publish_health()
            if self.run is not None:
                self._intake.emit_internal(RunFinished, {"status": status, "error": error})
        self.phase = Phase.CLOSING
        self._intake.stop()
        # Shielded: a cancelled or interrupted trainer still gets its events drained,
        # but never for longer than the budget.
        with anyio.CancelScope(shield=True), anyio.move_on_after(budget) as scope:
            await self._all_done.wait()
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        self.phase = Phase.CLOSED
        self.report = close_report(self.published, self.lanes, not scope.cancelled_caught)
        say_what_is_missing(self.report)
        return self.report
