"""The event bus: stamps events, fans them out to one bounded lane per sink, closes on time."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import structlog
from anyio.abc import TaskGroup

from telemetry.aggregate import AggregateSpec, Aggregator
from telemetry.channel import Channel
from telemetry.errors import BusClosedError, ConfigError
from telemetry.events import (
    SCALAR_EVENTS,
    Aggregate,
    Event,
    Health,
    Metrics,
    RunFinished,
    RunStarted,
    RunStatus,
)
from telemetry.intake import Item, RawChunk, Stamp
from telemetry.params import coerce_params
from telemetry.sink import Delivery, DurableLog, Sink
from telemetry.values import coerce_values

log = structlog.get_logger("telemetry")

E = TypeVar("E", bound=Event)
_CHUNK = 1000  # events the pump hands a lane at once (a batch of the log); the spill granularity
_VALUE_FIELDS = frozenset({"values"})


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


@dataclass(frozen=True, slots=True)
class SinkReport:
    """One sink's counts at close, and how to deliver what it missed."""

    name: str
    delivered: int
    failed: int
    pending: int
    isolated: bool
    error: str | None
    replay: str | None = None
    """The command that delivers what this sink missed, from the durable log."""


@dataclass(frozen=True, slots=True)
class CloseReport:
    """How the close went: published count, each sink's counts, and whether it met its deadline."""

    published: int
    sinks: tuple[SinkReport, ...]
    deadline_met: bool

    @property
    def undelivered(self) -> dict[str, int]:
        """Events each sink did not get (failed or still pending), for sinks that missed any."""
        return {s.name: s.failed + s.pending for s in self.sinks if s.failed + s.pending}


class Bus:
    """Stamps events with ``run_id``, ``seq`` and ``time`` and fans them out to sinks.

    ``log`` and ``emit`` never block and are safe from any thread: they append
    to an intake under a lock. A pump task on the event loop moves the intake
    to one bounded lane per sink; each lane batches, retries and isolates its
    sink on its own, so one slow or broken sink delays no other.
    """

    def __init__(
        self,
        run_id: str,
        sinks: Sequence[Sink | tuple[Sink, Delivery]],
        *,
        run: RunInfo | None = None,
        aggregate: AggregateSpec | None = None,
        health_interval: float | None = 5.0,
        close_timeout: float = 10.0,
        open_timeout: float = 60.0,
        stamp: bool = True,
        first_seq: int = 0,
    ) -> None:
        if not run_id:
            raise ConfigError("run_id must be a non-empty string")
        if close_timeout <= 0:
            raise ConfigError(f"close_timeout must be positive, got {close_timeout}")
        self.run_id = run_id
        self.run = run
        self.close_timeout = close_timeout
        self.open_timeout = open_timeout
        self._stamp = stamp
        self._health_interval = health_interval
        self._aggregator = Aggregator(aggregate) if aggregate and aggregate.every else None
        self._lock = threading.Lock()
        # The intake, in publishing order: ``_items`` holds each event, or for ``log``
        # only its values dict, with ``(seq, time, step, axis)`` in ``_stamps`` (None for
        # an event). The pump builds the Metrics. Dicts of numbers and tuples of atomic
        # values are not tracked by the garbage collector, so a backlog of 10^5 steps
        # costs full collections nothing; 10^5 dataclass instances cost a third of the
        # throughput.
        self._items: list[Item] = []
        self._stamps: list[Stamp | None] = []
        self._seq = first_seq  # a resumed run continues its log's numbering
        self._first_seq = first_seq
        self._forwarded = 0
        self._accepting = False
        self._closing = False
        self._pump_done = False
        self._last_dispatched = 0
        self._pump_idle = False
        self._wakeup: anyio.Event | None = None
        self._health_step = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._tg: TaskGroup | None = None
        self._all_done: anyio.Event | None = None
        self._running = 0
        self.report: CloseReport | None = None
        self.channels = self._make_channels(sinks)

    def _make_channels(self, sinks: Sequence[Sink | tuple[Sink, Delivery]]) -> list[Channel]:
        pairs = [(s, None) if not isinstance(s, tuple) else s for s in sinks]
        names = [s.name for s, _ in pairs]
        if len(set(names)) != len(names):
            raise ConfigError(f"sink names must be unique, got {names}")
        durable = next((s for s, _ in pairs if isinstance(s, DurableLog)), None)
        channels = []
        for sink, delivery in pairs:
            if delivery is None:
                spill = durable is not None and sink is not durable
                delivery = Delivery(overflow="spill" if spill else "block")
            delivery.validate(sink.name)
            if delivery.overflow == "spill" and (durable is None or sink is durable):
                why = "is the durable log itself" if sink is durable else "has no durable log"
                raise ConfigError(
                    f"{sink.name}.overflow=spill needs the durable log (the jsonl sink) and this "
                    f"bus {why}; use {sink.name}.overflow=block or add jsonl to sinks"
                )
            log_for_lane = durable if sink is not durable else None
            channels.append(
                Channel(sink, delivery, log_for_lane, self._pump_state, self.open_timeout)
            )
        durable_lane = next((c for c in channels if c.sink is durable), None)
        for channel in channels:
            channel.durable_channel = durable_lane
            # A resumed run's log already holds seqs up to first_seq, from an earlier process:
            # a lane that falls behind (a sink down at open) must not deliver those again.
            channel.last_seq = self._first_seq
        # Block lanes (the durable log first) take a chunk after every spill lane has,
        # so a lane that spills never finds its chunk already in the log.
        channels.sort(key=lambda c: (c.delivery.overflow == "block", c.sink is not durable))
        return channels

    def _pump_state(self) -> tuple[bool, int]:
        return self._pump_done, self._last_dispatched

    # -- publishing: the trainer's hot path --

    def log(self, values: Mapping[str, Any], *, step: int, axis: str = "step") -> int:
        """Publish the scalars of one step; returns the event's ``seq``. Never blocks."""
        checked = coerce_values(values)
        if type(step) is not int or step < 0:
            step = _check_step(step)
        with self._lock:
            if not self._accepting:
                raise BusClosedError(self._closed_message())
            self._seq = seq = self._seq + 1
            self._items.append(checked)
            self._stamps.append((seq, time.time(), step, axis))
        if self._pump_idle:
            self._wake()
        return seq

    def emit(self, event_type: type[E], /, **fields: Any) -> E:
        """Publish any event kind from its fields; ``run_id``, ``seq`` and ``time`` are stamped."""
        if "values" in fields:
            scalar = event_type in SCALAR_EVENTS
            values = fields["values"]
            fields["values"] = coerce_values(values) if scalar else coerce_params(values)
        if "metadata" in fields:
            fields["metadata"] = coerce_params(fields["metadata"], what="metadata")
        if "step" in fields and (type(fields["step"]) is not int or fields["step"] < 0):
            fields["step"] = _check_step(fields["step"])
        with self._lock:
            if not self._accepting:
                raise BusClosedError(self._closed_message())
            self._seq = seq = self._seq + 1
            event = event_type(run_id=self.run_id, seq=seq, time=time.time(), **fields)
            self._items.append(event)
            self._stamps.append(None)
        if self._pump_idle:
            self._wake()
        return event

    def forward(self, event: Event) -> None:
        """Pass on an event that already has its ``seq`` (replay); only for ``stamp=False``."""
        if self._stamp:
            raise ConfigError("forward() is for replay buses (stamp=False); use emit() or log()")
        with self._lock:
            if not self._accepting:
                raise BusClosedError(self._closed_message())
            self._seq = max(self._seq, event.seq)
            self._forwarded += 1
            self._items.append(event)
            self._stamps.append(None)
        if self._pump_idle:
            self._wake()

    async def alog(self, values: Mapping[str, Any], *, step: int, axis: str = "step") -> int:
        """``log`` for async producers: yields to the loop first so sinks keep flowing."""
        await anyio.lowlevel.checkpoint()
        return self.log(values, step=step, axis=axis)

    async def aemit(self, event_type: type[E], /, **fields: Any) -> E:
        """``emit`` for async producers."""
        await anyio.lowlevel.checkpoint()
        return self.emit(event_type, **fields)

    async def drain(self, timeout: float = math.inf) -> bool:
        """Wait until the pump has taken everything published so far (producer backpressure).

        Returns False if that took longer than ``timeout`` seconds.
        """
        with anyio.move_on_after(timeout):
            while self._items:
                if self._pump_idle:
                    self._wake()
                await anyio.sleep(0.001)
            return True
        return False

    async def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the durable log holds every event published so far.

        Trainers call it before writing a checkpoint, so that a crash can never
        leave a checkpoint whose steps the log does not have. False on timeout.
        """
        target = self._seq
        with anyio.move_on_after(timeout):
            # Polled: the lane's progress is a counter, read from threads too.
            while not self._logged_through(target):  # noqa: ASYNC110
                await anyio.sleep(0.001)
            return True
        return False

    def flush_from_thread(self, timeout: float = 30.0) -> bool:
        """``flush`` for a trainer's worker thread: blocks that thread, never the loop."""
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("flush_from_thread() would block the event loop; await flush()")
        target = self._seq
        deadline = time.monotonic() + timeout
        while not self._logged_through(target):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def _logged_through(self, seq: int) -> bool:
        lane = next((c for c in self.channels if isinstance(c.sink, DurableLog)), None)
        if lane is None or lane.isolated or lane.finished or lane.last_seq >= seq:
            if lane is not None:
                lane.hurry = False
            return True
        if not lane.hurry:
            lane.hurry = True
            self._on_loop(lane.wake)
        if self._pump_idle and self._items:
            self._wake()
        return False

    def _on_loop(self, func: Callable[[], object]) -> None:
        """Run ``func`` on the event loop: now if this is its thread, else soon."""
        if threading.get_ident() == self._loop_thread:
            func()
        elif self._loop is not None:
            # RuntimeError: the loop is gone; close() drains what is left.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(func)

    @property
    def published(self) -> int:
        """Events this bus has taken in (stamped, or forwarded by a replay)."""
        return self._seq - self._first_seq if self._stamp else self._forwarded

    def _wake(self) -> None:
        self._pump_idle = False
        if self._wakeup is not None:
            self._on_loop(self._wakeup.set)

    def _closed_message(self) -> str:
        if self._closing:
            return f"bus of run {self.run_id} is closed; events published after close are refused"
        return f"bus of run {self.run_id} is not open yet; use 'async with Bus(...)' first"

    # -- lifecycle --

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wakeup = anyio.Event()
        self._all_done = anyio.Event()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        # The durable log opens first: every other lane may need to read it back.
        for channel in self.channels:
            if isinstance(channel.sink, DurableLog):
                await channel.open()
        self._accepting = True
        self._start(self._pump)
        for channel in self.channels:
            self._start(self._lane, channel)
        if self._health_interval:
            self._tg.start_soon(self._health_loop, self._health_interval)
        if self.run is not None:
            run = self.run
            self.emit(
                RunStarted,
                name=run.name,
                project=run.project,
                tags=tuple(run.tags),
                group=run.group,
                notes=run.notes,
                config=dict(run.config or {}),
                resumed=run.resumed,
            )
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
            error = f"{type(exc).__name__}: {exc}" if not interrupted else None
        await self.aclose(status=status, error=error)

    def _start(self, func: Any, *args: Any) -> None:
        assert self._tg is not None
        self._running += 1  # counted now: close may come before the task first runs
        self._tg.start_soon(self._run_tracked, func, *args)

    async def _run_tracked(self, func: Any, *args: Any) -> None:
        try:
            await func(*args)
        except Exception as exc:  # a bug in the pipeline must not take training down
            log.exception("telemetry_task_failed", task=getattr(func, "__name__", "?"), error=exc)
        finally:
            self._running -= 1
            if self._running == 0 and self._closing and self._all_done is not None:
                self._all_done.set()

    async def _lane(self, channel: Channel) -> None:
        try:
            await channel.run()
        finally:
            # A sink that missed the deadline still gets a moment to flush what it has.
            remaining = max(0.05, self._deadline - time.monotonic()) if self._closing else 1.0
            with anyio.CancelScope(shield=True), anyio.move_on_after(remaining):
                try:
                    await channel.sink.close(remaining)
                except Exception as exc:
                    channel.error = channel.error or f"close failed: {type(exc).__name__}: {exc}"
                    log.warning("sink_close_failed", sink=channel.name, error=str(exc))

    async def aclose(
        self,
        status: RunStatus = "finished",
        error: str | None = None,
        timeout: float | None = None,
    ) -> CloseReport:
        """Stop intake, drain and flush every sink, close within ``timeout`` seconds."""
        if self.report is not None:
            return self.report
        if self._tg is None or self._wakeup is None or self._all_done is None:
            self.report = self._make_report(True)
            return self.report
        budget = self.close_timeout if timeout is None else timeout
        self._deadline = time.monotonic() + budget
        if self._accepting:
            self._publish_health()
            if self.run is not None:
                self.emit(RunFinished, status=status, error=error)
        with self._lock:
            self._accepting = False
            self._closing = True
        self._wakeup.set()
        # Shielded: a cancelled or interrupted trainer still gets its events drained,
        # but never for longer than the budget.
        with anyio.CancelScope(shield=True), anyio.move_on_after(budget) as scope:
            if self._running:
                await self._all_done.wait()
        met = not scope.cancelled_caught
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        self.report = self._make_report(met)
        self._say_what_is_missing(self.report)
        return self.report

    _deadline: float = 0.0

    # -- the pump --

    async def _pump(self) -> None:
        try:
            while True:
                with self._lock:
                    items, stamps = self._items, self._stamps
                    self._items, self._stamps = [], []
                if items:
                    await self._dispatch(items, stamps)
                    continue
                if self._closing:
                    return
                self._wakeup = wakeup = anyio.Event()
                self._pump_idle = True
                if self._items or self._closing:
                    self._pump_idle = False
                    continue
                await wakeup.wait()
        finally:
            self._pump_done = True
            for channel in self.channels:
                channel.end_of_input()

    async def _dispatch(self, items: list[Item], stamps: list[Stamp | None]) -> None:
        for start in range(0, len(items), _CHUNK):
            end = start + _CHUNK
            chunk = RawChunk(self.run_id, items[start:end], stamps[start:end])
            if self._aggregator is not None:
                self._aggregate(chunk)
            for channel in self.channels:
                while not channel.offer(chunk):
                    await channel.wait_for_room()
            self._last_dispatched = chunk.last_seq

    def _aggregate(self, chunk: RawChunk) -> None:
        assert self._aggregator is not None
        add = self._aggregator.add
        for item, stamp in zip(chunk.items, chunk.stamps, strict=True):
            if stamp is not None:
                _, _, step, axis = stamp
                window = add(step, axis, item)  # type: ignore[arg-type]
            elif type(item) is Metrics:
                step, axis = item.step, item.axis
                window = add(step, axis, item.values)
            else:
                continue
            if window is not None:
                self._emit_internal(
                    Aggregate,
                    step=window.step,
                    axis=axis,
                    window=window.window,
                    first_step=window.first_step,
                    values=window.values,
                )

    def _emit_internal(self, event_type: type[Event], /, **fields: Any) -> None:
        """Publish from inside the pipeline, even while closing (aggregates, health)."""
        with self._lock:
            self._seq = seq = self._seq + 1
            self._items.append(event_type(run_id=self.run_id, seq=seq, time=time.time(), **fields))
            self._stamps.append(None)

    # -- health --

    async def _health_loop(self, interval: float) -> None:
        while not self._closing:
            await anyio.sleep(interval)
            if not self._closing:
                self._publish_health()
                if self._pump_idle:
                    self._wake()

    def health(self) -> dict[str, int]:
        """The pipeline's counters now, keyed as published under ``telemetry/``."""
        published = self.published
        values = {"telemetry/published": published, "telemetry/intake": len(self._items)}
        for channel in self.channels:
            c, prefix = channel.counts, f"telemetry/{channel.name}"
            values[f"{prefix}/delivered"] = c.delivered
            values[f"{prefix}/failed"] = c.failed
            values[f"{prefix}/queued"] = c.queued
            values[f"{prefix}/spilled"] = c.spilled
            values[f"{prefix}/pending"] = published - c.delivered - c.failed
        return values

    def _publish_health(self) -> None:
        if not self._stamp:
            return
        self._health_step += 1
        self._emit_internal(Health, step=self._health_step, values=dict(self.health()))

    def _make_report(self, met: bool) -> CloseReport:
        published = self.published
        durable = next((c.sink for c in self.channels if isinstance(c.sink, DurableLog)), None)
        sinks = []
        for c in self.channels:
            pending = published - c.counts.delivered - c.counts.failed
            replay = None
            if durable is not None and c.sink is not durable and c.counts.failed + pending:
                replay = f"python main.py replay {durable.path.parent} sinks=[{c.name}]"
            sinks.append(
                SinkReport(
                    name=c.name,
                    delivered=c.counts.delivered,
                    failed=c.counts.failed,
                    pending=pending,
                    isolated=c.isolated,
                    error=c.error,
                    replay=replay,
                )
            )
        return CloseReport(published=published, sinks=tuple(sinks), deadline_met=met)

    def _say_what_is_missing(self, report: CloseReport) -> None:
        for sink in report.sinks:
            missing = sink.failed + sink.pending
            if missing:
                log.warning(
                    "sink_behind",
                    sink=sink.name,
                    undelivered=missing,
                    replay=sink.replay or "no durable log to replay from",
                )


def _check_step(step: Any) -> int:
    from telemetry.errors import InvalidMetricError

    if isinstance(step, bool) or not isinstance(step, int):
        item = getattr(step, "item", None)
        if getattr(step, "ndim", None) == 0 and callable(item) and isinstance(item(), int):
            step = int(item())
        else:
            raise InvalidMetricError(f"step must be an int, got {type(step).__name__} {step!r}")
    if step < 0:
        raise InvalidMetricError(f"step must be 0 or more, got {step}")
    return int(step)
