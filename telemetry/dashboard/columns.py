"""Growable numpy columns: one metric key's points, extended in place as the log grows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from telemetry.events import Aggregate, Evaluation, Metrics

Floats = npt.NDArray[np.float64]


class Column:
    """The ``(step, time, value)`` points of one key, in log order, with amortised appends."""

    __slots__ = ("_step", "_time", "_value", "axis", "high", "low", "size")

    def __init__(self, axis: str) -> None:
        self.axis = axis
        self.size = 0
        self.low = math.inf
        self.high = -math.inf
        self._step: Floats = np.empty(64)
        self._time: Floats = np.empty(64)
        self._value: Floats = np.empty(64)

    def extend(self, steps: Floats, times: Floats, values: list[float]) -> None:
        """Append points; capacity doubles so a million appends copy about two million floats."""
        count = len(steps)
        end = self.size + count
        if end > len(self._step):
            capacity = max(end, 2 * len(self._step))
            self._step = _grown(self._step, capacity, self.size)
            self._time = _grown(self._time, capacity, self.size)
            self._value = _grown(self._value, capacity, self.size)
        self._step[self.size : end] = steps
        self._time[self.size : end] = times
        self._value[self.size : end] = values
        added = self._value[self.size : end]
        finite = added[np.isfinite(added)]
        if finite.size:
            self.low = min(self.low, float(finite.min()))
            self.high = max(self.high, float(finite.max()))
        self.size = end

    @property
    def step(self) -> Floats:
        return self._step[: self.size]

    @property
    def time(self) -> Floats:
        return self._time[: self.size]

    @property
    def value(self) -> Floats:
        return self._value[: self.size]

    def nbytes(self) -> int:
        return int(self._step.nbytes + self._time.nbytes + self._value.nbytes)


def _grown(array: Floats, capacity: int, used: int) -> Floats:
    bigger = np.empty(capacity)
    bigger[:used] = array[:used]
    return bigger


class Columns:
    """Columns by key, extended a chunk of scalar events at a time (one numpy copy per key)."""

    __slots__ = ("by_key",)

    def __init__(self) -> None:
        self.by_key: dict[str, Column] = {}

    def extend(self, events: Sequence[Metrics | Evaluation | Aggregate]) -> None:
        """Append each event's values to its keys' columns.

        Runs log the same keys at most steps, so the work is done per key over the
        whole chunk in comprehensions, not per value: a million-step log is read
        in a few seconds.
        """
        if not events:
            return
        dicts = [event.values for event in events]
        steps = np.fromiter((event.step for event in events), np.float64, len(events))
        times = np.fromiter((event.time for event in events), np.float64, len(events))
        keys: dict[str, str] = {}
        for event in events:
            for key in event.values:
                keys[key] = event.axis
        for key, axis in keys.items():
            column = self.by_key.get(key)
            if column is None:
                column = self.by_key[key] = Column(axis)
            column.axis = axis
            present = np.fromiter((key in d for d in dicts), bool, len(dicts))
            if present.all():
                values = [d[key] for d in dicts]
                column.extend(steps, times, values)
            else:
                values = [d[key] for d in dicts if key in d]
                column.extend(steps[present], times[present], values)

    def nbytes(self) -> int:
        return sum(column.nbytes() for column in self.by_key.values())
