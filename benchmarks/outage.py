"""6. Outage: wandb refusing connections while a run publishes; and the close drain of the log.

Resident memory: a child process (clean memory, its own wandb service) starts
the fake W&B server of ``tests/fakes/wandb_server.py`` with ``fault="refuse"``
(nothing listens on its port), points wandb at it in online mode with
``online_env``, and publishes 1,000,000 steps of 8 scalars through a bus with
the JSON Lines log and the wandb sink, yielding every 1,000 steps. Measured:
the child's RSS before publishing (wandb imported, bus open), its peak while
publishing and closing (sampled every 10 ms), and after. Two producers:

- ``paced``: also awaits ``bus.drain()`` every 10,000 steps, so the trainer
  never runs ahead of the durable log; what grows is what the outage holds;
- ``unpaced``: never waits; the intake (unbounded by design) also holds
  whatever the log has not taken yet.

Close drain (this process): 100,000 steps published without yielding into a bus
with the JSON Lines log alone, then ``aclose`` timed; anchor: the same lines
written and fsynced by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from benchmarks import sinks4
from benchmarks.common import MIB, VALUES, Report, RssSampler, Sizes, interleave
from benchmarks.direct import JsonlDirect
from telemetry.bus import Bus
from telemetry.intake import INTAKE_CAPACITY

ROOT = Path(__file__).resolve().parent.parent
GOAL_RSS_MIB = 64.0
GOAL_DRAIN_S = 2.0


async def run(sizes: Sizes, report: Report, folder: Path) -> None:
    modes = ("paced", "unpaced")
    if sizes.outage_events >= 100_000:  # one at a time: neither may disturb the other's figures
        results = {mode: child(mode, sizes.outage_events, folder).result() for mode in modes}
    else:  # quick mode: both at once
        running = {mode: child(mode, sizes.outage_events, folder) for mode in modes}
        results = {mode: run.result() for mode, run in running.items()}
    report.extra["outage"] = results
    paced, unpaced = results["paced"], results["unpaced"]
    for mode, result in results.items():
        if not result["jsonl_complete"]:
            raise AssertionError(f"outage ({mode}): the JSON Lines log lost events: {result}")
    events = sizes.outage_events
    report.compare(
        "outage.rss_growth_mib",
        f"wandb refusing connections, {events:,} steps published (paced by bus.drain): "
        "peak RSS growth",
        [paced["rss_growth_mib"]],
        None,
        "MiB",
        goal=f"<= {GOAL_RSS_MIB:g} MiB",
        check=lambda v, r: v <= GOAL_RSS_MIB,
        note=(
            f"RSS before {paced['rss_before_mib']:.0f}, peak {paced['rss_peak_mib']:.0f}, "
            f"after {paced['rss_after_mib']:.0f} MiB; wandb pending {paced['wandb_pending']:,}, "
            f"spilled {paced['wandb_spilled']:,}; wandb-core {paced['core_rss_mib']:.0f} MiB"
        ),
    )
    report.compare(
        "outage.rss_growth_unpaced_mib",
        f"wandb refusing connections, {events:,} steps published as fast as possible "
        "from a worker thread: peak RSS growth",
        [unpaced["rss_growth_mib"]],
        None,
        "MiB",
        goal=f"<= {GOAL_RSS_MIB:g} MiB",
        check=lambda v, r: v <= GOAL_RSS_MIB,
        note=(
            f"intake peaked at {unpaced['intake_peak']:,} events (capacity "
            f"{INTAKE_CAPACITY:,}; the producer waited for room); "
            f"RSS after close {unpaced['rss_after_mib'] - unpaced['rss_before_mib']:+.0f} MiB"
        ),
    )
    report.compare(
        "outage.publish_s",
        f"wandb refusing connections: seconds to publish {events:,} steps and close (paced)",
        [paced["seconds"]],
        None,
        "s",
    )
    await close_drain(sizes, report, folder)


class Child:
    """The outage run in a fresh interpreter (clean memory, its own wandb service)."""

    def __init__(self, mode: str, events: int, folder: Path) -> None:
        self.mode = mode
        self.out = folder / f"outage-{mode}.json"
        command = [
            sys.executable,
            "-m",
            "benchmarks.outage",
            "--child",
            mode,
            "--events",
            str(events),
            "--out",
            str(self.out),
            "--folder",
            str(folder / mode),
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def result(self, timeout: float = 600) -> dict[str, Any]:
        """Wait for the child; its measurements."""
        try:
            _, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        code = self.process.returncode
        if code != 0 or not self.out.exists():
            raise RuntimeError(f"outage child ({self.mode}) failed ({code}):\n{stderr[-3000:]}")
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result


def child(mode: str, events: int, folder: Path) -> Child:
    """Start the outage run of ``mode`` in a child process."""
    return Child(mode, events, folder)


async def close_drain(sizes: Sizes, report: Report, folder: Path) -> None:
    n = sizes.drain_events
    direct = JsonlDirect(folder / "drain-direct.jsonl")
    repeat = 0

    async def through_bus() -> dict[str, float]:
        nonlocal repeat
        repeat += 1
        rid = sinks4.run_id("drain")
        path = folder / f"drain-{repeat}"
        path.mkdir()
        sink = sinks4.jsonl(path, rid)
        async with Bus(rid, [sink], health_interval=None, close_timeout=60) as bus:
            log = bus.log
            for step in range(n):
                log(VALUES, step=step, axis="step")
            start = time.perf_counter()
            report_ = await bus.aclose()
            seconds = time.perf_counter() - start
        if report_.undelivered or not report_.deadline_met:
            raise AssertionError(f"close drain lost events: {report_}")
        sink.path.unlink()
        return {"s": seconds}

    async def by_hand() -> dict[str, float]:
        seconds = direct.steps(n)
        direct.path.unlink()
        return {"s": seconds}

    samples = await interleave(sizes.repeats, {"bus": through_bus, "direct": by_hand})
    report.compare(
        "outage.close_drain_s",
        f"aclose draining {n:,} queued steps into the JSON Lines log (written and fsynced)",
        samples["bus.s"],
        samples["direct.s"],
        "s",
        anchor_label=f"{JsonlDirect.label}, same lines",
        goal=f"< {GOAL_DRAIN_S:g} s",
        check=lambda v, r: v < GOAL_DRAIN_S,
    )


# -- the child process --


async def outage_child(mode: str, events: int, folder: Path) -> dict[str, Any]:
    import psutil

    from tests.fakes.wandb_server import FakeWandbServer, online_env

    server = FakeWandbServer()
    server.fault = "refuse"  # set before start: the port is kept, nothing listens on it
    server.start()
    try:
        env = online_env(server, wandb_dir=folder / "wandb-home")
        for key in [k for k in os.environ if k.startswith("WANDB_")]:
            del os.environ[key]
        os.environ.update(env)
        import wandb  # noqa: F401  (imported before the baseline, as a run's sink would have)

        from sinks.wandb_sink import WandbOptions, WandbSink
        from telemetry.sink import SinkContext

        rid = sinks4.run_id("outage")
        context = SinkContext(run_id=rid, run_dir=folder, run_name=rid)
        wandb_sink = WandbSink(context, WandbOptions(mode="online", dir=str(folder)))
        log_sink = sinks4.jsonl(folder, rid)
        intake_peak = 0
        queued_peak = 0
        sampler = RssSampler()
        async with Bus(rid, [log_sink, wandb_sink], health_interval=None, close_timeout=60) as bus:
            await anyio.sleep(0.5)  # the wandb lane opens (imports) and makes its first attempt
            lane = next(c for c in bus.lanes if c.name == "wandb")
            start = time.perf_counter()
            sampler.__enter__()
            log = bus.log
            if mode == "paced":
                for first in range(0, events, 1_000):
                    for step in range(first, min(events, first + 1_000)):
                        log(VALUES, step=step, axis="step")
                    await anyio.lowlevel.checkpoint()
                    intake_peak = max(intake_peak, int(bus.health()["telemetry/intake"]))
                    queued_peak = max(queued_peak, lane.counts.queued)
                    if first % 10_000 == 0:
                        await bus.drain()
            else:  # a trainer's worker thread, as fast as it can: the bounded intake paces it

                def publish() -> None:
                    for step in range(events):
                        log(VALUES, step=step, axis="step")

                async with anyio.create_task_group() as group:
                    group.start_soon(anyio.to_thread.run_sync, publish)
                    while bus.published < events:
                        intake_peak = max(intake_peak, int(bus.health()["telemetry/intake"]))
                        queued_peak = max(queued_peak, lane.counts.queued)
                        await anyio.sleep(0.005)
            published = bus.published
        seconds = time.perf_counter() - start
        sampler.__exit__(None, None, None)
        assert bus.report is not None
        sinks = {s.name: s for s in bus.report.sinks}
        core = 0
        for proc in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                core += proc.memory_info().rss
        lines = log_sink.path.read_bytes().count(b"\n")
        return {
            "mode": mode,
            "events": events,
            "published": published,
            "seconds": seconds,
            "rss_before_mib": sampler.before / MIB,
            "rss_peak_mib": sampler.peak / MIB,
            "rss_after_mib": sampler.after / MIB,
            "rss_growth_mib": sampler.growth_mib,
            "core_rss_mib": core / MIB,
            "intake_peak": intake_peak,
            "wandb_queued_peak": queued_peak,
            "wandb_delivered": sinks["wandb"].delivered,
            "wandb_pending": sinks["wandb"].pending,
            "wandb_spilled": lane.counts.spilled,
            "wandb_error": sinks["wandb"].error,
            "jsonl_delivered": sinks["jsonl"].delivered,
            "jsonl_complete": sinks["jsonl"].delivered == bus.report.published
            and lines == bus.report.published + 1,
            "deadline_met": bus.report.deadline_met,
        }
    finally:
        server.stop()


def child_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["paced", "unpaced"], required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rltelemetry-outage-") as scratch:
        folder = args.folder or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        result = anyio.run(outage_child, args.child, args.events, folder)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
