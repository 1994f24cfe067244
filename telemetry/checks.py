"""The one range check of config numbers: an ``Interval`` and ``check_number``.

Every number a config allows (a sink's delivery keys, the run settings, a
trainer's hyperparameters) is checked here, so each error message reads
``<section>.<key> must be <allowed>, got <value>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from telemetry.errors import ConfigError


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

    def check(self, key: str, value: object) -> None:
        """Raise ``ConfigError`` unless ``value`` is inside; the message names ``key``."""
        if value not in self:
            raise ConfigError(f"{key} must be {self}, got {value!r}")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


POSITIVE = Interval(0.0, low_open=True)
"""Numbers > 0."""
NON_NEGATIVE = Interval(0.0)
"""Numbers >= 0."""
UNIT = Interval(0.0, 1.0)
"""Numbers in [0, 1]."""
COUNT = Interval(1, integer=True, text="at least 1")
"""Integers >= 1 (sizes, capacities, steps between lines), worded "at least 1"."""
TIMEOUT = Interval(0.0, low_open=True, text="more than 0 (seconds)")
"""Seconds to wait for something at most: finite and > 0."""
UP_TO_A_MINUTE = Interval(0.0, 60.0, text="between 0 and 60 (seconds)")
"""Seconds in [0, 60], for delays the bus or a sink may add."""


def at_least(low: int) -> Interval:
    """Integers >= ``low``."""
    return Interval(low, integer=True)


def check_number(section: str, config: Any, name: str, allowed: Interval) -> None:
    """Raise ``ConfigError`` unless ``config.name`` is in ``allowed``; the message names
    ``section.name`` (``name`` alone for a top-level key, ``section=""``) and what is allowed."""
    allowed.check(f"{section}.{name}" if section else name, getattr(config, name))


def check_numbers(section: str, config: Any, limits: Mapping[str, Interval]) -> None:
    """``check_number`` for each ``name -> allowed`` of ``limits``, in order."""
    for name, allowed in limits.items():
        check_number(section, config, name, allowed)
