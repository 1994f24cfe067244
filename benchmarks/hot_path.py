"""1. Hot path: one synchronous ``bus.log`` of 8 scalars, four sinks attached, vs direct calls.

The bus's background work (pump, lanes, sinks) runs on the same event loop as
the publisher. The timed loop publishes ``N`` steps without yielding, so none
of that work can run inside it (the sinks' worker threads are idle: the
previous block was fully delivered); the block then waits until every sink has
delivered everything, and reports that time too (publish + full delivery).
Each block is timed in sub-blocks of 2,000 calls, back to back; the block's
figure is their median (a time slice lost to another process on this shared
machine stays out), the whole block's mean is kept as ``bus_log_block_us``.
The direct calls are timed the same way.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson

from benchmarks import sinks4
from benchmarks.common import VALUES, Report, Sizes, devnull_text, interleave, wait_delivered
from benchmarks.direct import SB3Direct, TensorBoardDirect, WandbDirect
from benchmarks.throughput import check_report
from telemetry.bus import Bus
from telemetry.events import Metrics

GOAL_RATIO = 1 / 50
GOAL_US = 3.0


def per_call_us(steps: Callable[[int], float], n: int, sub: int) -> tuple[float, float]:
    """Microseconds per call: the median over sub-blocks of ``sub`` calls, and the whole mean.

    ``steps(k)`` makes ``k`` calls back to back and returns the seconds they took. The
    sub-blocks run back to back too (nothing yields between them); their median keeps
    a time slice lost to another process on this shared machine out of the figure.
    """
    times = [steps(sub) for _ in range(max(1, n // sub))]
    per_call = [t / sub * 1e6 for t in times]
    return statistics.median(per_call), sum(times) / (sub * len(times)) * 1e6


async def run(sizes: Sizes, report: Report, folder: Path) -> None:
    n, sub = sizes.hot_calls, sizes.hot_sub
    rid = sinks4.run_id("hot")
    with devnull_text() as stream:
        sinks = sinks4.all_four(folder / "bus", rid, stream)
        async with Bus(rid, sinks, health_interval=None, close_timeout=120) as bus:
            step = 0
            for step in range(200):  # warm-up: wandb init, TensorBoard import, first files
                bus.log(VALUES, step=step, axis="step")
            await wait_delivered(bus)
            wb = WandbDirect(folder / "wandb-direct")
            tb = TensorBoardDirect(folder / "tb-direct")
            sb3 = SB3Direct(folder / "sb3")
            for direct in (wb, tb, sb3):
                direct.steps(200)
            next_step = step + 1

            def publish(count: int) -> float:
                nonlocal next_step
                log, first = bus.log, next_step
                start = time.perf_counter()
                for i in range(first, first + count):
                    log(VALUES, step=i, axis="step")
                next_step = first + count
                return time.perf_counter() - start

            async def bus_block() -> dict[str, float]:
                start = time.perf_counter()
                per_call, whole = per_call_us(publish, n, sub)
                await wait_delivered(bus)
                delivered = time.perf_counter() - start
                return {
                    "publish_us": per_call,
                    "publish_block_us": whole,
                    "delivered_us": delivered / n * 1e6,
                }

            async def run_log() -> dict[str, float]:
                return {"us": per_call_us(wb.steps, n, sub)[0]}

            async def add_scalar() -> dict[str, float]:
                return {"us": per_call_us(tb.steps, n, sub)[0]}

            async def sb3_logger() -> dict[str, float]:
                return {"us": per_call_us(sb3.steps, n, sub)[0]}

            stream_send, stream_receive = anyio.create_memory_object_stream[Any](n)
            event = Metrics(run_id=rid, seq=1, time=time.time(), step=1, axis="step", values=VALUES)

            def sends(count: int) -> float:
                send = stream_send.send_nowait
                start = time.perf_counter()
                for _ in range(count):
                    send(VALUES)
                return time.perf_counter() - start

            async def send_nowait() -> dict[str, float]:
                us = per_call_us(sends, n, sub)[0]
                for _ in range(n):
                    stream_receive.receive_nowait()
                return {"us": us}

            def encodes(count: int) -> float:
                encode = orjson.dumps
                start = time.perf_counter()
                for _ in range(count):
                    encode(event)
                return time.perf_counter() - start

            async def dumps() -> dict[str, float]:
                return {"us": per_call_us(encodes, n, sub)[0]}

            samples = await interleave(
                sizes.repeats,
                {
                    "bus": bus_block,
                    "run_log": run_log,
                    "add_scalar": add_scalar,
                    "sb3": sb3_logger,
                    "send_nowait": send_nowait,
                    "orjson": dumps,
                },
                settle=sizes.settle,
            )
            wb.finish()  # before the bus closes: the wandb sink tears wandb's service down
            tb.close()
            sb3.close()
            stream_send.close()
            stream_receive.close()
    check_report(bus.report, "hot path")

    publish_us, delivered = samples["bus.publish_us"], samples["bus.delivered_us"]
    title = "bus.log of 8 scalars, 4 sinks attached (publish only)"
    report.compare(
        "hot_path.bus_log_us",
        title,
        publish_us,
        samples["run_log.us"],
        "us/step",
        anchor_label=WandbDirect.label,
        goal=f"<= 1/50 of run.log and <= {GOAL_US:g} us",
        check=lambda v, r: r is not None and r <= GOAL_RATIO and v <= GOAL_US,
        note=(
            "median of 2,000-call sub-blocks published back to back without yielding; "
            "sinks drained before each block"
        ),
    )
    report.compare(
        "hot_path.bus_log_vs_add_scalar",
        title,
        publish_us,
        samples["add_scalar.us"],
        "us/step",
        anchor_label=TensorBoardDirect.label,
    )
    report.compare(
        "hot_path.bus_log_vs_sb3",
        title,
        publish_us,
        samples["sb3.us"],
        "us/step",
        anchor_label=SB3Direct.label,
    )
    report.compare(
        "hot_path.bus_log_block_us",
        "bus.log, 4 sinks: the whole block's mean (no sub-block median)",
        samples["bus.publish_block_us"],
        samples["run_log.us"],
        "us/step",
        anchor_label=WandbDirect.label,
    )
    report.compare(
        "hot_path.bus_log_delivered_us",
        "bus.log, 4 sinks: publish + full delivery to every sink",
        delivered,
        samples["run_log.us"],
        "us/step",
        anchor_label=WandbDirect.label,
        note="includes the sinks' work (wandb run.log per row in a worker thread)",
    )
    report.compare(
        "hot_path.bus_log_vs_send_nowait",
        title,
        publish_us,
        samples["send_nowait.us"],
        "us/step",
        anchor_label="anyio send_nowait (one item)",
    )
    report.compare(
        "hot_path.bus_log_vs_orjson",
        title,
        publish_us,
        samples["orjson.us"],
        "us/step",
        anchor_label="orjson.dumps of the Metrics event",
    )
