"""Run folders, resuming a run's log, and stopping cleanly on SIGINT and SIGTERM."""

from __future__ import annotations

import contextlib
import secrets
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
from anyio import CancelScope
from omegaconf import OmegaConf

from telemetry.bus import RunInfo
from telemetry.errors import ConfigError, LogFormatError
from telemetry.reader import LOG_NAME, LogReader
from telemetry.sink import SinkContext

T = TypeVar("T")
CONFIG_NAME = "config.yaml"
STOP_SIGNAL = signal.SIGUSR1
"""Ends a run early on purpose (a sweep stopping a trial): its log ends ``stopped``."""


@dataclass(frozen=True, slots=True)
class RunFolder:
    """Where a run writes, under which id, and the last ``seq`` its log already holds."""

    path: Path
    run_id: str
    last_seq: int = 0

    @property
    def resumed(self) -> bool:
        """The folder held a log before this process started."""
        return self.last_seq > 0


def run_identity(config: Any, folder: RunFolder, *, resumed: bool) -> tuple[RunInfo, SinkContext]:
    """What the bus and the sinks are told of a ``train`` run (``config``: its run config),
    for training it, resuming it, or adding to it (``analyze --log-to``)."""
    name = config.name or f"{config.trainer}-{folder.run_id}"
    context = SinkContext(run_id=folder.run_id, run_dir=folder.path, run_name=name, resumed=resumed)
    info = RunInfo(
        name=name,
        project=config.project,
        tags=tuple(config.tags),
        group=config.group,
        notes=config.notes,
        config=OmegaConf.to_container(OmegaConf.structured(config)),  # type: ignore[arg-type]
        resumed=resumed,
    )
    return info, context


def new_run_folder(out: Path, label: str) -> RunFolder:
    """A fresh folder under ``out``; two runs started at once never share one."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"out: cannot create {out}: {exc.strerror}") from None
    while True:
        run_id = secrets.token_hex(4)
        path = out / f"{time.strftime('%Y%m%d-%H%M%S')}-{label}-{run_id}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return RunFolder(path=path, run_id=run_id)


def existing_run_folder(path: Path) -> RunFolder:
    """A run folder to resume: its run id and the last ``seq`` of its log."""
    if not (path / LOG_NAME).is_file():
        raise ConfigError(f"resume: {path} is not a run folder (no {LOG_NAME} in it)")
    reader = LogReader(path)
    last_seq = 0
    try:
        for event in reader:
            last_seq = max(last_seq, event.seq)
    except LogFormatError as exc:
        raise ConfigError(f"resume: {exc}") from None
    return RunFolder(path=path, run_id=str(reader.header.get("run_id", "")), last_seq=last_seq)


@contextlib.contextmanager
def ignored_signals() -> Iterator[None]:
    """SIGINT and SIGTERM ignored, in the main thread, then Python's defaults again: a run
    that got one closes its bus (within its deadline) undisturbed by the next, such as the
    SIGTERM that each dying thread of a killed sweep agent sends its trial."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    for signum in _ENDING:
        signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


_ENDING = (signal.SIGINT, signal.SIGTERM)


async def until_signal(work: Callable[[], Awaitable[T]]) -> tuple[T | None, int | None]:
    """Run ``work``; on SIGINT, SIGTERM or ``STOP_SIGNAL`` cancel it and return the signal.

    Signals that come while ``work`` is being cancelled (a step finishing in a worker
    thread) are swallowed, and once one came SIGINT and SIGTERM stay ignored on return:
    the caller closes its bus, then restores them (``ignored_signals``).
    """
    received: list[int] = []
    result: list[T] = []

    async def watch(signals: AsyncIterator[int], scope: CancelScope) -> None:
        async for signum in signals:
            if not received:
                received.append(int(signum))
                scope.cancel()

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, STOP_SIGNAL) as signals:
        async with anyio.create_task_group() as group:
            with anyio.CancelScope() as working:
                group.start_soon(watch, signals, working)
                result.append(await work())
            group.cancel_scope.cancel()
    if received and threading.current_thread() is threading.main_thread():
        for signum in _ENDING:  # the receiver put the defaults back: not for the next one
            signal.signal(signum, signal.SIG_IGN)
    return (result[0] if result else None), (received[0] if received else None)
