"""Stable-Baselines3 on the bus: an output format for SB3's logger, and a callback.

``TelemetryOutputFormat`` is an SB3 ``KVWriter``: each ``logger.dump(step)``
becomes one ``Metrics`` event of SB3's own keys (``rollout/ep_rew_mean``,
``train/value_loss``, ``time/fps``...) at SB3's step (``num_timesteps``) on the
``timestep`` axis. ``TelemetryCallback`` adds that format to the model's
logger, publishes the model's hyperparameters when training starts, and saves
checkpoints every ``save_every`` timesteps as ``ArtifactSaved`` events.

Run ``model.learn`` in a worker thread (``await anyio.to_thread.run_sync(...)``)
inside ``async with Bus(...)``: on the event loop's own thread it would stop the
bus from delivering anything until it returns.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from telemetry.errors import CheckpointError, write_failure
from telemetry.events import ArtifactSaved, Hyperparameters, Param
from telemetry.integrations import Publisher, check_publisher, missing
from telemetry.values import MAX_KEY_LENGTH, Scalar

try:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import (
        Figure,
        HParam,
        Image,
        KVWriter,
        Logger,
        Video,
    )
    from stable_baselines3.common.logger import configure as sb3_configure
    from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule
except ImportError as exc:
    raise missing(
        "stable-baselines3",
        "pip install --no-deps 'stable-baselines3>=2.3' && pip install cloudpickle pandas "
        "matplotlib (--no-deps: its torch requirement would replace the pinned CPU torch)",
    ) from exc

__all__ = [
    "AXIS",
    "FORMAT_NAME",
    "TelemetryCallback",
    "TelemetryOutputFormat",
    "configure",
    "hyperparameters",
]

logger = structlog.get_logger("telemetry")

AXIS = "timestep"
"""The step axis of SB3's metrics and checkpoints: the step is the model's ``num_timesteps``."""
FORMAT_NAME = "telemetry"
"""The format's name in SB3's ``exclude``: ``logger.record(key, value, exclude="telemetry")``."""


class TelemetryOutputFormat(KVWriter):
    """SB3 output format: each dump's numbers as one ``Metrics`` event at SB3's step.

    Numbers (Python, numpy, 0-d or one-element arrays and tensors, as SB3's JSON
    format reads them) are published; a key excluded for ``name`` is left out,
    as SB3's formats leave out theirs; an ``HParam`` becomes a ``Hyperparameters``
    event (TensorBoard's format writes it as hparams). What has no number (text,
    videos, figures, images, arrays: TensorBoard's text, media and histograms)
    is skipped, noted in ``skipped`` and logged once per key.
    """

    def __init__(self, bus: Publisher, *, axis: str = AXIS, name: str = FORMAT_NAME) -> None:
        self.bus = check_publisher(bus, "TelemetryOutputFormat")
        if not isinstance(axis, str) or not axis:
            raise ValueError(f"axis must be a non-empty string such as {AXIS!r}, got {axis!r}")
        self.axis = axis
        self.name = name
        self.skipped: dict[str, str] = {}
        """Keys not published, with why (the first time each was seen)."""

    def write(
        self,
        key_values: dict[str, Any],
        key_excluded: dict[str, tuple[str, ...]],
        step: int = 0,
    ) -> None:
        values: dict[str, Scalar] = {}
        for key, value in key_values.items():
            excluded = key_excluded.get(key)
            if excluded is not None and self.name in excluded:
                continue
            if isinstance(value, HParam):
                self.bus.emit(Hyperparameters, values=dict(value.hparam_dict))
                continue
            number = _number(value)
            if isinstance(number, str):
                self._skip(key, number)
            elif not 0 < len(key) <= MAX_KEY_LENGTH:
                self._skip(key, f"the key is {len(key)} characters; 1 to {MAX_KEY_LENGTH} allowed")
            else:
                values[key] = number
        if values:
            self.bus.log(values, step=step, axis=self.axis)

    def _skip(self, key: str, reason: str) -> None:
        if key not in self.skipped:
            self.skipped[key] = reason
            logger.info("sb3_value_not_published", key=key[:80], reason=reason)

    def close(self) -> None:
        """Nothing to close: the bus belongs to the caller and outlives SB3's logger."""


def configure(
    bus: Publisher,
    folder: str | None = None,
    format_strings: Sequence[str] | None = None,
    *,
    axis: str = AXIS,
) -> Logger:
    """SB3's ``configure(folder, format_strings)`` with a ``TelemetryOutputFormat`` added."""
    sb3_logger = sb3_configure(folder, None if format_strings is None else list(format_strings))
    sb3_logger.output_formats.append(TelemetryOutputFormat(bus, axis=axis))
    return sb3_logger


class TelemetryCallback(BaseCallback):
    """Publishes an SB3 model's training: hyperparameters, SB3's own metrics, checkpoints.

    - When ``learn`` starts: a ``Hyperparameters`` event (``hyperparameters(model)``,
      ``total_timesteps`` and the ``hyperparameters`` given here); and, with
      ``attach``, a ``TelemetryOutputFormat`` added to the model's logger unless
      it already has one for this bus.
    - Every ``save_every`` timesteps (0: never): the model saved to
      ``save_path/<name_prefix>_<timesteps>_steps.zip`` (SB3's
      ``CheckpointCallback`` names; but counted in timesteps, all environments
      together, not in calls), after the log holds every event so far, then an
      ``ArtifactSaved`` event of kind ``checkpoint`` at that step.
    """

    def __init__(
        self,
        bus: Publisher,
        *,
        axis: str = AXIS,
        save_every: int = 0,
        save_path: str | os.PathLike[str] | None = None,
        name_prefix: str = "rl_model",
        hyperparameters: Mapping[str, Param] | None = None,
        attach: bool = True,
        flush_timeout: float = 30.0,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.bus = check_publisher(bus, "TelemetryCallback")
        if not isinstance(axis, str) or not axis:
            raise ValueError(f"axis must be a non-empty string such as {AXIS!r}, got {axis!r}")
        if type(save_every) is not int or save_every < 0:
            raise ValueError(f"save_every must be an integer >= 0 (timesteps), got {save_every!r}")
        if save_every and save_path is None:
            raise ValueError("save_every needs save_path: the folder the checkpoints go to")
        if save_path is not None and not save_every:
            raise ValueError("save_path needs save_every > 0: the timesteps between checkpoints")
        self.axis = axis
        self.save_every = save_every
        self.save_path = None if save_path is None else Path(save_path)
        self.name_prefix = name_prefix
        self.extra = dict(hyperparameters or {})
        self.attach = attach
        self.flush_timeout = flush_timeout
        self.saved: list[Path] = []
        """The checkpoints written, in order."""
        self._next_save = 0

    def _init_callback(self) -> None:
        if not self.attach:
            return
        formats = self.model.logger.output_formats
        if not any(isinstance(f, TelemetryOutputFormat) and f.bus is self.bus for f in formats):
            formats.append(TelemetryOutputFormat(self.bus, axis=self.axis))

    def _on_training_start(self) -> None:
        if _on_event_loop():
            logger.warning(
                "sb3_learn_on_event_loop",
                why="the bus delivers nothing until learn() returns",
                fix="await anyio.to_thread.run_sync(lambda: model.learn(...))",
            )
        values = hyperparameters(self.model)
        if "total_timesteps" in self.locals:
            values["total_timesteps"] = _param(self.locals["total_timesteps"])
        self.bus.emit(Hyperparameters, values=values | self.extra)
        if self.save_every:
            self._next_save = (self.num_timesteps // self.save_every + 1) * self.save_every

    def _on_step(self) -> bool:
        if self.save_every and self.num_timesteps >= self._next_save:
            self._save()
            self._next_save = (self.num_timesteps // self.save_every + 1) * self.save_every
        return True

    def _save(self) -> None:
        assert self.save_path is not None  # checked in __init__ with save_every
        step = self.num_timesteps
        path = self.save_path / f"{self.name_prefix}_{step}_steps.zip"
        self._flush()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.model.save(path)
        except OSError as exc:
            raise CheckpointError(
                f"cannot write the checkpoint {path}: {write_failure(exc)}"
            ) from exc
        self.saved.append(path)
        self.bus.emit(
            ArtifactSaved,
            name=path.stem,
            path=str(path),
            kind="checkpoint",
            step=step,
            axis=self.axis,
            metadata={"algo": type(self.model).__name__, "timesteps": step},
        )

    def _flush(self) -> None:
        """Wait until the log holds every event so far: a checkpoint never runs ahead of it."""
        flush = getattr(self.bus, "flush_from_thread", None)
        if flush is None or _on_event_loop():
            return
        if not flush(self.flush_timeout):
            logger.warning(
                "sb3_checkpoint_before_log",
                why=f"the log did not catch up within {self.flush_timeout} s",
            )


def hyperparameters(model: BaseAlgorithm) -> dict[str, Param]:
    """A model's hyperparameters, flat: its class's constructor arguments as the model holds them.

    Besides ``algo``, ``policy``, ``env`` (its id) and ``n_envs``: every argument
    of the algorithm's ``__init__`` the model keeps as an attribute, but the
    environment, policy, logging and device ones. Constant schedules are their
    value, classes their name, mappings flattened to ``outer/inner`` keys, other
    objects their ``repr``.
    """
    values: dict[str, Param] = {
        "algo": type(model).__name__,
        "policy": _param(getattr(model, "policy_class", None)),
        "n_envs": model.n_envs,
    }
    env = model.get_env()
    if env is not None:
        spec = env.get_attr("spec", [0])[0]
        values["env"] = getattr(spec, "id", None)
    for name, parameter in inspect.signature(type(model).__init__).parameters.items():
        if name in _NOT_HYPERPARAMETERS or parameter.kind in _VARIADIC:
            continue
        if hasattr(model, name):
            _flatten(name, getattr(model, name), values)
    return values


_NOT_HYPERPARAMETERS = frozenset(
    {"self", "policy", "env", "verbose", "tensorboard_log", "device", "_init_setup_model"}
)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _flatten(key: str, value: Any, out: dict[str, Param]) -> None:
    if isinstance(value, Mapping):
        for inner, item in value.items():
            _flatten(f"{key}/{inner}", item, out)
    else:
        out[key] = _param(value)


def _param(value: Any) -> Param:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        item: Param = value.item()
        return item
    if isinstance(value, FloatSchedule):
        return _param(value.value_schedule)
    if isinstance(value, ConstantSchedule):
        return value.val
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, (list, tuple)):
        return repr([_param(v) for v in value])
    if inspect.isfunction(value) or inspect.ismethod(value):
        return value.__qualname__
    return repr(value)


def _number(value: Any) -> Scalar | str:
    """The number in an SB3 value, or why there is none."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return int(value) if -(2**63) <= value < 2**64 else float(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return "text (TensorBoard's format writes it with add_text)"
    if isinstance(value, (Video, Figure, Image)):
        return f"a {type(value).__name__.lower()} (TensorBoard's format only)"
    if value is None:
        return "None"
    item = getattr(value, "item", None)
    shape = getattr(value, "shape", None)
    if callable(item) and shape is not None:  # numpy and torch alike
        if math.prod(shape) == 1:
            return _number(item())
        return f"an array of shape {tuple(shape)} (TensorBoard's format writes a histogram)"
    return f"a {type(value).__name__}, not a number"


def _on_event_loop() -> bool:
    """Whether this thread runs an asyncio event loop (which a blocking ``learn`` would stop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
