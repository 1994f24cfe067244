"""Window statistics over every N steps of one axis, computed once inside the bus."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from telemetry.checks import Interval, check_number
from telemetry.values import Scalar


@dataclass(frozen=True, slots=True)
class AggregateSpec:
    """What to aggregate: every ``every`` steps of ``axis``, the chosen ``keys`` (all if empty)."""

    every: int = 10
    """Steps per window; 0 turns aggregation off."""
    axis: str = "episode"
    """The step axis whose metrics are aggregated."""
    keys: tuple[str, ...] = ()
    """Metric keys to aggregate; empty means every key seen on the axis."""

    def __post_init__(self) -> None:
        check_number("aggregate", self, "every", _EVERY)


_EVERY = Interval(0, integer=True, text="0 (off) or more")


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One finished window: its last and first step and the flattened statistics."""

    step: int
    first_step: int
    window: int
    values: dict[str, Scalar]


@dataclass(slots=True)
class Aggregator:
    """Collects metrics of one axis and closes a window every ``spec.every`` distinct steps.

    Statistics per key: numpy mean, std (population), min, max, the count of
    values, and the trend, the least-squares slope of value against step
    (0.0 when the window has fewer than two distinct steps).
    """

    spec: AggregateSpec
    _steps: list[int] = field(default_factory=list)
    _samples: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)

    def add(self, step: int, axis: str, values: Mapping[str, Scalar]) -> WindowStats | None:
        """Fold one step's metrics in; return the window's statistics when it closes."""
        if axis != self.spec.axis or self.spec.every == 0:
            return None
        if not self._steps or self._steps[-1] != step:
            self._steps.append(step)
        wanted = self.spec.keys
        for key, value in values.items():
            if wanted and key not in wanted:
                continue
            steps, samples = self._samples.setdefault(key, ([], []))
            steps.append(step)
            samples.append(float(value))
        if len(self._steps) < self.spec.every:
            return None
        return self._close()

    def _close(self) -> WindowStats:
        out: dict[str, Scalar] = {}
        for key, (steps, values) in self._samples.items():
            out.update(_stats(key, steps, values))
        stats = WindowStats(
            step=self._steps[-1], first_step=self._steps[0], window=len(self._steps), values=out
        )
        self._steps = []
        self._samples = {}
        return stats


def _stats(key: str, steps: Sequence[int], values: Sequence[float]) -> dict[str, Scalar]:
    y = np.asarray(values, dtype=np.float64)
    x = np.asarray(steps, dtype=np.float64)
    # NaN and infinities are kept as values, so their statistics are NaN or infinite:
    # numpy's RuntimeWarnings about it must not reach the pump (under -W error they raise).
    with np.errstate(all="ignore"):
        dx = x - x.mean()
        spread = float(np.dot(dx, dx))
        trend = float(np.dot(dx, y - y.mean()) / spread) if spread > 0 else 0.0
        return {
            f"{key}/mean": float(np.mean(y)),
            f"{key}/std": float(np.std(y)),
            f"{key}/min": float(np.min(y)),
            f"{key}/max": float(np.max(y)),
            f"{key}/count": len(values),
            f"{key}/trend": trend,
        }
