"""A producer process for the collector tests: a real Bus with its log and the redis sink.

``python -m tests.collector.producer URL RUN_DIR RUN_ID RANK STEPS [PAUSE]`` logs
STEPS metric steps (``losses/value`` and ``episode/reward``, step = index), a
hyperparameters event and system information, PAUSE seconds apart, and exits 0
once the bus has closed with nothing undelivered.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from sinks.jsonl import JsonlSink
from sinks.redis_sink import RedisOptions, RedisSink
from telemetry.bus import Bus, RunInfo
from telemetry.events import Hyperparameters, SystemInfo
from telemetry.pump import SinkItem


async def produce(url: str, run_dir: Path, run_id: str, rank: int, steps: int, pause: float) -> int:
    options = RedisOptions(url=url, rank=rank, timeout=1.0, connect_timeout=1.0)
    redis_sink = RedisSink(run_id, options)
    sinks: list[SinkItem] = [JsonlSink(run_dir / "events.jsonl", run_id), (redis_sink, options)]
    info = RunInfo(name=f"producer-{run_id}", project="collector-tests", config={"rank": rank})
    async with Bus(run_id, sinks, run=info, health_interval=None, close_timeout=120) as bus:
        bus.emit(Hyperparameters, values={"lr": 0.01, "rank": rank})
        bus.emit(SystemInfo, values={"host": f"rank-{rank}"})
        for step in range(steps):
            bus.log(
                {"losses/value": 1.0 / (step + 1), "episode/reward": step * 0.5},
                step=step,
                axis="episode",
            )
            await anyio.sleep(pause)
        # End once the broker holds everything: the lane catches up from the log meanwhile,
        # and a closing bus gives a sink that is down only one more try.
        with anyio.fail_after(120):
            while redis_sink.delivered_seq < bus.published:
                await anyio.sleep(0.05)
    report = bus.report
    return 0 if report is not None and not report.undelivered else 1


def main() -> None:
    url, run_dir, run_id, rank, steps = sys.argv[1:6]
    pause = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    sys.exit(anyio.run(produce, url, Path(run_dir), run_id, int(rank), int(steps), pause))


if __name__ == "__main__":
    main()
