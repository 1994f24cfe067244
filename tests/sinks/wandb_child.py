"""A training process whose wandb sink is killed in the tests (``test_wandb_resume``).

``python -m tests.sinks.wandb_child RUN_DIR [MODE]`` (wandb offline, or MODE)
publishes a first part (an ``eval`` step, hyperparameters, ``STEPS`` steps with
an alert after the tenth and one after the last: enough for wandb's service to
write most of it out of its buffer), waits until wandb was handed all of it,
prints ``first``; on a line from stdin publishes a second part (``MORE`` steps),
waits until wandb was handed it, prints ``second`` and waits to be killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from sinks.jsonl import JsonlSink
from sinks.wandb_sink import WandbOptions, WandbSink
from telemetry.bus import Bus, RunInfo
from telemetry.events import Alert, Hyperparameters
from telemetry.sink import SinkContext

RUN_ID = "wb-killed"
STEPS = 2000
MORE = 40


async def _handed(bus: Bus, sink: WandbSink) -> None:
    with anyio.fail_after(60):
        while sink.delivered_seq < bus.published:
            await anyio.sleep(0.02)


def episode(bus: Bus, step: int) -> None:
    bus.log({"losses/value": 1.0 / (step + 1), "episode/reward": step * 0.5}, step=step)


async def main(run_dir: Path, mode: str) -> None:
    context = SinkContext(run_id=RUN_ID, run_dir=run_dir, run_name="killed")
    sink = WandbSink(context, WandbOptions(mode=mode, max_latency=0.01))
    sinks = [JsonlSink(run_dir / "events.jsonl", RUN_ID), sink]
    info = RunInfo(name="killed", project="tests")
    async with Bus(RUN_ID, sinks, run=info, health_interval=None) as bus:
        bus.log({"eval/score": 7.0}, step=0, axis="eval")  # its one row is never closed
        bus.emit(Hyperparameters, values={"lr": 0.01})
        for step in range(STEPS):
            episode(bus, step)
            if step == 10:
                bus.emit(Alert, title="early")
        bus.emit(Alert, title="late")
        await _handed(bus, sink)
        print("first", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        for step in range(STEPS, STEPS + MORE):
            episode(bus, step)
        await _handed(bus, sink)
        print("second", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "offline")
