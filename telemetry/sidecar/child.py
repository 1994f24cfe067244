"""The sidecar process: ``python -m telemetry.sidecar RUN_DIR``.

It rebuilds the moved sinks from the run's spec, delivers the log to them
(``deliver_log``), writes their status for the training process every half
second, and stops when that process says ``through SEQ SECONDS`` on its
standard input (or closes it). Ctrl-C at the terminal is the training
process's to handle: the sidecar ignores SIGINT and is told when to stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
import orjson

from telemetry.lane import Lane
from telemetry.logging import configure_logging
from telemetry.sidecar.deliver import Until, deliver_log
from telemetry.sidecar.spec import CURSORS, STATUS_NAME, SidecarSpec

LATE = 3
"""Exit status of a sidecar whose sinks did not all close within the deadline it was given."""
STATUS_EVERY = 0.5
"""Seconds between status files."""


def main(argv: Sequence[str]) -> int:
    """Run the sidecar of the run folder ``argv[0]``; exit status 0 once it stopped, ``LATE``
    if some sink missed the deadline."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging()
    if len(argv) != 1:
        print("usage: python -m telemetry.sidecar RUN_DIR", file=sys.stderr)
        return 2
    spec = SidecarSpec.load(Path(argv[0]))
    lower_priority(spec.priority)
    met = anyio.run(_run, spec)
    # Its sinks are closed and its cursors saved: done. Client libraries' own threads
    # (wandb's analytics, a stdin read in flight) must not keep the process on.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if met else LATE)


def lower_priority(priority: str) -> None:
    """Take the CPU priority ``priority`` (``sidecar.priority``) before any thread or child
    process starts: they inherit it (wandb's service too)."""
    if priority == "normal":
        return
    if priority == "idle" and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
    with contextlib.suppress(OSError):
        os.nice(19)


async def _run(spec: SidecarSpec) -> bool:
    """Deliver until told to stop; True if every sink closed within the deadline."""
    context = spec.context
    sinks = [moved.sink(context) for moved in spec.sinks]
    holds = {moved.name for moved in spec.sinks if moved.keeps_steps_open}
    asks = {moved.name for moved in spec.sinks if moved.asks_sink}
    until = Until(at_run_finished=False)
    lanes: list[Sequence[Lane]] = []
    async with anyio.create_task_group() as group:
        group.start_soon(_commands, until)
        group.start_soon(_status, spec, lanes)
        report = await deliver_log(
            context.run_dir,
            sinks,
            cursors=spec.folder / CURSORS,
            until=until,
            first_seq=spec.first_seq,
            keeps_steps_open=lambda sink: sink.name in holds,
            asks_sink=lambda sink: sink.name in asks,
            on_lanes=lanes.append,
        )
        if lanes:
            _write_status(spec, lanes[0])
        group.cancel_scope.cancel()
    return report.deadline_met


async def _commands(until: Until) -> None:
    """``through SEQ SECONDS`` lines from the training process; its end stops at once."""
    while True:
        line = await anyio.to_thread.run_sync(sys.stdin.buffer.readline, abandon_on_cancel=True)
        if not line:
            until.now()  # the training process is gone
            return
        words = line.split()
        if len(words) == 3 and words[0] == b"through":
            until.through(int(words[1]), within=float(words[2]))


async def _status(spec: SidecarSpec, lanes: list[Sequence[Lane]]) -> None:
    while True:
        await anyio.sleep(STATUS_EVERY)
        if lanes:
            _write_status(spec, lanes[0])


def _write_status(spec: SidecarSpec, lanes: Sequence[Lane]) -> None:
    status = {
        lane.name: {
            "seq": lane.last_seq,
            "mode": lane.mode.value,
            "queued": lane.counts.queued,
            "spilled": lane.counts.spilled,
            "isolated": lane.isolated,
            "error": lane.error,
        }
        for lane in lanes
    }
    path = spec.folder / STATUS_NAME
    tmp = path.with_name(f".{STATUS_NAME}.tmp")
    try:
        tmp.write_bytes(orjson.dumps(status))
        os.replace(tmp, path)
    except OSError:
        pass  # the next one may get through; the cursors are what counts
