"""Window aggregates: the same numbers numpy gives over the same window."""

from __future__ import annotations

import anyio
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.memory import MemorySink
from telemetry.aggregate import AggregateSpec, Aggregator
from telemetry.bus import Bus
from telemetry.events import Aggregate

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.lists(finite, min_size=20, max_size=60), st.integers(min_value=2, max_value=10))
def test_statistics_equal_numpys(series: list[float], every: int) -> None:
    """Mean, std, min, max, count and trend of each window equal numpy's on that window."""
    aggregator = Aggregator(AggregateSpec(every=every, axis="episode"))
    windows = []
    for step, value in enumerate(series):
        window = aggregator.add(step, "episode", {"r": value})
        if window is not None:
            windows.append(window)
    assert len(windows) == len(series) // every
    for index, window in enumerate(windows):
        y = np.array(series[index * every : (index + 1) * every])
        x = np.arange(index * every, (index + 1) * every, dtype=float)
        assert window.first_step == index * every
        assert window.step == (index + 1) * every - 1
        assert window.values["r/mean"] == pytest.approx(np.mean(y), rel=1e-9, abs=1e-9)
        assert window.values["r/std"] == pytest.approx(np.std(y), rel=1e-9, abs=1e-6)
        assert window.values["r/min"] == np.min(y)
        assert window.values["r/max"] == np.max(y)
        assert window.values["r/count"] == every
        assert window.values["r/trend"] == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-6, abs=1e-6)


async def test_bus_publishes_aggregates_once_for_every_sink() -> None:
    """The bus computes each window once and both sinks see the identical event."""
    a, b = MemorySink("a"), MemorySink("b")
    spec = AggregateSpec(every=10, axis="episode", keys=("reward",))
    with anyio.fail_after(10):
        async with Bus("r", [a, b], aggregate=spec, health_interval=None) as bus:
            for episode in range(30):
                bus.log({"reward": float(episode), "other": 1.0}, step=episode, axis="episode")
                bus.log({"loss": 0.1}, step=episode, axis="update")
    aggregates_a = a.of_type(Aggregate)
    assert aggregates_a == b.of_type(Aggregate)
    assert [e.step for e in aggregates_a] == [9, 19, 29]
    first = aggregates_a[0]
    assert isinstance(first, Aggregate)
    assert first.values["reward/mean"] == 4.5
    assert first.values["reward/trend"] == pytest.approx(1.0)
    assert not any(k.startswith("other/") for k in first.values)
