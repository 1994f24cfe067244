"""Bad metric input: refused with an error naming the key, or converted as documented.

Documented behaviour pinned here:

- NaN and infinities are kept and round-trip through the JSON Lines log
  (as the strings "NaN", "Infinity", "-Infinity").
- bool becomes int, numpy scalars and 0-d arrays become Python numbers,
  0-d torch tensors become Python numbers.
- strings, None, nested dicts, lists, arrays and tensors with more than one
  element, and keys that are empty, longer than 256 characters or not strings
  raise ``InvalidMetricError`` naming the key; nothing is published and no
  ``seq`` is used up.
- steps that go backwards are kept as they are; negative or non-integer steps
  raise ``InvalidMetricError``.
- events after close raise ``BusClosedError``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import torch

from sinks.jsonl import JsonlSink
from sinks.memory import MemorySink
from telemetry.aggregate import AggregateSpec
from telemetry.bus import Bus, RunInfo
from telemetry.errors import BusClosedError, InvalidMetricError
from telemetry.events import Aggregate, Evaluation, Metrics
from tests.reliability.common import assert_no_gap, read_log

BAD_VALUES: list[tuple[str, Any, str]] = [
    ("text/value", "high", "str"),
    ("none/value", None, "NoneType"),
    ("nested/value", {"inner": 1.0}, "dict"),
    ("list/value", [1.0, 2.0], "list"),
    ("tuple/value", (1.0,), "tuple"),
    ("array/value", np.array([1.0, 2.0]), "shape (2,)"),
    ("matrix/value", np.zeros((2, 2)), "shape (2, 2)"),
    ("tensor/value", torch.tensor([1.0, 2.0, 3.0]), "shape (3,)"),
    ("bytes/value", b"\x00", "bytes"),
    ("complex/value", 1 + 2j, "complex"),
    ("huge/int", 2**70, "64-bit"),
    ("numpy/str", np.str_("x"), "str"),
]

BAD_KEYS: list[tuple[Any, str]] = [
    ("", "empty"),
    ("k" * 257, "257 characters"),
    (7, "is a int"),
    (None, "is a NoneType"),
    (("a", "b"), "is a tuple"),
]


async def _bus_with_log(tmp_path: Path, memory: MemorySink, **kwargs: Any) -> Bus:
    return Bus("bad", [JsonlSink(tmp_path / "events.jsonl", "bad"), memory], **kwargs)


async def test_bad_values_and_keys_are_refused_naming_the_key(tmp_path: Path) -> None:
    """Every bad value or key raises InvalidMetricError naming it, and good events still flow."""
    memory = MemorySink()
    bus = await _bus_with_log(tmp_path, memory, run=RunInfo(name="bad"), health_interval=None)
    with anyio.fail_after(30):
        async with bus:
            bus.log({"good/x": 1.0}, step=0)
            for key, value, kind in BAD_VALUES:
                with pytest.raises(InvalidMetricError) as info:
                    bus.log({"good/y": 2.0, key: value}, step=1)
                assert repr(key) in str(info.value)
                assert kind in str(info.value)
                with pytest.raises(InvalidMetricError, match=repr(key)):
                    bus.emit(Evaluation, step=1, axis="step", name="val", values={key: value})
            for key, what in BAD_KEYS:
                with pytest.raises(InvalidMetricError, match="key") as info:
                    bus.log({key: 1.0}, step=1)
                assert what in str(info.value)
            with pytest.raises(InvalidMetricError, match="mapping"):
                bus.log([("a", 1.0)], step=1)  # type: ignore[arg-type]
            bus.log({"good/x": 2.0}, step=1)
    reader, events = read_log(tmp_path / "events.jsonl")
    assert reader.problems == []
    assert_no_gap(events)  # a refused event uses up no seq
    metrics = [e for e in events if isinstance(e, Metrics)]
    assert [m.values for m in metrics] == [{"good/x": 1.0}, {"good/x": 2.0}]
    assert [e.seq for e in memory.events] == [e.seq for e in events]


async def test_documented_conversions_and_non_finite_round_trip(tmp_path: Path) -> None:
    """bool, numpy and 0-d tensors become Python numbers; NaN and infinities survive the log."""
    memory = MemorySink()
    bus = await _bus_with_log(tmp_path, memory, health_interval=None)
    values: dict[str, Any] = {
        "conv/bool": True,
        "conv/np_bool": np.bool_(False),
        "conv/np_int": np.int64(-7),
        "conv/np_uint": np.uint8(200),
        "conv/np_float32": np.float32(0.5),
        "conv/np_0d": np.array(2.25),
        "conv/torch_0d": torch.tensor(3.5),
        "conv/torch_int": torch.tensor(4),
        "conv/torch_grad": torch.tensor(1.5, requires_grad=True) * 2,
        "nonfinite/nan": math.nan,
        "nonfinite/inf": math.inf,
        "nonfinite/ninf": -math.inf,
        "nonfinite/np_nan": np.float64("nan"),
        "nonfinite/torch_inf": torch.tensor(float("inf")),
        "range/int_min": -(2**63),
        "range/uint_max": 2**64 - 1,
    }
    expected = {
        "conv/bool": 1,
        "conv/np_bool": 0,
        "conv/np_int": -7,
        "conv/np_uint": 200,
        "conv/np_float32": 0.5,
        "conv/np_0d": 2.25,
        "conv/torch_0d": 3.5,
        "conv/torch_int": 4,
        "conv/torch_grad": 3.0,
        "nonfinite/nan": math.nan,
        "nonfinite/inf": math.inf,
        "nonfinite/ninf": -math.inf,
        "nonfinite/np_nan": math.nan,
        "nonfinite/torch_inf": math.inf,
        "range/int_min": -(2**63),
        "range/uint_max": 2**64 - 1,
    }
    with anyio.fail_after(30):
        async with bus:
            bus.log(values, step=np.int64(3))  # type: ignore[arg-type]
            bus.log(values, step=torch.tensor(4))  # type: ignore[arg-type]
    logged = [e for e in read_log(tmp_path / "events.jsonl")[1] if isinstance(e, Metrics)]
    for source in (memory.of_type(Metrics), logged):
        assert [e.step for e in source] == [3, 4]  # type: ignore[union-attr]
        for event in source:
            got = event.values  # type: ignore[union-attr]
            assert set(got) == set(expected)
            for key, want in expected.items():
                value = got[key]
                assert type(value) in (int, float), (key, type(value))
                assert type(value) is type(want), (key, value)
                assert (math.isnan(value) and math.isnan(want)) or value == want, key
    raw = (tmp_path / "events.jsonl").read_text()
    assert '"nonfinite/nan":"NaN"' in raw
    assert '"nonfinite/inf":"Infinity"' in raw
    assert '"nonfinite/ninf":"-Infinity"' in raw
    assert "null" not in raw.split("\n", 1)[1]


async def test_steps_backwards_are_kept_and_bad_steps_refused(tmp_path: Path) -> None:
    """Backward steps are kept as given; negative, float, bool and string steps raise."""
    memory = MemorySink()
    spec = AggregateSpec(every=3, axis="episode")
    bus = await _bus_with_log(tmp_path, memory, health_interval=None, aggregate=spec)
    with anyio.fail_after(30):
        async with bus:
            for step in (5, 6, 2, 2, 9, 0):
                bus.log({"r": float(step)}, step=step, axis="episode")
            for bad, message in [(-1, "0 or more"), (1.5, "float"), (True, "bool"), ("3", "str")]:
                with pytest.raises(InvalidMetricError, match=message):
                    bus.log({"r": 1.0}, step=bad, axis="episode")  # type: ignore[arg-type]
            with pytest.raises(InvalidMetricError, match="0 or more"):
                bus.emit(Evaluation, step=-3, axis="episode", name="v", values={"r": 1.0})
    reader, events = read_log(tmp_path / "events.jsonl")
    assert reader.problems == []
    assert_no_gap(events)
    assert [e.step for e in events if isinstance(e, Metrics)] == [5, 6, 2, 2, 9, 0]
    assert [e.seq for e in memory.events] == [e.seq for e in events]
    assert len([e for e in events if isinstance(e, Aggregate)]) >= 1


async def test_non_finite_values_under_aggregation_keep_the_pipeline_up(tmp_path: Path) -> None:
    """Infinities and NaN inside an aggregate window give NaN statistics, not a dead pump."""
    memory = MemorySink()
    spec = AggregateSpec(every=2, axis="episode")
    bus = await _bus_with_log(tmp_path, memory, health_interval=None, aggregate=spec)
    with anyio.fail_after(30):
        async with bus:
            for step, value in enumerate([math.inf, 1.0, -math.inf, math.inf, math.nan, 2.0]):
                bus.log({"r": value}, step=step, axis="episode")
                await anyio.sleep(0.001)
            for step in range(6, 20):
                bus.log({"r": float(step)}, step=step, axis="episode")
    reader, events = read_log(tmp_path / "events.jsonl")
    assert reader.problems == []
    assert_no_gap(events)
    assert bus.report is not None
    assert bus.report.undelivered == {}
    assert len([e for e in events if isinstance(e, Metrics)]) == 20
    aggregates = [e for e in events if isinstance(e, Aggregate)]
    assert [a.step for a in aggregates] == list(range(1, 20, 2))
    assert math.isnan(aggregates[0].values["r/std"])
    assert aggregates[-1].values["r/mean"] == 18.5


async def test_events_after_close_are_refused_and_the_log_stays_clean(tmp_path: Path) -> None:
    """log, emit and alog after close raise BusClosedError; the log is unchanged and clean."""
    memory = MemorySink()
    bus = await _bus_with_log(tmp_path, memory, run=RunInfo(name="c"), health_interval=None)
    with anyio.fail_after(30):
        async with bus:
            bus.log({"x": 1.0}, step=0)
        size = (tmp_path / "events.jsonl").stat().st_size
        with pytest.raises(BusClosedError, match="closed"):
            bus.log({"x": 2.0}, step=1)
        with pytest.raises(BusClosedError, match="closed"):
            bus.emit(Evaluation, step=1, axis="step", name="v", values={"x": 1.0})
        with pytest.raises(BusClosedError, match="closed"):
            await bus.alog({"x": 2.0}, step=1)
        assert (await bus.aclose()).published == bus.published  # closing twice is harmless
    assert (tmp_path / "events.jsonl").stat().st_size == size
    reader, events = read_log(tmp_path / "events.jsonl")
    assert reader.problems == []
    assert_no_gap(events)
    assert events[-1].type == "run_finished"
