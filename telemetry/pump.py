"""The pump: moves the intake to every lane, the log's first, computing aggregates once."""

from __future__ import annotations

from collections.abc import Sequence

from telemetry.aggregate import Aggregator
from telemetry.chunk import Item, RawChunk, Stamp
from telemetry.events import Aggregate, Metrics
from telemetry.intake import Intake
from telemetry.lane import Lane
from telemetry.progress import Progress

CHUNK = 1000
"""Events the pump hands a lane at once (a batch of the log); the spill granularity."""


class Pump:
    """Takes what was published, in chunks, and offers each chunk to every lane in turn."""

    def __init__(
        self,
        intake: Intake,
        lanes: Sequence[Lane],
        progress: Progress,
        aggregator: Aggregator | None,
    ) -> None:
        self._intake = intake
        self._lanes = lanes
        self._progress = progress
        self._aggregator = aggregator

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
