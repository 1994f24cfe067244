"""The bounded intake: a publisher outrunning the log waits for room, counted; memory stays flat."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import psutil

from sinks.jsonl import JsonlOptions, JsonlSink
from sinks.memory import MemorySink
from telemetry.bus import Bus
from telemetry.events import Event, Health, Metrics
from telemetry.intake import INTAKE_CAPACITY
from telemetry.reader import LogReader
from telemetry.sink import Delivery
from tests.conftest import OutageSink

VALUES = {f"train/k{i}": float(i) for i in range(8)}
MIB = 2**20


class SlowLog(JsonlSink):
    """The real log, 5 ms per batch: a producer at full speed outruns it."""

    async def write(self, batch: Sequence[Event]) -> None:
        await anyio.sleep(0.005)
        await super().write(batch)


async def _publish_from_thread(bus: Bus, steps: int, sample: Callable[[], None]) -> None:
    """Publish ``steps`` steps as fast as possible from a worker thread, calling ``sample``."""
    finished = threading.Event()

    def publish() -> None:
        for step in range(steps):
            bus.log(VALUES, step=step)
        finished.set()

    thread = threading.Thread(target=publish)
    thread.start()
    while not finished.is_set():
        sample()
        await anyio.sleep(0.002)
    thread.join()


async def test_a_publisher_that_outruns_the_log_waits_and_nothing_is_lost(tmp_path: Path) -> None:
    """Capacity 2,000: the intake never holds more, the waits are counted, the log has all."""
    options = JsonlOptions(batch_size=500)
    log = SlowLog(tmp_path / "events.jsonl", "bound", options)
    memory = MemorySink()
    sizes: list[int] = []
    with anyio.fail_after(120):
        async with Bus(
            "bound", [(log, options), memory], health_interval=0.05, intake_capacity=2_000
        ) as bus:
            await _publish_from_thread(
                bus, 30_000, lambda: sizes.append(int(bus.health()["telemetry/intake"]))
            )
            health = bus.health()
    assert max(sizes) <= 2_000
    assert health["telemetry/intake_waits"] > 0
    assert health["telemetry/intake_wait_s"] > 0
    assert health["telemetry/intake_overruns"] == 0
    published = [e for e in memory.events if isinstance(e, Health)]
    assert any(e.values["telemetry/intake_waits"] > 0 for e in published)
    assert [e.seq for e in LogReader(log.path)] == list(range(1, bus.published + 1))
    assert len(memory.events) == bus.published


async def test_memory_stays_bounded_with_a_sink_down_at_any_rate(tmp_path: Path) -> None:
    """400,000 steps at full speed with a remote sink down: resident memory grows < 64 MiB."""
    log = JsonlSink(tmp_path / "events.jsonl", "bound")
    remote = OutageSink(down_at_open=True)
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    rss: list[int] = []
    sizes: list[int] = []

    def sample() -> None:
        rss.append(process.memory_info().rss)
        sizes.append(int(bus.health()["telemetry/intake"]))

    with anyio.fail_after(240):
        async with Bus("bound", [log, remote], health_interval=None, close_timeout=60) as bus:
            await _publish_from_thread(bus, 400_000, sample)
    growth = (max(rss) - before) / MIB
    print(
        f"\n[intake] 400k steps, wandb-like sink down: RSS growth {growth:.1f} MiB, "
        f"intake peak {max(sizes):,} events"
    )
    assert growth < 64
    assert max(sizes) <= INTAKE_CAPACITY
    assert bus.report is not None
    sinks = {s.name: s for s in bus.report.sinks}
    assert sinks["jsonl"].delivered == bus.published
    assert sinks["remote"].pending == bus.published


async def test_async_publishers_wait_in_alog_and_loop_publishers_count_overruns() -> None:
    """On the loop, ``alog`` waits for room; plain ``log`` cannot wait and counts an overrun."""
    slow = Delivery(overflow="block", capacity=100, batch_size=100, max_latency=0.001)

    class Slow(MemorySink):
        async def write(self, batch: Sequence[Event]) -> None:
            await anyio.sleep(0.002)
            await super().write(batch)

    memory = Slow()
    with anyio.fail_after(60):
        async with Bus("bound", [(memory, slow)], health_interval=None, intake_capacity=300) as bus:
            worst = 0
            for step in range(3_000):
                await bus.alog({"x": 1.0}, step=step)
                worst = max(worst, int(bus.health()["telemetry/intake"]))
            assert worst <= 300
            assert bus.health()["telemetry/intake_overruns"] == 0
            for step in range(1_000):
                bus.log({"x": 2.0}, step=step)
            assert bus.health()["telemetry/intake_overruns"] > 0
    assert len(memory.of_type(Metrics)) == 4_000
