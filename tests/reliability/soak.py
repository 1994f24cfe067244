"""Soak: a PPO-like trainer publishing to JSONL + W&B + memory while W&B keeps going down.

Run it::

    python -m tests.reliability.soak --minutes 10   # the long soak: W&B down 30 s in every 2 min
    python -m tests.reliability.soak --seconds 20 --cycle 10 --down 3   # what the suite runs

The W&B backend is the fake in ``tests/fakes/wandb_server.py`` (``FakeWandbServer``),
run in a child process so that what it stores does not count in this process's
memory; the real ``wandb`` client (``sinks.wandb_sink.WandbSink``, online mode) is
pointed at it with ``online_env(fast=True)`` (1 s between retries), with the
file stream allowed ``--wandb-retries`` attempts (default: the outage's length
plus 30, so that wandb-core rides out the outage the way its default backoff does
in a long run; ``--wandb-retries 5`` is online_env's own setting, under which an
outage longer than ~6 s makes wandb-core give the stream up, and every later row
is lost without the sink noticing: see test_soak.py's xfail). Every ``--cycle`` seconds the
fake refuses connections (``fault = "refuse"``) for the last ``--down`` seconds of
the cycle; the run ends with one more up phase of ``--tail`` seconds, then closes.

The loop publishes one ``metrics`` event per episode (16 keys) every
``--interval`` seconds, an ``evaluation`` every 5 episodes, and the bus adds an
``aggregate`` every 10 episodes and a ``health`` event every 5 s. The memory sink
here is ``MemorySink`` keeping only a tally (every ``seq`` checked, in order,
none stored), so that resident memory measures the pipeline, not what a
memory sink keeps by design.

Checked at the end (exit status 0 when all hold, 1 otherwise; one JSON object
of figures on standard output):

- the JSON Lines log reads back with no problem and every ``seq`` 1..N;
- the memory sink got every event, in order;
- the fake holds, for every axis and step, exactly one history row, with every
  value of every scalar event of that step, and no ``_seq`` twice; the run ended
  with exit code 0;
- the close met its deadline with nothing undelivered;
- resident memory: the drift per hour of a linear fit of this process's RSS
  (and wandb-core's) sampled every second after the first cycle.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUN_ID = "soak0001"
AXIS = "episode"
KEYS = (
    [f"episode/{k}" for k in ("total_reward", "steps", "roas", "ctr", "cost", "revenue")]
    + [f"losses/{k}" for k in ("policy", "value", "entropy", "approx_kl", "clip_frac")]
    + [f"rollout/{k}" for k in ("return", "advantage", "value", "length", "fps")]
)


# -- the fake W&B server, in a child process --

SERVE = "serve"


def _serve() -> None:
    """Child: run the fake, answer commands on stdin with one JSON line each."""
    from tests.fakes.wandb_server import FakeWandbServer

    server = FakeWandbServer().start()
    print(json.dumps({"port": server.port, "root": server.root_dir, "entity": server.entity}))
    sys.stdout.flush()
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        reply: Any = None
        if command == "fault":
            server.fault = None if arg == "none" else arg
        elif command == "history":
            reply = server.history(arg)
        elif command == "rows":
            reply = len(server.history(arg))
        elif command == "exit_code":
            reply = server.exit_code(arg)
        elif command == "errors":
            reply = server.errors
        elif command == "quit":
            break
        print(json.dumps({"reply": reply}))
        sys.stdout.flush()
    server.stop()


class FakeServerProcess:
    """The fake W&B server in a child process, driven over a pipe."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.soak", SERVE],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        hello = json.loads(self.proc.stdout.readline())
        self.port: int = hello["port"]
        self.root_dir: str = hello["root"]
        self.entity: str = hello["entity"]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()

    def ask(self, command: str) -> Any:
        with self._lock:
            assert self.proc.stdin is not None
            assert self.proc.stdout is not None
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline())["reply"]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask("quit")
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


# -- a memory sink that checks and counts instead of keeping --


def _tally_sink() -> Any:
    from sinks.memory import MemorySink

    class TallyMemorySink(MemorySink):
        """``MemorySink`` that checks every event arrives once, in order, and keeps a count."""

        def __init__(self) -> None:
            super().__init__("memory")
            self.count = 0
            self.out_of_order = 0

        async def write(self, batch: Sequence[Any]) -> None:
            for event in batch:
                if event.seq <= self._last_seq:
                    continue
                if event.seq != self._last_seq + 1:
                    self.out_of_order += 1
                self._last_seq = event.seq
                self.count += 1

    return TallyMemorySink()


# -- the run --


def _linear_drift(samples: list[tuple[float, float]]) -> float:
    """Slope of a least-squares line through (seconds, bytes), in MiB per hour."""
    if len(samples) < 3:
        return math.nan
    import numpy as np

    t = np.array([s[0] for s in samples])
    y = np.array([s[1] for s in samples])
    slope = float(np.polyfit(t, y, 1)[0])
    return slope * 3600 / 2**20


async def _soak(
    args: argparse.Namespace, server: FakeServerProcess, folder: Path
) -> dict[str, Any]:
    import anyio
    import numpy as np
    import psutil

    from sinks.jsonl import JsonlSink
    from sinks.wandb_sink import WandbOptions, WandbSink
    from telemetry.aggregate import AggregateSpec
    from telemetry.bus import Bus, RunInfo
    from telemetry.events import Evaluation
    from telemetry.sink import SinkContext

    context = SinkContext(run_id=RUN_ID, run_dir=folder, run_name="soak")
    wandb = WandbSink(context, WandbOptions(mode="online", project="soak"))
    memory = _tally_sink()
    log = JsonlSink(folder / "events.jsonl", RUN_ID)
    me = psutil.Process()
    rss: list[tuple[float, float]] = []
    core_rss: list[tuple[float, float]] = []
    outages: list[tuple[float, float]] = []
    published_down = 0
    down = False
    rng = np.random.default_rng(0)
    duration = args.seconds
    started = time.monotonic()
    bus = Bus(
        RUN_ID,
        [log, wandb, memory],
        run=RunInfo(name="soak", project="soak", config={"soak": vars(args)}),
        aggregate=AggregateSpec(every=10, axis=AXIS),
        health_interval=5.0,
        close_timeout=args.close_timeout,
    )
    async with bus:
        episode = 0
        next_sample = 0.0
        while True:
            now = time.monotonic() - started
            if now >= duration + args.tail:
                break
            in_cycle = now % args.cycle
            should_be_down = now < duration and in_cycle >= args.cycle - args.down
            if should_be_down != down:
                await anyio.to_thread.run_sync(
                    server.ask, "fault refuse" if should_be_down else "fault none"
                )
                down = should_be_down
                if down:
                    outages.append((now, math.nan))
                else:
                    outages[-1] = (outages[-1][0], now)
            values = {
                key: float(v) for key, v in zip(KEYS, rng.normal(size=len(KEYS)), strict=True)
            }
            values["episode/steps"] = 48
            bus.log(values, step=episode, axis=AXIS)
            published_down += down
            if episode % 5 == 4:
                bus.emit(
                    Evaluation,
                    step=episode,
                    axis=AXIS,
                    name="calibration",
                    values={
                        "eval/correlation": float(rng.random()),
                        "eval/mae": float(rng.random()),
                    },
                )
                published_down += down
            episode += 1
            if now >= next_sample:
                next_sample = now + 1.0
                rss.append((now, me.memory_info().rss))
                core = sum(
                    c.memory_info().rss
                    for c in me.children(recursive=True)
                    if "wandb" in " ".join(c.cmdline() or [c.name()])
                )
                if core:
                    core_rss.append((now, core))
            await anyio.sleep(args.interval)
        close_started = time.monotonic()
    close_took = time.monotonic() - close_started
    report = bus.report
    assert report is not None
    warm = min(args.cycle, duration / 3)
    return {
        "episodes": episode,
        "published": report.published,
        "published_while_down": published_down,
        "outages": [(round(a, 1), round(b, 1)) for a, b in outages],
        "close_seconds": round(close_took, 2),
        "deadline_met": report.deadline_met,
        "undelivered": report.undelivered,
        "sink_errors": {s.name: s.error for s in report.sinks if s.error},
        "memory_count": memory.count,
        "memory_out_of_order": memory.out_of_order,
        "rss_mib_start": round(rss[0][1] / 2**20, 1) if rss else None,
        "rss_mib_end": round(rss[-1][1] / 2**20, 1) if rss else None,
        "rss_drift_mib_per_hour": round(_linear_drift([s for s in rss if s[0] >= warm]), 1),
        "wandb_core_rss_drift_mib_per_hour": round(
            _linear_drift([s for s in core_rss if s[0] >= warm]), 1
        ),
    }


def _check(figures: dict[str, Any], server: FakeServerProcess, folder: Path) -> list[str]:
    """Every end-of-run check; returns what failed (empty: nothing lost)."""
    from telemetry.events import SCALAR_EVENTS
    from telemetry.reader import LogReader

    failures: list[str] = []
    reader = LogReader(folder / "events.jsonl")
    events = list(reader)
    seqs = [e.seq for e in events]
    figures["log_events"] = len(events)
    if reader.problems:
        failures.append(f"log problems: {reader.problems[:5]}")
    if seqs != list(range(1, figures["published"] + 1)):
        failures.append(f"log holds {len(seqs)} events, not seq 1..{figures['published']}")
    if figures["memory_count"] != figures["published"] or figures["memory_out_of_order"]:
        failures.append(
            f"memory sink got {figures['memory_count']} of {figures['published']} "
            f"({figures['memory_out_of_order']} out of order)"
        )
    if not figures["deadline_met"] or figures["undelivered"]:
        failures.append(
            f"close: deadline met {figures['deadline_met']}, undelivered {figures['undelivered']}"
        )

    scalar = [e for e in events if isinstance(e, SCALAR_EVENTS)]
    expected: dict[tuple[str, int], dict[str, float]] = {}
    for event in scalar:
        expected.setdefault((event.axis, event.step), {}).update(event.values)
    # The run is finished: its rows are in, or arrive within moments. Stop waiting once
    # they are all there, or once none has come for 5 s (at most 60 s in all).
    deadline = time.monotonic() + 60
    rows: list[dict[str, Any]] = []
    last_change = time.monotonic()
    while time.monotonic() < deadline:
        count = server.ask(f"rows {RUN_ID}")
        if count != len(rows):
            last_change = time.monotonic()
        rows = server.ask(f"history {RUN_ID}")
        if len(rows) >= len(expected) or time.monotonic() - last_change > 5:
            break
        time.sleep(0.5)
    seen: dict[tuple[str, int], int] = {}
    seq_values = [r.get("_seq") for r in rows]
    missing_values = 0
    for row in rows:
        for axis in {a for a, _ in expected}:
            if axis in row:
                key = (axis, int(row[axis]))
                seen[key] = seen.get(key, 0) + 1
                want = expected.get(key, {})
                missing_values += sum(
                    1 for k, v in want.items() if k not in row or not _same(row[k], v)
                )
    lost = [k for k in expected if k not in seen]
    twice = [k for k, n in seen.items() if n > 1]
    figures["wandb_rows"] = len(rows)
    figures["wandb_rows_expected"] = len(expected)
    figures["wandb_steps_lost"] = len(lost)
    figures["wandb_steps_twice"] = len(twice)
    figures["wandb_values_wrong"] = missing_values
    figures["wandb_exit_code"] = server.ask(f"exit_code {RUN_ID}")
    if lost:
        failures.append(f"W&B lost {len(lost)} of {len(expected)} steps, first {sorted(lost)[:3]}")
    if twice:
        failures.append(f"W&B got {len(twice)} steps more than once, first {sorted(twice)[:3]}")
    if missing_values:
        failures.append(f"W&B rows miss or differ in {missing_values} values")
    if len([s for s in seq_values if s is not None]) != len(
        {s for s in seq_values if s is not None}
    ):
        failures.append("a _seq appears in two W&B rows")
    if figures["wandb_exit_code"] != 0:
        failures.append(f"W&B run exit code {figures['wandb_exit_code']!r}, not 0")
    errors = server.ask("errors")
    if errors:
        failures.append(f"fake server errors: {errors[:3]}")
    return failures


def _same(got: Any, want: float) -> bool:
    if isinstance(got, str):
        got = float(got)
    return bool(math.isclose(float(got), want, rel_tol=1e-9, abs_tol=1e-12))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--minutes", type=float, help="run for this many minutes (the long soak: 10)"
    )
    parser.add_argument(
        "--seconds", type=float, help="run for this many seconds (overrides --minutes)"
    )
    parser.add_argument("--cycle", type=float, default=120.0, help="seconds per outage cycle")
    parser.add_argument("--down", type=float, default=30.0, help="seconds W&B is down per cycle")
    parser.add_argument("--tail", type=float, default=10.0, help="seconds of W&B up at the end")
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between episodes")
    parser.add_argument("--close-timeout", type=float, default=60.0, help="close deadline (s)")
    parser.add_argument(
        "--wandb-retries", type=int, help="wandb-core file-stream retries (default: down + 30)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 60.0 * (args.minutes if args.minutes is not None else 10.0)

    import anyio

    from telemetry.logging import configure_logging
    from tests.fakes.wandb_server import online_env

    configure_logging()
    server = FakeServerProcess()
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    try:
        stand_in = types.SimpleNamespace(
            base_url=server.base_url, root_dir=server.root_dir, entity=server.entity
        )
        os.environ.update(online_env(stand_in, wandb_dir=folder / "wandb"))  # type: ignore[arg-type]
        retries = args.wandb_retries if args.wandb_retries is not None else int(args.down) + 30
        os.environ["WANDB__FILE_STREAM_RETRY_MAX"] = str(retries)
        args.wandb_retries = retries
        figures = anyio.run(_soak, args, server, folder)
        failures = _check(figures, server, folder)
    finally:
        server.close()
        if not args.keep:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    figures["failures"] = failures
    figures["ok"] = not failures
    figures["folder"] = str(folder)
    print(json.dumps(figures))
    return 0 if not failures else 1


if __name__ == "__main__":
    if sys.argv[1:2] == [SERVE]:
        _serve()
    else:
        sys.exit(main())
