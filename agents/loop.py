"""The one loop every trainer runs: its steps off the event loop, their records published on it.

``TrainerLoop.run`` checks ``num_episodes``, publishes the trainer's start once (its
hyperparameters, system info and :meth:`Steps.begin`), then for every step runs
:meth:`Steps.step` in a worker thread and publishes the :class:`StepRecord` it returns from the
event loop, all of a step's events at once and then one ``bus.wait_for_room()``. A checkpoint
follows a record that asks for one and the last step of every ``train``: the loop waits until
the log holds every step so far (a crash never leaves a checkpoint ahead of the log), saves in
a worker thread and publishes the ``ArtifactSaved``.

Users' callbacks (``agents.callbacks``) run here too, so every trainer gets them: the loop's
``callbacks`` list, each hook called in a worker thread after what it reports is published.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import anyio

from agents.base import TrainResult, publish_start
from agents.callbacks import Callback, Hooks, TrainerState
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
    episodes: tuple[Mapping[str, float], ...] = ()
    """Episodes the step completed, each its values, for callbacks' ``on_episode_end`` (none:
    the step counts as one episode)."""


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
    """Runs a trainer's steps and publishes them on ``bus``, on the step axis ``axis``.

    ``name`` and ``run_dir`` are what callbacks see of the trainer; ``callbacks`` (the list
    the loop keeps, to append to) are called as ``agents.callbacks`` describes.
    """

    def __init__(
        self,
        bus: Bus,
        axis: str,
        *,
        name: str = "",
        run_dir: Path | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.bus = bus
        self.axis = axis
        self._hooks = Hooks(bus, name, axis, Path(run_dir or "."), list(callbacks))
        self._started = False
        self._next_step = 0
        """The step the trainer runs next, as far as the loop knows."""
        self._unsaved: int | None = None
        """The last step done since the last checkpoint, if any."""

    @property
    def callbacks(self) -> list[Callback]:
        """The callbacks, in call order; append to add one."""
        return self._hooks.callbacks

    @property
    def callback_errors(self) -> int:
        """Callbacks disabled for raising."""
        return self._hooks.errors

    async def run(self, trainer: Steps, num_episodes: int) -> TrainResult:
        """Run ``num_episodes`` more steps of ``trainer``; checkpoint after the last one."""
        at_least(0).check("episodes", num_episodes)
        hooks = self._hooks
        if not self._started:
            publish_start(self.bus, trainer.config)
            opening = trainer.begin()
            if opening is not None:
                await self._publish(opening)
                self._next_step = opening.step
            self._started = True
        await self._call("on_train_start", hooks.state(self._next_step, num_steps=num_episodes))
        for i in range(num_episodes):
            record = await anyio.to_thread.run_sync(trainer.step, i == num_episodes - 1)
            await self._publish(record)
            self._unsaved = record.step
            self._next_step = record.step + 1
            if hooks.active():
                state = hooks.state(
                    record.step,
                    steps_done=i + 1,
                    num_steps=num_episodes,
                    metrics=MappingProxyType(dict(record.metrics)),
                    evaluations=MappingProxyType(
                        {e.name: MappingProxyType(dict(e.values)) for e in record.evaluations}
                    ),
                )
                episodes = tuple(MappingProxyType(dict(e)) for e in record.episodes)
                await anyio.to_thread.run_sync(hooks.step_done, state, episodes)
                await self.bus.wait_for_room()
            if record.checkpoint:
                await self._checkpoint(trainer)
        if self._unsaved is not None:
            await self._checkpoint(trainer)
        result = trainer.result()
        last = self._next_step - 1 if self._next_step else 0
        await self._call(
            "on_train_end",
            hooks.state(last, steps_done=num_episodes, num_steps=num_episodes, result=result),
        )
        return result

    async def _call(self, hook: str, state: TrainerState) -> None:
        """Call ``hook`` of the callbacks in a worker thread, if any is enabled."""
        if self._hooks.active():
            await anyio.to_thread.run_sync(self._hooks.call, hook, state)
            await self.bus.wait_for_room()

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
        await self._call("on_checkpoint", self._hooks.state(step, checkpoint=saved.path))

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
