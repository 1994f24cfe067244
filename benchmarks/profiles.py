"""Profiles of the figures that miss their goals: where the time goes, every thread included.

Run: ``python benchmarks/profiles.py SCENARIO`` (``--list`` names them). The scenario
runs in a child process under py-spy, sampling only the thread that holds the GIL
(``--gil``): everything here shares one GIL, so that is where the CPU budget goes.
Prints the functions with the most samples, inclusive and self.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The repository root, not benchmarks/, first on the path: its modules must not shadow others.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

from benchmarks import sinks4  # noqa: E402
from benchmarks.common import (  # noqa: E402
    VALUES,
    delivery_times,
    devnull_text,
    isolate_wandb,
    produce,
    quiesce,
    wait_delivered,
)
from telemetry.bus import Bus  # noqa: E402
from telemetry.sink import Sink  # noqa: E402


async def jsonl(folder: Path) -> None:
    """JSON Lines alone: 3 x 300,000 steps, publish to close (throughput.jsonl_events_per_s)."""
    for i in range(3):
        sink = sinks4.jsonl(folder / str(i), f"p{i}")
        async with Bus(f"p{i}", [sink], health_interval=None) as bus:
            start = time.perf_counter()
            await produce(bus, 300_000)
        print(f"{300_000 / (time.perf_counter() - start):,.0f} events/s", file=sys.stderr)


async def hot(folder: Path) -> None:
    """bus.log alone, 20 x 10,000 calls, drained in between (hot_path.bus_log_us)."""
    async with Bus("p", [sinks4.jsonl(folder, "p")], health_interval=None) as bus:
        log = bus.log
        for block in range(20):
            for step in range(block * 10_000, (block + 1) * 10_000):
                log(VALUES, step=step, axis="step")
            await wait_delivered(bus)


async def all_sinks(folder: Path) -> None:
    """All four sinks, 3 x 20,000 steps (throughput.all_sinks.*)."""
    with devnull_text() as stream:
        sinks = sinks4.all_four(folder, "p", stream)
        async with Bus("p", sinks, health_interval=None, close_timeout=300) as bus:
            async for done in _rounds(bus):
                print({k: f"{20_000 / v:,.0f}/s" for k, v in done.items()}, file=sys.stderr)
                await quiesce()


async def tensorboard(folder: Path) -> None:
    """TensorBoard sink with the JSON Lines log, 3 x 20,000 steps (efficiency.tensorboard_*)."""
    sinks: list[Sink] = [sinks4.jsonl(folder, "p"), sinks4.tensorboard(folder)]
    async with Bus("p", sinks, health_interval=None, close_timeout=300) as bus:
        async for done in _rounds(bus):
            print(f"{20_000 / done['tensorboard']:,.0f} steps/s", file=sys.stderr)


async def _rounds(bus: Bus) -> AsyncIterator[dict[str, float]]:
    """A warm-up of 100 steps, then 3 rounds of 20,000: each sink's seconds to deliver a round."""
    await produce(bus, 100)
    await wait_delivered(bus)
    for i in range(3):
        target = bus.published + 20_000
        start = time.perf_counter()
        await produce(bus, 20_000, first_step=100 + i * 20_000)
        yield await delivery_times(bus, target, start)


SCENARIOS: dict[str, Callable[[Path], Awaitable[None]]] = {
    "jsonl": jsonl,
    "hot": hot,
    "all_sinks": all_sinks,
    "tensorboard": tensorboard,
}


def summarise(raw: Path, top: int) -> str:
    """Inclusive and self sample shares per function from py-spy's raw (collapsed) output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [
            re.sub(r" \(.*?([^/]+/[^/]+\.py):(\d+)\)", r" (\1:\2)", f) for f in stack.split(";")
        ]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def table(counter: collections.Counter[str]) -> list[str]:
        shown = [(n, c) for n, c in counter.most_common() if "importlib" not in n][:top]
        return [f"{c / total * 100:5.1f}%  {name}" for name, c in shown]

    lines = [f"{total} samples of the GIL holder (imports left out below)", "-- inclusive"]
    lines += table(inclusive)
    lines.append("-- self")
    lines += table(own)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", choices=list(SCENARIOS))
    parser.add_argument("--list", action="store_true", help="name the scenarios")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.list or not args.scenario:
        for name, func in SCENARIOS.items():
            print(f"{name:12s} {(func.__doc__ or '').strip()}")
        return 0
    with tempfile.TemporaryDirectory(prefix="rltelemetry-profile-") as work:
        folder = Path(work)
        if args.child:
            isolate_wandb(folder / "wandb-home")
            anyio.run(SCENARIOS[args.scenario], folder)
            return 0
        raw = folder / "profile.raw"
        command = [
            *("py-spy", "record", "--gil", "--rate", "1000", "--format", "raw"),
            *("--output", str(raw), "--"),
            *(sys.executable, __file__, args.scenario, "--child"),
        ]
        exe = Path(sys.executable).parent / "py-spy"
        command[0] = str(exe) if exe.exists() else "py-spy"
        subprocess.run(command, check=True, cwd=ROOT)
        print(summarise(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
