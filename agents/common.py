"""Pieces the trainers share: config checks, a layer, observation statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from torch import nn

from telemetry.errors import ConfigError

OBS_CLIP = 5.0
"""Normalised observations are clipped to ``[-OBS_CLIP, OBS_CLIP]``."""


class RunningMeanStd:
    """Running mean and variance of observations (parallel-variance update, float64)."""

    def __init__(self, dim: int) -> None:
        self.mean = np.zeros(dim, dtype=np.float64)
        self.var = np.ones(dim, dtype=np.float64)
        self.count = 1e-4

    def update(self, x: NDArray[Any]) -> None:
        """Fold one observation ``(dim,)`` or a batch ``(n, dim)`` into the statistics."""
        batch = np.atleast_2d(np.asarray(x, dtype=np.float64))
        n = batch.shape[0]
        if n == 0:
            return
        b_mean = batch.mean(axis=0)
        b_var = batch.var(axis=0)
        delta = b_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * (n / total)
        m2 = self.var * self.count + b_var * n + delta * delta * (self.count * n / total)
        self.var = m2 / total
        self.count = total

    def normalize(self, x: NDArray[Any]) -> NDArray[np.float32]:
        """Standardise and clip to ``[-OBS_CLIP, OBS_CLIP]``."""
        out = (np.asarray(x, dtype=np.float64) - self.mean) / np.sqrt(self.var + 1e-8)
        return np.clip(out, -OBS_CLIP, OBS_CLIP).astype(np.float32)

    def state(self) -> dict[str, Any]:
        """The statistics, for a checkpoint."""
        return {"mean": self.mean.copy(), "var": self.var.copy(), "count": self.count}

    def load(self, state: dict[str, Any]) -> None:
        """Restore what ``state`` returned (arrays or tensors)."""
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.var = np.asarray(state["var"], dtype=np.float64)
        self.count = float(state["count"])


@dataclass(frozen=True, slots=True)
class Interval:
    """The numbers a config field allows: finite, between ``low`` and ``high``, maybe integers."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    text: str = ""
    """What the error message says is allowed, when the bounds alone would not say it well."""

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if isinstance(value, float) and (self.integer or not math.isfinite(value)):
            return False
        above = self.low < value if self.low_open else self.low <= value
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.text:
            return self.text
        kind = "an integer " if self.integer else ""
        low, high = math.isfinite(self.low), math.isfinite(self.high)
        if low and high:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind}in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if low:
            return f"{kind}{'>' if self.low_open else '>='} {_number(self.low)}"
        if high:
            return f"{kind}{'<' if self.high_open else '<='} {_number(self.high)}"
        return kind.strip() or "a finite number"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


POSITIVE = Interval(0.0, low_open=True)
"""Numbers > 0."""
NON_NEGATIVE = Interval(0.0)
"""Numbers >= 0."""
UNIT = Interval(0.0, 1.0)
"""Numbers in [0, 1]."""


def at_least(low: int) -> Interval:
    """Integers >= ``low``."""
    return Interval(low, integer=True)


def check_number(section: str, config: Any, name: str, allowed: Interval) -> None:
    """Raise ``ConfigError`` unless ``config.name`` is in ``allowed``; the message names
    ``section.name`` and what is allowed."""
    value = getattr(config, name)
    if value not in allowed:
        raise ConfigError(f"{section}.{name} must be {allowed}, got {value!r}")


def check_bool(section: str, config: Any, name: str) -> None:
    """Raise ``ConfigError`` unless ``config.name`` is true or false."""
    value = getattr(config, name)
    if not isinstance(value, bool):
        raise ConfigError(f"{section}.{name} must be true or false, got {value!r}")


def orthogonal_layer(n_in: int, n_out: int, std: float = math.sqrt(2.0)) -> nn.Linear:
    """A linear layer with orthogonal weights and zero bias (CleanRL's ``layer_init``)."""
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer
