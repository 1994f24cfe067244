"""What the write-ahead rule costs a training run: ERL with all four sinks, with and without it.

Run: ``python benchmarks/write_ahead_cost.py [--repeats 3]``. Interleaves ERL's default run
(30 generations) with all four sinks as shipped, the same with the lanes' wait for the log
switched off (``Lane._logged`` answering at once), and the memory sink alone; prints each
run's training seconds and the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

from benchmarks import sinks4  # noqa: E402
from benchmarks.common import devnull_text  # noqa: E402
from benchmarks.training import train_once  # noqa: E402
from sinks.memory import MemorySink  # noqa: E402
from telemetry import lane as lane_module  # noqa: E402
from telemetry.sink import Sink  # noqa: E402

WITH_RULE = lane_module.Lane._logged


async def _no_wait(self: lane_module.Lane, seq: int) -> bool:
    return True


async def measure(repeats: int) -> dict[str, list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="write-ahead-"))
    seconds: dict[str, list[float]] = {"with rule": [], "without rule": [], "memory only": []}
    count = 0
    with devnull_text() as stream:

        async def once(kind: str, episodes: int) -> float:
            nonlocal count
            count += 1
            path = folder / f"{count}"
            path.mkdir()
            lane_module.Lane._logged = _no_wait if kind == "without rule" else WITH_RULE  # type: ignore[method-assign]
            sinks: list[Sink] = (
                [MemorySink()]
                if kind == "memory only"
                else sinks4.all_four(path, path.name, stream)
            )
            return (await train_once("erl", episodes, path, sinks, False))["train_s"]

        for kind in seconds:  # warm-up: imports, wandb's service, torch's first kernels
            await once(kind, 1)
        for repeat in range(repeats):
            kinds: Sequence[str] = list(seconds) if repeat % 2 == 0 else list(reversed(seconds))
            for kind in kinds:
                seconds[kind].append(await once(kind, 30))
    lane_module.Lane._logged = WITH_RULE  # type: ignore[method-assign]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seconds = anyio.run(measure, args.repeats)
    for kind, values in seconds.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"{kind:>12}: median {statistics.median(values):.2f} s ({runs})")


if __name__ == "__main__":
    main()
