"""The JSON Lines encoding: exact round trips, non-finite numbers spelt out."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from telemetry.codec import decode, encode
from telemetry.events import (
    Aggregate,
    Alert,
    ArtifactSaved,
    Evaluation,
    Event,
    Health,
    Hyperparameters,
    LogRecord,
    Metrics,
    RunFinished,
    RunStarted,
    SystemInfo,
)

keys = st.text(min_size=1, max_size=40)
numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
)
finite_params = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
envelope: dict[str, Any] = {
    "run_id": st.text(min_size=1, max_size=12),
    "seq": st.integers(min_value=1, max_value=2**62),
    "time": st.floats(min_value=0, max_value=4e9),
}
steps = st.integers(min_value=0, max_value=2**62)
axes = st.sampled_from(["episode", "generation", "epoch", "step"])
values = st.dictionaries(keys, numbers, max_size=12)
params = st.dictionaries(keys, finite_params, max_size=8)
texts = st.text(max_size=30)

events = st.one_of(
    st.builds(Metrics, **envelope, step=steps, axis=axes, values=values),
    st.builds(Evaluation, **envelope, step=steps, axis=axes, name=texts, values=values),
    st.builds(
        Aggregate,
        **envelope,
        step=steps,
        axis=axes,
        window=st.integers(1, 100),
        first_step=steps,
        values=values,
    ),
    st.builds(Health, **envelope, step=steps, values=values),
    st.builds(Hyperparameters, **envelope, values=params),
    st.builds(SystemInfo, **envelope, values=params),
    st.builds(
        ArtifactSaved,
        **envelope,
        name=texts,
        path=texts,
        kind=texts,
        step=steps,
        axis=axes,
        metadata=params,
    ),
    st.builds(
        RunStarted,
        **envelope,
        name=texts,
        project=texts,
        tags=st.lists(texts, max_size=4).map(tuple),
        group=st.none() | texts,
        notes=st.none() | texts,
        config=st.dictionaries(keys, finite_params, max_size=5),
        resumed=st.booleans(),
    ),
    st.builds(
        RunFinished,
        **envelope,
        status=st.sampled_from(["finished", "failed", "interrupted", "stopped"]),
        error=st.none() | texts,
    ),
    st.builds(
        Alert,
        **envelope,
        title=texts,
        text=texts,
        level=st.sampled_from(["INFO", "WARN", "ERROR"]),
        key=st.none() | texts,
        step=st.none() | steps,
        axis=st.none() | axes,
    ),
    st.builds(
        LogRecord,
        **envelope,
        level=st.sampled_from(["debug", "info", "warning", "error", "critical"]),
        message=texts,
        logger=texts,
        fields=params,
    ),
)


def _same(a: Any, b: Any) -> bool:
    """Equality in which NaN equals NaN and int and float stay distinct."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@given(events)
def test_round_trip_is_exact(event: Event) -> None:
    """Any event decodes back to an equal event: types, seq, NaN and infinities included."""
    line = encode(event)
    assert b"\n" not in line
    back = decode(line)
    assert type(back) is type(event)
    for name in event.__dataclass_fields__:
        assert _same(getattr(back, name), getattr(event, name)), name


def test_non_finite_numbers_are_written_as_strings() -> None:
    """NaN and infinities are the strings NaN, Infinity and -Infinity, never null."""
    event = Metrics(
        run_id="r",
        seq=1,
        time=0.0,
        step=0,
        axis="step",
        values={"a": math.nan, "b": math.inf, "c": -math.inf, "d": 1},
    )
    obj = orjson.loads(encode(event))
    assert obj["values"] == {"a": "NaN", "b": "Infinity", "c": "-Infinity", "d": 1}
    assert {"type", "run_id", "seq", "time", "step", "values"} <= obj.keys()
