"""Figures of the wandb sink through outages of the fake W&B backend (issue 4's report).

Run: ``python tools/wandb_outage.py``. For each fault (refused at start, refused
mid-run, hanging mid-run) a bus with the JSON Lines log and the wandb sink
(online, pointed at ``tests/fakes/wandb_server.py`` on 127.0.0.1) takes a
PPO-like stream of per-episode rows while the backend is broken for a stretch,
then healthy again. Printed per fault: events produced during the outage, rows
the fake received in the end, duplicates, peak resident memory growth, and the
time from the end of the outage until the fake held every row.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402  (after the path set-up above)
import psutil  # noqa: E402

from sinks.jsonl import JsonlSink  # noqa: E402
from sinks.wandb_sink import WandbOptions, WandbSink  # noqa: E402
from telemetry.bus import Bus, RunInfo  # noqa: E402
from telemetry.sink import Sink, SinkContext  # noqa: E402
from tests.fakes.wandb_server import FakeWandbServer, online_env  # noqa: E402

STEPS, RATE, OUTAGE = 600, 50.0, 8.0  # rows, rows per second, seconds broken


async def scenario(server: FakeWandbServer, fault: str, at_start: bool) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp())
    run_id = f"{fault}-{'start' if at_start else 'mid'}-{int(time.time())}"
    context = SinkContext(run_id=run_id, run_dir=folder, run_name=run_id)
    sinks: list[Sink] = [
        JsonlSink(folder / "events.jsonl", run_id),
        WandbSink(context, WandbOptions(mode="online", init_timeout=20)),
    ]
    process = psutil.Process()
    rss0 = peak = process.memory_info().rss
    outage_steps = 0
    async with Bus(run_id, sinks, run=RunInfo(name=run_id), close_timeout=120) as bus:
        broken_from = 0 if at_start else STEPS // 3
        broken_until = None
        for step in range(STEPS):
            if step == broken_from:
                server.fault = fault
                started = time.monotonic()
            broken = server.fault is not None
            if broken and time.monotonic() - started > OUTAGE:
                server.fault = None
                broken_until = time.monotonic()
                broken = False
            outage_steps += broken
            values = {"episode/total_reward": step * 0.1, "episode/roas": 1.5}
            bus.log(values, step=step, axis="episode")
            peak = max(peak, process.memory_info().rss)
            await anyio.sleep(1 / RATE)
        if server.fault is not None:
            server.fault = None
            broken_until = time.monotonic()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = [r for r in server.history(run_id) if "episode" in r]
            # The last step's row stays open until its axis moves on or the run closes.
            if len({r["episode"] for r in rows}) >= STEPS - 1:
                break
            await anyio.sleep(0.1)
        caught_up = time.monotonic() - (broken_until or time.monotonic())
    rows = [r for r in server.history(run_id) if "episode" in r]
    counts = Counter(r["episode"] for r in rows)
    return {
        "produced_during_outage": outage_steps,
        "rows_received": len(counts),
        "duplicates": sum(c - 1 for c in counts.values()),
        "peak_rss_growth_mib": (peak - rss0) / 2**20,
        "seconds_to_catch_up": caught_up,
    }


def main() -> None:
    server = FakeWandbServer().start()
    # The client's own upload retries (days, 2-60 s apart), as users have them; only
    # init is bounded tighter and history is sent every second instead of every 15.
    os.environ.update(online_env(server, fast=False))
    os.environ.update(
        {
            "WANDB_INIT_TIMEOUT": "20",
            "WANDB__GRAPHQL_RETRY_MAX": "2",
            "WANDB__GRAPHQL_RETRY_WAIT_MIN_SECONDS": "1",
            "WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS": "1",
            "WANDB__FILE_STREAM_TRANSMIT_INTERVAL": "1",
        }
    )
    try:
        for fault, at_start in (("refuse", True), ("refuse", False), ("hang", False)):
            figures = anyio.run(scenario, server, fault, at_start)
            where = "at start" if at_start else "mid-run"
            print(f"{fault} {where}: " + ", ".join(f"{k}={v:.1f}" for k, v in figures.items()))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
