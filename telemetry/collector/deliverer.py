"""One run's delivery in a process of its own: ``python -m telemetry.collector.deliverer
RUN_DIR [KEY=VALUE ...]``, started and watched by the collector (``Deliverers``).

A process per run, because a wandb run's end tears down wandb's service for the
whole process (``WandbSink`` calls ``wandb.teardown`` to get its file written), which
would cut off every other run the collector is delivering. The child follows the
run's central log from the sinks' durable cursors until the run's ``run_finished``
(exit 0), or until SIGTERM (sent by the collector when it stops, and by the kernel
when the collector dies: ``spawn`` starts it through the orphan guard), after which
it delivers what the log holds within ``close_timeout`` and exits 0.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import structlog

from sinks.settings import build_sinks
from telemetry.collector.delivery import deliver_run
from telemetry.collector.settings import CollectSettings, collect_config
from telemetry.config import load_config
from telemetry.logging import configure_logging
from telemetry.pump import SinkItem
from telemetry.reader import LOG_NAME, LogReader
from telemetry.sidecar.deliver import Until
from telemetry.sidecar.process import GUARD
from telemetry.sink import SinkContext

logger = structlog.get_logger("telemetry.collector")
RESTART_AFTER = 2.0
"""Seconds before a deliverer that died is started again (it resumes from its cursors)."""


_stopping = threading.Event()
"""Set by SIGTERM/SIGINT, from the first moment of ``main`` (before the sinks load)."""


async def _deliver(run_dir: Path, settings: CollectSettings) -> int:
    # The central run folder is named after its run id; its log may not exist yet.
    context = SinkContext(run_id=run_dir.name, run_dir=run_dir, run_name=run_dir.name)

    def build() -> Sequence[SinkItem]:
        pairs: list[Any] = build_sinks(settings, settings.sinks, context)
        return pairs

    until = Until(close_timeout=settings.close_timeout)
    async with anyio.create_task_group() as group:

        async def stop_on_signal() -> None:
            await anyio.to_thread.run_sync(_stopping.wait, abandon_on_cancel=True)
            until.through(_last_seq(run_dir), within=settings.close_timeout)

        group.start_soon(stop_on_signal)
        report = await deliver_run(run_dir, build, until)
        group.cancel_scope.cancel()
    missed = report.undelivered if report is not None else {}
    if missed:
        logger.warning("delivery_incomplete", run_dir=str(run_dir), undelivered=missed)
    return 0


def _last_seq(run_dir: Path) -> int:
    last = 0
    if not (run_dir / LOG_NAME).is_file():
        return last
    for event in LogReader(run_dir / LOG_NAME):
        last = event.seq
    return last


def spawn(run_dir: Path, overrides: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start the deliverer of ``run_dir`` with the collector's overrides, through the orphan
    guard: its ``PR_SET_PDEATHSIG`` is set before Python loads the sinks (a second or so in
    which a collector killed with ``kill -9`` would otherwise leave it delivering on)."""
    argv = [sys.executable, str(GUARD), sys.executable, "-m", "telemetry.collector.deliverer"]
    return subprocess.Popen([*argv, str(run_dir), *overrides], stdin=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: _stopping.set())
    configure_logging()
    settings = load_config(collect_config(), None, args[1:])
    return anyio.run(_deliver, Path(args[0]), settings)


if __name__ == "__main__":
    sys.exit(main())
