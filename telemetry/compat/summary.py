"""A run's summary: by default the last value of each key; per ``define_metric``, its stats."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from telemetry.compat.metrics import Plan


class Stat:
    """The running statistics of one key whose summary ``define_metric`` chose."""

    __slots__ = ("count", "first", "goal", "last", "max", "min", "ops", "total")

    def __init__(self, ops: tuple[str, ...], goal: str | None) -> None:
        self.ops, self.goal = ops, goal
        self.count, self.total = 0, 0.0
        self.first = self.last = self.min = self.max = math.nan

    def add(self, value: float) -> None:
        if self.count == 0:
            self.first = self.min = self.max = value
        else:
            self.min = min(self.min, value)
            self.max = max(self.max, value)
        self.last = value
        self.count += 1
        self.total += value

    def view(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for op in self.ops:
            if op == "mean":
                out[op] = self.total / self.count
            elif op == "best":
                out[op] = self.min if self.goal == "minimize" else self.max
            elif op != "none":
                out[op] = getattr(self, op)
        return out


def number(value: Any) -> Any:
    """A logged value as a plain int or float (numpy numbers and 0-d tensors unwrapped)."""
    if type(value) in (int, float):
        return value
    if isinstance(value, bool):
        return int(value)
    item = getattr(value, "item", None)
    return item() if callable(item) else value


class Summary(MutableMapping[str, Any]):
    """Key to summary value: ``run.summary["best"] = 3`` sets one; logging a key updates it."""

    __slots__ = ("_stats", "last")

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self.last: dict[str, Any] = dict(values or {})
        """The last logged (or set) value of each key: ``log`` updates it in C."""
        self._stats: dict[str, Stat] = {}

    def observe(self, row: Mapping[str, Any], plans: Any) -> None:
        """Fold a logged row in, keeping the stats of the keys ``define_metric`` names."""
        self.last.update(row)
        for key, value in row.items():
            plan: Plan = plans.plan(key)
            if plan.ops is not None:
                stat = self._stats.get(key)
                if stat is None:
                    stat = self._stats[key] = Stat(plan.ops, plan.goal)
                stat.add(float(number(value)))

    def __getitem__(self, key: str) -> Any:
        stat = self._stats.get(key)
        if stat is not None:
            if stat.ops == ("none",):
                raise KeyError(key)
            return stat.view()
        return number(self.last[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self._stats.pop(key, None)
        self.last[key] = value

    def __delitem__(self, key: str) -> None:
        self._stats.pop(key, None)
        del self.last[key]

    def __iter__(self) -> Iterator[str]:
        return iter([k for k in self.last if k in self])

    def __contains__(self, key: object) -> bool:
        stat = self._stats.get(key) if isinstance(key, str) else None
        return key in self.last and (stat is None or stat.ops != ("none",))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"Summary({dict(self)!r})"

    def as_dict(self) -> dict[str, Any]:
        """A plain copy, as ``summary.json`` holds it."""
        return {key: self[key] for key in self}
