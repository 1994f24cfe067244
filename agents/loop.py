"""The one loop every trainer runs: its steps off the event loop, their records published on it.

``TrainerLoop.run`` checks ``num_episodes``, publishes the trainer's start once (its
hyperparameters, system info and :meth:`Steps.begin`), then for every step runs
:meth:`Steps.step` in a worker thread and publishes the :class:`StepRecord` it returns from the
event loop, all of a step's events at once and then one ``bus.wait_for_room()``. A checkpoint
follows a record that asks for one and the last step of every ``train``: the loop waits until
the log holds every step so far (a crash never leaves a checkpoint ahead of the log), saves in
a worker thread and publishes the ``ArtifactSaved``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio

from agents.base import TrainResult, publish_start
from telemetry.bus import Bus
from telemetry.checks import at_least
from telemetry.events import ArtifactSaved, Evaluation, Param

Publication = tuple[type[Any], Mapping[str, Any]]
"""An event to publish: its class and its fields but ``step`` and ``axis`` (the loop's)."""


@dataclass(frozen=True, slots=True)
class Evaluated:
    """One evaluation of a step: its name and values (an ``Evaluation`` event)."""

    name: str
    values: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Saved:
    """A checkpoint written: its file and what the ``ArtifactSaved`` says about it."""

    path: Path
    metadata: Mapping[str, Param] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What one step (episode, generation, epoch) hands the loop to publish, in this order."""

    step: int
    """The step's number on the trainer's axis."""
    metrics: Mapping[str, float]
    """The step's ``Metrics`` (none published when empty)."""
    evaluations: tuple[Evaluated, ...] = ()
    events: tuple[Publication, ...] = ()
    """Further events of the step (ERL's trades)."""
    saved: tuple[Saved, ...] = ()
    """Checkpoints the step wrote itself (ERL's best agent)."""
    checkpoint: bool = False
    """A checkpoint is due after this step."""


class Steps(Protocol):
    """What a trainer gives the loop: its config and its steps, all but ``begin`` off the loop."""

    @property
    def config(self) -> Any:
        """The trainer's config dataclass, published flat as hyperparameters."""

    def begin(self) -> StepRecord | None:
        """What to publish once at the start, after the hyperparameters (PPO's calibration)."""

    def step(self, last: bool) -> StepRecord:
        """Run one step; ``last`` is the last one of this ``train``."""

    def save(self) -> Saved:
        """Write a checkpoint of everything needed to continue exactly."""

    def result(self) -> TrainResult:
        """Final and best metrics so far."""


class TrainerLoop:
    """Runs a trainer's steps and publishes them on ``bus``, on the step axis ``axis``."""

    def __init__(self, bus: Bus, axis: str) -> None:
        self.bus = bus
        self.axis = axis
        self._started = False
        self._unsaved: int | None = None
        """The last step done since the last checkpoint, if any."""

    async def run(self, trainer: Steps, num_episodes: int) -> TrainResult:
        """Run ``num_episodes`` more steps of ``trainer``; checkpoint after the last one."""
        at_least(0).check("episodes", num_episodes)
        if not self._started:
            publish_start(self.bus, trainer.config)
            opening = trainer.begin()
            if opening is not None:
                await self._publish(opening)
            self._started = True
        for i in range(num_episodes):
            record = await anyio.to_thread.run_sync(trainer.step, i == num_episodes - 1)
            await self._publish(record)
            self._unsaved = record.step
            if record.checkpoint:
                await self._checkpoint(trainer)
        if self._unsaved is not None:
            await self._checkpoint(trainer)
        return trainer.result()

    async def _publish(self, record: StepRecord) -> None:
        # One step's events go in at once, then one yield: a yield per event would wake the
        # pump for every event and hand every lane chunks of one (ERL's trades: ~500 a step).
        bus, step, axis = self.bus, record.step, self.axis
        if record.metrics:
            bus.log(record.metrics, step=step, axis=axis)
        for evaluated in record.evaluations:
            bus.emit(Evaluation, step=step, axis=axis, name=evaluated.name, values=evaluated.values)
        for event, fields in record.events:
            bus.emit(event, step=step, axis=axis, **fields)
        for saved in record.saved:
            self._emit_saved(saved, step)
        await bus.wait_for_room()

    async def _checkpoint(self, trainer: Steps) -> None:
        """Save once the log holds every step so far: a checkpoint never runs ahead of the log."""
        assert self._unsaved is not None
        step = self._unsaved
        await self.bus.flush()
        saved = await anyio.to_thread.run_sync(trainer.save)
        self._unsaved = None
        self._emit_saved(saved, step)
        await self.bus.wait_for_room()

    def _emit_saved(self, saved: Saved, step: int) -> None:
        self.bus.emit(
            ArtifactSaved,
            name=saved.path.stem,
            path=str(saved.path),
            kind="checkpoint",
            step=step,
            axis=self.axis,
            metadata=dict(saved.metadata),
        )
