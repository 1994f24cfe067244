"""5. Scaling: hot-path cost and throughput as sinks, metrics per event and publishing threads grow.

- sinks: the JSON Lines log plus ``k - 1`` counting sinks, k = 1, 2, 4, 8. A counting
  sink drops each batch once it has counted it, as the real sinks do once written
  (a memory sink keeps every event; each lane builds its own events, so k memory
  sinks would measure k copies of the run in memory);
- metrics per event: 1, 10, 100, 1000 scalars, JSON Lines log alone;
- publishing threads: 1, 2, 4, 8 threads calling ``bus.log`` at once, JSON Lines log alone.

Hot path: microseconds per ``bus.log`` of the timed publishing loop (the event
loop is not running then: threads are joined before the loop goes on), sinks
drained before each block. Throughput: events per second from the first publish
until every sink has delivered them, the producer yielding every 1,000 events
(threads publish while the loop runs). All buses of one series stay open
across its repeats, which interleave the series' points.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from benchmarks import sinks4
from benchmarks.common import Block, Report, Sizes, interleave, produce, wait_delivered
from benchmarks.figures import SCALING
from telemetry.bus import Bus
from telemetry.events import Event
from telemetry.sink import Sink

SINKS, METRICS, THREADS = SCALING["sinks"], SCALING["metrics"], SCALING["threads"]


class CountingSink:
    """A sink that counts what it is given and keeps nothing."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    async def open(self) -> None:
        pass

    async def write(self, batch: Sequence[Event]) -> None:
        self.count += len(batch)

    async def close(self, timeout: float) -> None:
        pass


def metrics(count: int) -> dict[str, float]:
    return {f"train/metric_{i:04d}": 0.5 * i + 0.125 for i in range(count)}


def publish_in_threads(
    bus: Bus, threads: int, count: int, first: int, values: Mapping[str, float]
) -> None:
    """``count`` publishes split over ``threads`` threads, started together; blocks until done."""
    per = count // threads
    barrier = threading.Barrier(threads)

    def worker(index: int) -> None:
        log = bus.log
        start = first + index * per
        barrier.wait()
        for step in range(start, start + per):
            log(values, step=step, axis="step")

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


@dataclass(frozen=True)
class Spec:
    """What one point of a series publishes, and through which sinks."""

    sinks: list[Sink]
    values: Mapping[str, float]
    hot_calls: int
    flow_calls: int
    """Multiples of 1,000 (the producer's yield and the lanes' batch size), so no partial
    batch waits ``max_latency`` at the end; threads publish at any moment, so theirs are long."""
    threads: int = 1


class Point:
    """One point of a series: its bus, values and publishing threads."""

    def __init__(self, bus: Bus, spec: Spec) -> None:
        self.bus = bus
        self.values = spec.values
        self.hot_calls = spec.hot_calls
        self.flow_calls = spec.flow_calls
        self.threads = spec.threads
        self.next_step = 0

    async def hot(self) -> dict[str, float]:
        n = (self.hot_calls // self.threads) * self.threads
        first = self.next_step
        self.next_step += n
        start = time.perf_counter()
        if self.threads == 1:
            log, values = self.bus.log, self.values
            for step in range(first, first + n):
                log(values, step=step, axis="step")
        else:
            publish_in_threads(self.bus, self.threads, n, first, self.values)
        elapsed = time.perf_counter() - start
        await wait_delivered(self.bus)
        return {"us": elapsed / n * 1e6}

    async def flow(self) -> dict[str, float]:
        n = (self.flow_calls // self.threads) * self.threads
        first = self.next_step
        self.next_step += n
        start = time.perf_counter()
        if self.threads == 1:
            await produce(self.bus, n, first_step=first, values=self.values)
        else:
            await anyio.to_thread.run_sync(
                publish_in_threads, self.bus, self.threads, n, first, self.values
            )
        await wait_delivered(self.bus)
        elapsed = time.perf_counter() - start
        return {"events_per_s": n / elapsed}


async def series(
    sizes: Sizes,
    report: Report,
    folder: Path,
    name: str,
    points: tuple[int, ...],
    make: Callable[[int, Path], Spec],
) -> dict[str, Any]:
    state: dict[int, Point] = {}
    async with contextlib.AsyncExitStack() as stack:
        for x in points:
            path = folder / f"{name}-{x}"
            path.mkdir(parents=True)
            spec = make(x, path)
            bus = Bus(path.name, spec.sinks, health_interval=None, close_timeout=300)
            await stack.enter_async_context(bus)
            state[x] = Point(bus, spec)
            await produce(bus, 100, values=spec.values)  # warm-up
            state[x].next_step = 100
            await wait_delivered(bus)
        blocks: dict[str, Block] = {}
        for x, point in state.items():
            blocks[f"hot{x}"] = point.hot
            blocks[f"flow{x}"] = point.flow
        samples = await interleave(sizes.scaling_repeats, blocks)
    out: dict[str, Any] = {"x": list(points), "hot_us": [], "events_per_s": []}
    for x in points:
        hot = report.compare(
            f"scaling.{name}.{x}.hot_us",
            f"bus.log cost, {name} = {x}",
            samples[f"hot{x}.us"],
            None,
            "us/call",
        )
        flow = report.compare(
            f"scaling.{name}.{x}.events_per_s",
            f"throughput until delivered, {name} = {x}",
            samples[f"flow{x}.events_per_s"],
            None,
            "events/s",
        )
        out["hot_us"].append(hot.value)
        out["events_per_s"].append(flow.value)
    return out


async def run(sizes: Sizes, report: Report, folder: Path) -> None:
    calls = sizes.scaling_calls
    flow = 3 * calls

    def by_sinks(k: int, path: Path) -> Spec:
        sinks: list[Sink] = [sinks4.jsonl(path, path.name)]
        sinks += [CountingSink(f"count-{i}") for i in range(1, k)]
        return Spec(sinks, metrics(8), calls, flow)

    def by_metrics(m: int, path: Path) -> Spec:
        # About the same number of scalars per block from 10 metrics on, in whole thousands.
        scale = max(1, m // 10)
        hot = max(calls // scale, 100)
        events = max(flow // scale, 100)
        if events >= 1000:
            events -= events % 1000
        return Spec([sinks4.jsonl(path, path.name)], metrics(m), hot, events)

    def by_threads(t: int, path: Path) -> Spec:
        return Spec([sinks4.jsonl(path, path.name)], metrics(8), calls, 5 * flow // 3, threads=t)

    results = {
        "sinks": await series(sizes, report, folder, "sinks", SINKS, by_sinks),
        "metrics": await series(sizes, report, folder, "metrics", METRICS, by_metrics),
        "threads": await series(sizes, report, folder, "threads", THREADS, by_threads),
    }
    report.extra["scaling"] = results
