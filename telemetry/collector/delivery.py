"""Delivering each central log to the configured sinks, by durable cursors.

One task per run follows its central log into the sinks with
``telemetry.sidecar.deliver.deliver_log`` (the bus's own lanes fed from the file,
each sink's cursor saved after every batch under ``<run folder>/.collector/cursors``),
so a collector killed with ``kill -9`` and started again neither loses nor repeats
an event. Markers (``telemetry.collector.origin``) are the collector's bookkeeping,
not the run's: they are kept from the sinks. Where collectors share an output folder,
one delivers a run at a time (an ``flock`` on ``.collector/deliver.lock``, released when
its holder dies); the others try again every few seconds.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import structlog

from telemetry.collector.origin import is_marker
from telemetry.events import Event
from telemetry.pump import SinkItem
from telemetry.report import CloseReport
from telemetry.sidecar.deliver import Until, deliver_log
from telemetry.sink import Sink

logger = structlog.get_logger("telemetry.collector")
STATE_DIR = ".collector"
LOCK_RETRY = 2.0
"""Seconds between tries at a run another collector is delivering."""


class WithoutMarkers:
    """A sink seen through a filter that drops the collector's marker lines.

    Opening and closing are one at a time in the process (``turns``): wandb 0.31 fails
    a run's ``finish`` with ``HandleAbandonedError`` when another run of the same
    process finishes at the same moment, as two collected runs ending together do.
    """

    def __init__(self, sink: Sink, turns: anyio.Lock) -> None:
        self.inner = sink
        self.name = sink.name
        self._turns = turns

    async def open(self) -> None:
        async with self._turns:
            await self.inner.open()

    async def write(self, batch: Sequence[Event]) -> None:
        events = [e for e in batch if not is_marker(e)]
        if events:
            await self.inner.write(events)

    async def close(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            async with self._turns:
                await self.inner.close(timeout)


_turns: dict[str, anyio.Lock] = {}


def _without_markers(items: Sequence[SinkItem]) -> list[SinkItem]:
    out: list[SinkItem] = []
    for item in items:
        sink, delivery = item if isinstance(item, tuple) else (item, None)
        wrapped = WithoutMarkers(sink, _turns.setdefault(sink.name, anyio.Lock()))
        out.append((wrapped, delivery) if delivery is not None else wrapped)
    return out


def _reads_back(sink: Sink) -> bool:
    """The sink, reopened, knows what its backend holds (wandb's ``reads_back``): it is
    handed the whole log again and skips what it holds (``telemetry.sidecar.lanes.Resume``)."""
    inner = sink.inner if isinstance(sink, WithoutMarkers) else sink
    return bool(getattr(inner, "reads_back", False))


def _try_lock(run_dir: Path) -> int | None:
    """This process's lock on delivering ``run_dir``, or None while another holds it."""
    state = run_dir / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / "deliver.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


async def deliver_run(
    run_dir: Path,
    build: Callable[[], Sequence[SinkItem]],
    until: Until,
) -> CloseReport | None:
    """Deliver ``run_dir``'s central log to the sinks ``build`` makes until ``until`` says stop.

    Waits (checking every ``LOCK_RETRY`` s) while another collector delivers the run;
    None if it was told to stop before it got the run.
    """
    fd = _try_lock(run_dir)
    while fd is None:
        if until.stopped.is_set() or until.target is not None:
            return None
        with anyio.move_on_after(LOCK_RETRY):
            await until.changed.wait()
        fd = _try_lock(run_dir)
    try:
        return await deliver_log(
            run_dir,
            _without_markers(build()),
            cursors=run_dir / STATE_DIR / "cursors",
            until=until,
            keeps_steps_open=lambda sink: sink.name == "wandb",
            asks_sink=_reads_back,
        )
    finally:
        os.close(fd)
