"""The fan-out: one lane per sink, and the pump that moves the intake to every lane in turn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import structlog

from telemetry.aggregate import Aggregator
from telemetry.alerts import Alerts
from telemetry.chunk import Item, RawChunk, Stamp
from telemetry.errors import ConfigError
from telemetry.events import Aggregate, Alert, Metrics
from telemetry.intake import Intake
from telemetry.lane import Lane
from telemetry.log_lane import LogLane
from telemetry.progress import Progress
from telemetry.sink import Delivery, DurableLog, Sink
from telemetry.spill_lane import SpillLane

logger = structlog.get_logger("telemetry")

SinkItem = Sink | tuple[Sink, Delivery]
"""A sink, with its delivery settings or the defaults."""

CHUNK = 1000
"""Events the pump hands a lane at once (a batch of the log); the spill granularity."""


def fan_out(
    sinks: Sequence[SinkItem], *, first_seq: int, open_timeout: float
) -> tuple[list[Lane], Progress]:
    """One lane per sink, sharing one ``Progress``; the durable log's lane first.

    The one place that asks which sink is the durable log: it writes first,
    and the ``spill`` lanes read back from it.
    """
    log, pairs = _with_delivery(sinks)
    progress = Progress(first_seq, has_log=log is not None)
    lanes: list[Lane] = []
    for sink, delivery, is_log in pairs:
        at, wait = first_seq, open_timeout
        if is_log:
            lanes.append(LogLane(sink, delivery, progress, first_seq=at, open_timeout=wait))
        elif log is not None and delivery.overflow == "spill":
            lanes.append(SpillLane(sink, delivery, progress, log, first_seq=at, open_timeout=wait))
        else:
            lanes.append(Lane(sink, delivery, progress, first_seq=at, open_timeout=wait))
    lanes.sort(key=lambda lane: not lane.writes_log)
    return lanes, progress


def _with_delivery(
    sinks: Sequence[SinkItem],
) -> tuple[DurableLog | None, list[tuple[Sink, Delivery, bool]]]:
    """The durable log among ``sinks``, and each sink's checked delivery settings and
    whether it is the log."""
    pairs = [(s, None) if not isinstance(s, tuple) else s for s in sinks]
    names = [s.name for s, _ in pairs]
    if len(set(names)) != len(names):
        raise ConfigError(f"sink names must be unique, got {names}")
    log = next((s for s, _ in pairs if isinstance(s, DurableLog)), None)
    out = []
    for sink, delivery in pairs:
        if delivery is None:
            spill = log is not None and sink is not log
            delivery = Delivery(overflow="spill" if spill else "block")
        delivery.validate(sink.name)
        if delivery.overflow == "spill" and (log is None or sink is log):
            why = (
                "the durable log cannot spill: it is what other sinks spill onto"
                if sink is log
                else "this bus was built without the durable log (the jsonl sink), so there is "
                "nothing to spill onto and nothing to replay from"
            )
            raise ConfigError(f"{sink.name}.overflow=spill: {why}; use {sink.name}.overflow=block")
        out.append((sink, delivery, sink is log))
    return log, out


class Pump:
    """Takes what was published, in chunks, and offers each chunk to every lane in turn.

    Before offering a chunk it folds the chunk into the aggregates and evaluates the
    alert rules on it, once for every sink; what they publish goes into the intake
    and out with a later chunk. Without either, a chunk costs them nothing.
    """

    def __init__(
        self,
        intake: Intake,
        lanes: Sequence[Lane],
        progress: Progress,
        aggregator: Aggregator | None,
        alerts: Alerts | None = None,
    ) -> None:
        self._intake = intake
        self._lanes = lanes
        self._progress = progress
        self._aggregator = aggregator
        self._alerts = alerts

    async def run_with_lanes(self, done: anyio.Event) -> None:
        """The pump and every lane, until all have ended; then ``done`` is set."""
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_guarded, self.run)
                for lane in self._lanes:
                    group.start_soon(_guarded, lane.run)
        finally:
            done.set()

    async def run(self) -> None:
        """Until the intake stops and is empty; then tell every lane the input has ended."""
        intake = self._intake
        try:
            while True:
                items, stamps = intake.take()
                if items:
                    await self._dispatch(items, stamps)
                elif intake.stopped:
                    return
                else:
                    await intake.wait_for_input()
        finally:
            self._progress.end_input()
            for lane in self._lanes:
                lane.end_of_input()

    async def _dispatch(self, items: list[Item], stamps: list[Stamp | None]) -> None:
        run_id = self._intake.run_id
        for start in range(0, len(items), CHUNK):
            end = start + CHUNK
            chunk = RawChunk(run_id, items[start:end], stamps[start:end])
            if self._aggregator is not None:
                self._aggregate(chunk)
            if self._alerts is not None:
                for fields in self._alerts.scan(chunk):
                    self._intake.emit_internal(Alert, fields)
            for lane in self._lanes:
                while not lane.offer(chunk):
                    await lane.wait_for_room()
            self._progress.dispatched = chunk.last_seq
            self._intake.release(len(chunk))

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
                self._intake.emit_internal(
                    Aggregate,
                    {
                        "step": window.step,
                        "axis": axis,
                        "window": window.window,
                        "first_step": window.first_step,
                        "values": window.values,
                    },
                )


async def _guarded(func: Any) -> None:
    try:
        await func()
    except Exception as exc:  # a bug in the pipeline must not take training down
        logger.exception("telemetry_task_failed", task=getattr(func, "__name__", "?"), error=exc)
