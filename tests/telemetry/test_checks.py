"""The one config range check: every sink, the run settings and every trainer use it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pytest

from telemetry.checks import (
    COUNT,
    NON_NEGATIVE,
    POSITIVE,
    TIMEOUT,
    UNIT,
    UP_TO_A_MINUTE,
    Interval,
    at_least,
    check_number,
    check_numbers,
)
from telemetry.errors import ConfigError
from telemetry.sink import Delivery


@pytest.mark.parametrize(
    ("allowed", "text"),
    [
        (POSITIVE, "> 0"),
        (NON_NEGATIVE, ">= 0"),
        (UNIT, "in [0, 1]"),
        (at_least(1), "an integer >= 1"),
        (Interval(0.0, 1.0, low_open=True), "in (0, 1]"),
        (Interval(0.0, 1.0, high_open=True), "in [0, 1)"),
        (Interval(2, 100_000, integer=True), "an integer in [2, 100000]"),
        (Interval(-5.0, 2.5), "in [-5, 2.5]"),
        (Interval(high=1e-3), "<= 0.001"),
        (Interval(high=1e-3, text="<= lr (0.001)"), "<= lr (0.001)"),
        (Interval(), "a finite number"),
        (COUNT, "at least 1"),
        (TIMEOUT, "more than 0 (seconds)"),
        (UP_TO_A_MINUTE, "between 0 and 60 (seconds)"),
    ],
)
def test_an_interval_says_what_it_allows(allowed: Interval, text: str) -> None:
    """The text an error message uses for each kind of interval."""
    assert str(allowed) == text


@pytest.mark.parametrize(
    ("allowed", "value", "inside"),
    [
        (POSITIVE, 1e-9, True),
        (POSITIVE, 0.0, False),
        (UNIT, 1, True),
        (UNIT, math.nan, False),
        (NON_NEGATIVE, math.inf, False),
        (at_least(1), 1, True),
        (at_least(1), 2.0, False),
        (at_least(0), True, False),
        (Interval(0.0, 1.0, low_open=True), 0.0, False),
        (Interval(0.0, 1.0, high_open=True), 1.0, False),
        (POSITIVE, "1", False),
        (at_least(1), 10**400, True),
        (COUNT, 0, False),
        (TIMEOUT, math.inf, False),
        (UP_TO_A_MINUTE, 60, True),
        (UP_TO_A_MINUTE, 60.5, False),
    ],
)
def test_an_interval_holds_finite_numbers_between_its_bounds(
    allowed: Interval, value: object, inside: bool
) -> None:
    """Bools, strings, NaN and infinities are never inside; integers only where asked."""
    assert (value in allowed) is inside


@dataclass
class _Config:
    lr: float = 0.0


def test_check_number_names_the_section_field_and_what_is_allowed() -> None:
    """The message reads ``section.field must be <allowed>, got <value>``."""
    with pytest.raises(ConfigError, match=r"^ppo\.lr must be > 0, got 0\.0$"):
        check_number("ppo", _Config(), "lr", POSITIVE)
    check_number("ppo", _Config(lr=0.1), "lr", POSITIVE)


def test_a_top_level_key_is_named_alone() -> None:
    """With no section the message names the key alone, as the run settings need."""
    with pytest.raises(ConfigError, match=r"^lr must be > 0, got 0\.0$"):
        check_number("", _Config(), "lr", POSITIVE)


def test_check_numbers_stops_at_the_first_value_not_allowed() -> None:
    """``check_numbers`` checks a table of limits in order and names the first bad key."""

    @dataclass
    class Two:
        a: int = 1
        b: int = 0
        c: int = -1

    with pytest.raises(ConfigError, match=r"^s\.b must be at least 1, got 0$"):
        check_numbers("s", Two(), {"a": COUNT, "b": COUNT, "c": COUNT})
    check_numbers("s", Two(), {"a": COUNT})


def test_interval_check_names_the_key() -> None:
    """``Interval.check`` raises for a bare value, as a function argument needs."""
    with pytest.raises(ConfigError, match=r"^episodes must be an integer >= 0, got -1$"):
        at_least(0).check("episodes", -1)
    at_least(0).check("episodes", 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (Delivery(capacity=0), "capacity must be at least 1, got 0"),
        (Delivery(batch_size=0), "batch_size must be at least 1, got 0"),
        (Delivery(max_latency=61.0), "max_latency must be between 0 and 60 (seconds), got 61.0"),
        (Delivery(max_retries=-1), "max_retries must be 0 or more, got -1"),
        (Delivery(isolate_after=0), "isolate_after must be at least 1, got 0"),
        (Delivery(overflow="drop"), "overflow must be block or spill, got 'drop'"),
    ],
)
def test_delivery_keys_are_checked_with_the_range_check(options: Delivery, message: str) -> None:
    """Every sink's delivery keys: the same ``section.key must be ..., got ...`` messages."""
    with pytest.raises(ConfigError, match=f"^sink\\.{re.escape(message)}$"):
        options.validate("sink")
    Delivery().validate("sink")
