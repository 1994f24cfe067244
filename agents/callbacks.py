"""Users' own code on a trainer: callbacks with hooks at the start, every step, episode,
checkpoint and end of ``train``, as Stable-Baselines3's and Lightning's callbacks.

Extend :class:`Callback`, override the hooks wanted, and hand instances to a trainer
(``trainer.callbacks.append(cb)``; by config: :func:`load_callbacks` with
``"pkg.module:Class"`` paths, then :func:`attach`). Every hook gets the trainer's
:class:`TrainerState` (read-only) and a :class:`CallbackContext` to publish with:
``ctx.log(values)`` logs metrics on the trainer's axis at the current step.

When the hooks run (``agents.loop.TrainerLoop``, so the same for every trainer), all in
a worker thread, never on the event loop:

- ``on_train_start``: once per ``train`` call, after the start events; ``state.step`` is the
  step the trainer runs next.
- ``on_step``: after every step (ERL: a generation, PPO: an episode, AMP: an epoch) once its
  events are published; ``state.metrics`` are the step's metrics, ``state.evaluations`` its
  evaluations.
- ``on_episode_end``: after ``on_step``, once for each episode the step completed if the
  trainer reports them (``StepRecord.episodes``), with ``state.episode`` that episode's values
  and ``state.episode_index`` its place in the step; otherwise once per step with the step's
  metrics. The shipped trainers report none: PPO's step is one episode (a day); an ERL
  generation's members play their episodes in parallel, summed up as ``fitness/*``; AMP's
  epoch ends episodes across its vectorised envs, summed up as ``rewards/mean``.
- ``on_checkpoint``: after each checkpoint the loop writes, ``state.checkpoint`` its file.
- ``on_train_end``: once per ``train`` call, ``state.result`` the ``TrainResult``.

A hook that raises is reported once (a structlog warning ``callback_failed`` naming the
callback and the hook), counted (``TrainerLoop.callback_errors`` and the metric
``telemetry/callback_errors`` on the trainer's axis) and that callback is disabled for the
rest of the run; training goes on.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import structlog

from agents.base import TrainResult
from telemetry.bus import Bus
from telemetry.errors import ConfigError, describe
from telemetry.events import Event

__all__ = [
    "Callback",
    "CallbackContext",
    "Hooks",
    "TrainerState",
    "attach",
    "load_callbacks",
]

logger = structlog.get_logger("telemetry.callbacks")
E = TypeVar("E", bound=Event)
ERRORS_KEY = "telemetry/callback_errors"
"""The metric counting callbacks disabled for raising, on the trainer's axis."""
HOOKS = ("on_train_start", "on_step", "on_episode_end", "on_checkpoint", "on_train_end")


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class TrainerState:
    """What a hook sees of the trainer: read-only, a fresh object per call."""

    trainer: str
    """The trainer's name (``erl``, ``ppo``, ``amp``)."""
    axis: str
    """The step axis it counts on (``generation``, ``episode``, ``epoch``)."""
    step: int
    """The step just done; at ``on_train_start`` the step the trainer runs next."""
    run_dir: Path
    """The run folder."""
    steps_done: int = 0
    """Steps done in this ``train`` call so far."""
    num_steps: int = 0
    """Steps this ``train`` call runs."""
    metrics: Mapping[str, float] = field(default_factory=_empty)
    """The step's metrics (``on_step``, ``on_episode_end``)."""
    evaluations: Mapping[str, Mapping[str, float]] = field(default_factory=_empty)
    """The step's evaluations by name."""
    episode: Mapping[str, float] = field(default_factory=_empty)
    """``on_episode_end``: the episode's values (the step's metrics if the trainer reports no
    episodes of its own)."""
    episode_index: int = 0
    """``on_episode_end``: the episode's place among those the step completed."""
    checkpoint: Path | None = None
    """``on_checkpoint``: the file written."""
    result: TrainResult | None = None
    """``on_train_end``: what ``train`` returns."""


class CallbackContext:
    """A hook's handle on the run: publish metrics and events at the current step."""

    __slots__ = ("_bus", "axis", "step")

    def __init__(self, bus: Bus, axis: str, step: int) -> None:
        self._bus = bus
        self.axis = axis
        self.step = step

    def log(self, values: Mapping[str, Any], *, step: int | None = None) -> int:
        """Publish metrics on the trainer's axis at the current step (or ``step``); the seq."""
        return self._bus.log(values, step=self.step if step is None else step, axis=self.axis)

    def emit(self, event_type: type[E], /, **fields: Any) -> E:
        """Publish any event (``bus.emit``); ``step`` and ``axis`` default to the current ones
        for event kinds that have them."""
        names = getattr(event_type, "__dataclass_fields__", {})
        if "step" in names:
            fields.setdefault("step", self.step)
        if "axis" in names:
            fields.setdefault("axis", self.axis)
        return self._bus.emit(event_type, **fields)


class Callback:
    """Base class of users' callbacks: every hook does nothing until overridden."""

    def on_train_start(self, state: TrainerState, ctx: CallbackContext) -> None:
        """Once per ``train`` call, before its first step."""

    def on_step(self, state: TrainerState, ctx: CallbackContext) -> None:
        """After every step, its events published."""

    def on_episode_end(self, state: TrainerState, ctx: CallbackContext) -> None:
        """For each episode a step completed (once per step if the trainer reports none)."""

    def on_checkpoint(self, state: TrainerState, ctx: CallbackContext) -> None:
        """After every checkpoint."""

    def on_train_end(self, state: TrainerState, ctx: CallbackContext) -> None:
        """Once per ``train`` call, after its last checkpoint."""


@dataclass(slots=True)
class Hooks:
    """Calls the hooks of a list of callbacks, disabling one that raises (reported once)."""

    bus: Bus
    trainer: str
    axis: str
    run_dir: Path
    callbacks: list[Callback] = field(default_factory=list)
    """The callbacks, in call order: append to add one."""
    errors: int = 0
    """Callbacks disabled for raising."""
    _disabled: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def state(self, step: int, **fields: Any) -> TrainerState:
        """A ``TrainerState`` of this trainer at ``step``."""
        return TrainerState(self.trainer, self.axis, step, self.run_dir, **fields)

    def active(self) -> bool:
        """Whether any callback is left to call (else the loop skips the thread hop)."""
        return any(id(cb) not in self._disabled for cb in self.callbacks)

    def call(self, hook: str, state: TrainerState) -> None:
        """Call ``hook`` of every enabled callback with ``state``."""
        ctx = CallbackContext(self.bus, self.axis, state.step)
        for callback in list(self.callbacks):
            if id(callback) in self._disabled:
                continue
            method = getattr(callback, hook, None)
            if method is None:  # a duck-typed callback without this hook
                continue
            try:
                method(state, ctx)
            except Exception as exc:  # a user's callback must never stop training
                self._disable(callback, hook, exc, state.step)

    def step_done(self, state: TrainerState, episodes: Sequence[Mapping[str, float]]) -> None:
        """``on_step``, then ``on_episode_end`` per episode (once with the metrics if none)."""
        self.call("on_step", state)
        for index, values in enumerate(episodes or (state.metrics,)):
            self.call("on_episode_end", replace(state, episode=values, episode_index=index))

    def _disable(self, callback: Callback, hook: str, exc: Exception, step: int) -> None:
        with self._lock:
            if id(callback) in self._disabled:
                return
            self._disabled.add(id(callback))
            self.errors += 1
            errors = self.errors
        name = f"{type(callback).__module__}.{type(callback).__qualname__}"
        logger.warning(
            "callback_failed",
            callback=name,
            hook=hook,
            error=describe(exc),
            note="the callback is disabled for the rest of the run; training goes on",
        )
        try:
            self.bus.log({ERRORS_KEY: errors}, step=step, axis=self.axis)
        except Exception as publish_error:  # a closed bus: the warning above said it all
            logger.debug("callback_error_not_published", error=describe(publish_error))


def load_callbacks(paths: Iterable[str]) -> list[Callback]:
    """Callbacks from ``"pkg.module:Class"`` paths, each class called with no arguments.

    Raises ``ConfigError`` naming a path that is malformed, cannot be imported, or does not
    name a ``Callback`` (or an object with at least one of its hooks).
    """
    callbacks: list[Callback] = []
    for path in paths:
        module_name, sep, attr = path.partition(":")
        if not sep or not module_name or not attr:
            raise ConfigError(f"callbacks: {path!r} must be 'pkg.module:Class'")
        try:
            target: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"callbacks: cannot load {path!r}: {describe(exc)}") from None
        callback = target() if isinstance(target, type) else target
        if not any(callable(getattr(callback, hook, None)) for hook in HOOKS):
            raise ConfigError(
                f"callbacks: {path!r} is not a callback; it needs one of {', '.join(HOOKS)}"
            )
        callbacks.append(callback)
    return callbacks


def attach(trainer: object, callbacks: Iterable[Callback]) -> None:
    """Add ``callbacks`` to ``trainer``; ``ConfigError`` if it takes none (no ``callbacks``)."""
    target = getattr(trainer, "callbacks", None)
    if not isinstance(target, list):
        raise ConfigError(
            f"callbacks: trainer {type(trainer).__name__} takes no callbacks "
            "(it has no 'callbacks' list; run it on agents.loop.TrainerLoop)"
        )
    target.extend(callbacks)
