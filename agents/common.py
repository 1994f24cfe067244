"""Pieces the trainers share: config checks, a layer, observation statistics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from torch import nn

# The range check lives in telemetry.checks (the telemetry package imports no trainer);
# its names stay importable from here.
from telemetry.checks import (
    NON_NEGATIVE,
    POSITIVE,
    UNIT,
    Interval,
    at_least,
    check_number,
    check_numbers,
)
from telemetry.errors import ConfigError

__all__ = [
    "NON_NEGATIVE",
    "OBS_CLIP",
    "POSITIVE",
    "UNIT",
    "Interval",
    "RunningMeanStd",
    "at_least",
    "check_bool",
    "check_number",
    "check_numbers",
    "orthogonal_layer",
]

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
