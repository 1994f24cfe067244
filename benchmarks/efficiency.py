"""3. Sink efficiency: TensorBoard and wandb sinks (each alone with the JSON Lines log) vs direct.

Steps per second through the bus: from the first publish of a repeat until the
sink has delivered all of that repeat's steps (the TensorBoard sink hands one
``Summary`` per step to the writer's queue; the wandb sink calls ``run.log``
once per row). Direct: 8 ``add_scalar`` calls per step; one ``run.log`` per step.
Both buses stay open across repeats, so wandb's start-up is paid once, as in a run.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks import sinks4
from benchmarks.common import Report, Sizes, delivery_times, interleave, produce, wait_delivered
from benchmarks.direct import TensorBoardDirect, WandbDirect
from benchmarks.throughput import check_report
from telemetry.bus import Bus

GOAL_TB = 5.0
GOAL_WANDB = 0.9


async def run(sizes: Sizes, report: Report, folder: Path) -> None:
    n, m = sizes.sink_events, sizes.direct_steps
    tb_id, wb_id = sinks4.run_id("tb"), sinks4.run_id("wb")
    tb_dir, wb_dir = folder / "tb-bus", folder / "wb-bus"
    tb_bus = Bus(
        tb_id,
        [sinks4.jsonl(tb_dir, tb_id), sinks4.tensorboard(tb_dir)],
        health_interval=None,
        close_timeout=300,
    )
    wb_bus = Bus(
        wb_id,
        [sinks4.jsonl(wb_dir, wb_id), sinks4.wandb(wb_dir, wb_id)],
        health_interval=None,
        close_timeout=300,
    )
    async with tb_bus, wb_bus:
        for bus in (tb_bus, wb_bus):
            await produce(bus, 100)
            await wait_delivered(bus)
        tb = TensorBoardDirect(folder / "tb-direct")
        wb = WandbDirect(folder / "wb-direct")
        tb.steps(100)
        wb.steps(100)
        next_step = {"tensorboard": 100, "wandb": 100}

        async def through(bus: Bus, name: str) -> dict[str, float]:
            target = bus.published + n
            start = time.perf_counter()
            await produce(bus, n, first_step=next_step[name])
            next_step[name] += n
            done = await delivery_times(bus, target, start)
            return {"steps_per_s": n / done[name], "jsonl_steps_per_s": n / done["jsonl"]}

        async def tb_sink() -> dict[str, float]:
            return await through(tb_bus, "tensorboard")

        async def wb_sink() -> dict[str, float]:
            return await through(wb_bus, "wandb")

        async def tb_direct() -> dict[str, float]:
            return {"steps_per_s": m / tb.steps(m)}

        async def wb_direct() -> dict[str, float]:
            return {"steps_per_s": m / wb.steps(m)}

        samples = await interleave(
            sizes.repeats,
            {
                "tb_sink": tb_sink,
                "tb_direct": tb_direct,
                "wb_sink": wb_sink,
                "wb_direct": wb_direct,
            },
            settle=sizes.settle,
        )
        wb.finish()
        tb.close()
    check_report(tb_bus.report, "tensorboard + jsonl")
    check_report(wb_bus.report, "wandb + jsonl")
    report.compare(
        "efficiency.tensorboard_steps_per_s",
        "TensorBoard sink (with the JSONL log): steps/s of 8 scalars",
        samples["tb_sink.steps_per_s"],
        samples["tb_direct.steps_per_s"],
        "steps/s",
        anchor_label=TensorBoardDirect.label,
        goal=f">= {GOAL_TB:g}x direct",
        check=lambda v, r: r is not None and r >= GOAL_TB,
    )
    report.compare(
        "efficiency.wandb_steps_per_s",
        "wandb sink (with the JSONL log): steps/s of 8 scalars",
        samples["wb_sink.steps_per_s"],
        samples["wb_direct.steps_per_s"],
        "steps/s",
        anchor_label=WandbDirect.label,
        goal=">= 0.9x direct",
        check=lambda v, r: r is not None and r >= GOAL_WANDB,
    )
