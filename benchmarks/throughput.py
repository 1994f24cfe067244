"""2. Sustained throughput: JSON Lines alone (durable), and all four sinks at once, no loss.

The producer is a fast trainer: it publishes steps of 8 scalars and yields to
the event loop every 1,000 steps. JSON Lines alone is timed from the first
publish until ``aclose`` returns (everything written and fsynced); each run
checks the close report and reads the log back. All four sinks share one bus
for every repeat (wandb starts once); each repeat times how long each sink
takes to deliver the repeat's events, and the close report must show every
sink with every event delivered.
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks import sinks4
from benchmarks.common import (
    Report,
    RssSampler,
    Sizes,
    delivery_times,
    devnull_text,
    interleave,
    produce,
    wait_delivered,
)
from benchmarks.direct import ConsoleDirect, JsonlDirect, TensorBoardDirect, WandbDirect
from telemetry.bus import Bus, CloseReport
from telemetry.events import Metrics
from telemetry.reader import LogReader

GOAL_JSONL = 250_000.0
GOAL_WITHIN = 0.9


class LossError(AssertionError):
    """A benchmark run lost events: the figures would be meaningless."""


def check_report(report: CloseReport | None, what: str) -> None:
    """Every sink delivered every published event, none failed or pending."""
    if report is None:
        raise LossError(f"{what}: the bus did not close")
    for sink in report.sinks:
        if sink.delivered != report.published or sink.failed or sink.pending:
            raise LossError(
                f"{what}: sink {sink.name} delivered {sink.delivered} of {report.published} "
                f"(failed {sink.failed}, pending {sink.pending}, error {sink.error})"
            )
    if not report.deadline_met:
        raise LossError(f"{what}: close missed its deadline")


def check_log_quick(path: Path, published: int) -> None:
    """The log has a header and one line per published event, the last one ``seq`` = published."""
    data = path.read_bytes()
    lines = data.count(b"\n")
    if lines != published + 1 or not data.endswith(b"\n"):
        raise LossError(f"{path}: {lines} lines for {published} events")
    last = data[data.rfind(b"\n", 0, len(data) - 1) + 1 :]
    if f'"seq":{published},'.encode() not in last:
        raise LossError(f"{path}: the last line is not seq {published}")


def check_log_full(path: Path, published: int, metrics: int) -> None:
    """Read the whole log back: seq 1..published without a gap, ``metrics`` metrics events."""
    reader = LogReader(path)
    seqs = []
    count = 0
    for event in reader:
        seqs.append(event.seq)
        count += isinstance(event, Metrics)
    if reader.problems or seqs != list(range(1, published + 1)) or count != metrics:
        raise LossError(
            f"{path}: read back {len(seqs)} events ({count} metrics) of {published}, "
            f"problems {reader.problems[:3]}"
        )


async def run(sizes: Sizes, report: Report, folder: Path) -> None:
    await jsonl_alone(sizes, report, folder / "jsonl")
    await all_sinks(sizes, report, folder / "all")


async def jsonl_alone(sizes: Sizes, report: Report, folder: Path) -> None:
    n = sizes.jsonl_events
    folder.mkdir(parents=True)  # noqa: ASYNC240  (set-up; nothing else runs on the loop yet)
    direct = JsonlDirect(folder / "direct.jsonl")
    repeat = 0
    growth: list[float] = []

    async def through_bus() -> dict[str, float]:
        nonlocal repeat
        repeat += 1
        rid = sinks4.run_id("jsonl")
        path = folder / f"bus-{repeat}"
        path.mkdir()
        sink = sinks4.jsonl(path, rid)
        with RssSampler() as rss:
            async with Bus(rid, [sink], health_interval=None, close_timeout=300) as bus:
                start = time.perf_counter()
                await produce(bus, n)
            elapsed = time.perf_counter() - start
        growth.append(rss.growth_mib)
        check_report(bus.report, "jsonl alone")
        check_log_quick(sink.path, bus.published)
        if repeat == 1:
            check_log_full(sink.path, bus.published, n)
        sink.path.unlink()
        return {"events_per_s": n / elapsed}

    async def by_hand() -> dict[str, float]:
        seconds = direct.steps(n)
        direct.path.unlink()
        return {"events_per_s": n / seconds}

    samples = await interleave(sizes.repeats, {"bus": through_bus, "direct": by_hand})
    report.compare(
        "throughput.jsonl_events_per_s",
        "JSON Lines alone, durable (fsync group commit 0.2 s), publish to close",
        samples["bus.events_per_s"],
        samples["direct.events_per_s"],
        "events/s",
        anchor_label=JsonlDirect.label,
        goal=f">= {GOAL_JSONL:,.0f} events/s",
        check=lambda v, r: v >= GOAL_JSONL,
        note="close report complete and log read back in every repeat",
    )
    report.compare(
        "throughput.jsonl_rss_growth_mib",
        "JSON Lines alone: peak RSS growth during a repeat (max over repeats)",
        growth,
        None,
        "MiB",
        aggregate=max,
    )


async def all_sinks(sizes: Sizes, report: Report, folder: Path) -> None:
    n = sizes.all_sinks_events
    rid = sinks4.run_id("all")
    with devnull_text() as stream:
        sinks = sinks4.all_four(folder / "bus", rid, stream)
        names = [s.name for s in sinks]
        with RssSampler() as rss:
            async with Bus(rid, sinks, health_interval=None, close_timeout=300) as bus:
                await produce(bus, 100)  # warm-up: wandb init and the TensorBoard import
                await wait_delivered(bus)
                next_step = 100
                rss_warm = rss.rss()
                wb = WandbDirect(folder / "wandb-direct")
                tb = TensorBoardDirect(folder / "tb-direct")
                js = JsonlDirect(folder / "direct.jsonl")
                co = ConsoleDirect(stream)
                for direct in (wb, tb, js, co):
                    direct.steps(100)

                async def through_bus() -> dict[str, float]:
                    nonlocal next_step
                    target = bus.published + n
                    start = time.perf_counter()
                    await produce(bus, n, first_step=next_step)
                    next_step += n
                    done = await delivery_times(bus, target, start)
                    rates = {name: n / seconds for name, seconds in done.items()}
                    rates["all"] = n / max(done.values())
                    return rates

                async def direct_calls() -> dict[str, float]:
                    m = sizes.direct_steps
                    return {
                        "wandb": m / wb.steps(m),
                        "tensorboard": m / tb.steps(m),
                        "jsonl": m / js.steps(m),
                        "console": m / co.steps(m),
                    }

                samples = await interleave(
                    sizes.repeats, {"bus": through_bus, "direct": direct_calls}, settle=sizes.settle
                )
                wb.finish()
                tb.close()
        published = bus.published
    check_report(bus.report, "all four sinks")
    check_log_full(sinks[0].path, published, 100 + n * sizes.repeats)  # type: ignore[attr-defined]
    warm_mib = (rss_warm - rss.before) / (1 << 20)
    report.extra["all_sinks_rss_after_warmup_mib"] = warm_mib

    # What a user calling the four libraries in the training loop gets: one step costs
    # the sum of the four calls (from the same repeat's direct measurements).
    combined = [
        1 / sum(1 / samples[f"direct.{name}"][i] for name in names)
        for i in range(len(samples["bus.all"]))
    ]
    report.compare(
        "throughput.all_sinks_events_per_s",
        "all four sinks at once: events/s until every sink delivered; no loss",
        samples["bus.all"],
        combined,
        "events/s",
        anchor_label="the 4 libraries called per step",
        goal="no loss (close report + log read back)",
        check=lambda v, r: True,  # reaching here means check_report and the read-back passed
    )
    labels = {
        "jsonl": JsonlDirect.label,
        "console": ConsoleDirect.label,
        "tensorboard": TensorBoardDirect.label,
        "wandb": WandbDirect.label,
    }
    for name in names:
        report.compare(
            f"throughput.all_sinks.{name}_steps_per_s",
            f"all four sinks at once: the {name} sink's steps/s, against its library alone",
            samples[f"bus.{name}"],
            samples[f"direct.{name}"],
            "steps/s",
            anchor_label=labels[name] + ", alone",
            goal=">= 0.9x direct",
            check=lambda v, r: r is not None and r >= GOAL_WITHIN,
        )
        # The same outputs by hand: a loop calling the four libraries gets each output at
        # the loop's rate, since every step pays for all four calls.
        report.compare(
            f"throughput.all_sinks.{name}_vs_four_calls",
            f"all four sinks at once: the {name} sink's steps/s, against the 4 libraries per step",
            samples[f"bus.{name}"],
            combined,
            "steps/s",
            anchor_label="the 4 libraries called per step",
            goal=">= 0.9x direct",
            check=lambda v, r: r is not None and r >= GOAL_WITHIN,
        )
    report.compare(
        "throughput.all_sinks_rss_growth_mib",
        "all four sinks: peak RSS growth over the whole run (wandb and TensorBoard loaded)",
        [rss.growth_mib],
        None,
        "MiB",
        note=f"{rss.growth_mib - warm_mib:.1f} MiB of it after the warm-up",
    )
