"""Delivering a run's log to sinks by the bus's own lanes, from durable cursors.

What a sidecar runs for the sinks moved out of the training process, and what
a collector runs for each central run log: the log is followed as it grows
(``telemetry.sidecar.follow``), each sink gets a lane as on the bus (batching,
retries, circuit breaker, isolation, falling behind onto the log), and each
lane saves its sink's cursor after every batch it settles, so a process killed
with ``kill -9`` and started again resumes with nothing lost or sent twice
(sinks skip a ``seq`` they hold).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio

from telemetry.lane import Lane
from telemetry.progress import Progress
from telemetry.pump import SinkItem, _guarded
from telemetry.reader import LOG_NAME
from telemetry.report import CloseReport, close_report
from telemetry.sidecar.follow import FollowedLog, Follower, Until
from telemetry.sidecar.lanes import Resume, cursor_lane, save_cursor
from telemetry.sink import Delivery, Sink

__all__ = ["Until", "deliver_log"]

KeepsStepsOpen = Callable[[Sink], bool]
"""Whether a sink holds each axis's last step until the next arrives (see ``Resume``)."""
AsksSink = Callable[[Sink], bool]
"""Whether a sink, reopened, knows what its backend holds (wandb online: its run's summary):
then it is handed everything since ``first_seq`` and skips what it holds (see ``Resume``)."""


async def deliver_log(
    run_dir: Path,
    sinks: Sequence[SinkItem],
    *,
    cursors: Path,
    until: Until,
    first_seq: int = 0,
    keeps_steps_open: KeepsStepsOpen = lambda sink: False,
    asks_sink: AsksSink = lambda sink: False,
    on_lanes: Callable[[Sequence[Lane]], None] | None = None,
) -> CloseReport:
    """Deliver the log of ``run_dir`` to ``sinks`` from their cursors in ``cursors`` until
    ``until`` says stop; returns each sink's counts (for events after ``first_seq``).

    ``first_seq``: the ``seq`` the events counted start after (the training bus's
    ``first_seq``); a sink with no saved cursor starts there. ``on_lanes`` is
    handed the lanes once built (a status writer reads their counts).
    """
    log = FollowedLog(run_dir / LOG_NAME)
    progress = Progress(first_seq, has_log=True)
    lanes = _lanes(sinks, progress, log, cursors, first_seq, keeps_steps_open, asks_sink)
    if on_lanes is not None:
        on_lanes(lanes)
    after = min((lane.last_seq for lane in lanes), default=first_seq)
    progress.logged = progress.dispatched = after
    follower = Follower(log, lanes, progress, until, after=after)
    progress.start()
    deadline_met = True
    async with anyio.create_task_group() as group:
        done = anyio.Event()
        group.start_soon(_run_all, follower, lanes, done)
        deadline_met = await _wait(until, progress, done)
        group.cancel_scope.cancel()
    for lane in lanes:
        save_cursor(lane)
    published = max(follower.last_seq, until.target or 0) - first_seq
    return close_report(max(0, published), lanes, deadline_met)


def _lanes(
    sinks: Sequence[SinkItem],
    progress: Progress,
    log: FollowedLog,
    cursors: Path,
    first_seq: int,
    keeps_steps_open: KeepsStepsOpen,
    asks_sink: AsksSink,
) -> list[Lane]:
    """One lane per sink, each started from its saved cursor (a few small files read)."""
    cursors.mkdir(parents=True, exist_ok=True)
    lanes: list[Lane] = []
    for item in sinks:
        sink, delivery = item if isinstance(item, tuple) else (item, Delivery())
        delivery.validate(sink.name)
        resume = Resume(
            cursors,
            sink.name,
            first_seq,
            keeps_steps_open=keeps_steps_open(sink),
            asks_sink=asks_sink(sink),
        )
        lanes.append(cursor_lane(sink, delivery, progress, log, resume))
    return lanes


async def _run_all(follower: Follower, lanes: Sequence[Lane], done: anyio.Event) -> None:
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_guarded, follower.run)
            for lane in lanes:
                group.start_soon(_guarded, lane.run)
    finally:
        done.set()


async def _wait(until: Until, progress: Progress, done: anyio.Event) -> bool:
    """Until every lane has ended, or ``until.now()``; past a stop's close deadline, False."""
    async with anyio.create_task_group() as group:

        async def stop_now() -> None:
            await until.stopped.wait()
            group.cancel_scope.cancel()

        group.start_soon(stop_now)
        while not done.is_set() and not until.stopped.is_set():
            if until.target is not None or progress.pump_done:
                # The end is known: the sinks close within what is left of the deadline.
                if not progress.close_by:
                    progress.close_by = time.monotonic() + until.close_timeout
                with anyio.move_on_after(progress.close_by - time.monotonic()):
                    await done.wait()
                group.cancel_scope.cancel()
                return done.is_set()
            with anyio.move_on_after(0.5):
                await until.changed.wait()
        group.cancel_scope.cancel()
    return done.is_set()
