"""Benchmarks of the core pipeline: hot-path publish cost and JSON Lines throughput.

Run: ``make bench`` (or ``python benchmarks/run.py [--quick]``). Prints a table and
writes ``benchmarks/results.json``. Every figure is a median over repeats.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel

from sinks.console import ConsoleOptions, ConsoleSink
from sinks.jsonl import JsonlOptions, JsonlSink
from telemetry.bus import Bus

VALUES = {f"train/metric_{i}": 0.5 * i for i in range(8)}


async def publish_cost(publishes: int) -> float:
    """Microseconds per ``bus.log`` of 8 scalars, jsonl and console sinks attached."""
    with tempfile.TemporaryDirectory() as folder:
        sinks = [
            JsonlSink(Path(folder) / "events.jsonl", "bench"),
            ConsoleSink(ConsoleOptions(format="json", every=1000), stream=io.StringIO()),
        ]
        async with Bus("bench", sinks, health_interval=None, close_timeout=60) as bus:
            log = bus.log
            start = time.perf_counter()
            for step in range(publishes):
                log(VALUES, step=step, axis="step")
            elapsed = time.perf_counter() - start
    return elapsed / publishes * 1e6


async def jsonl_throughput(events: int) -> float:
    """Events per second from first publish until the log is closed and fsynced."""
    with tempfile.TemporaryDirectory() as folder:
        sink = JsonlSink(Path(folder) / "events.jsonl", "bench", JsonlOptions(fsync_interval=0.2))
        start = time.perf_counter()
        async with Bus("bench", [sink], health_interval=None, close_timeout=120) as bus:
            log = bus.log
            for step in range(events):
                log(VALUES, step=step, axis="step")
                if step % 5_000 == 0:
                    await anyio.lowlevel.checkpoint()
        elapsed = time.perf_counter() - start
        assert bus.report is not None
        assert bus.report.sinks[0].delivered == bus.published
    return events / elapsed


def median_of(repeats: int, bench: Callable[[], Awaitable[float]]) -> float:
    return statistics.median(anyio.run(bench) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()
    repeats, size = (3, 20_000) if args.quick else (7, 200_000)
    figures = {
        "publish_us_per_step_8_scalars": median_of(repeats, lambda: publish_cost(size)),
        "jsonl_events_per_second": median_of(repeats, lambda: jsonl_throughput(size)),
    }
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:>12,.2f}")
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "quick": args.quick,
        "repeats": repeats,
        "events_per_repeat": size,
        "figures": figures,
    }
    if not args.quick:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
