"""The sidecar runs at the CPU priority ``sidecar.priority`` says, and its sinks go with it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import psutil
import pytest

import main
from sinks.settings import sidecar_names
from telemetry.bus import Bus
from telemetry.config import load_config
from telemetry.sidecar.spec import STATUS_NAME
from tests.sidecar.common import _offline, run_bus, sidecar_of  # noqa: F401  the fixture

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling only")


def _policy_once_running(pid: int, status: Path) -> tuple[int, int]:
    """(scheduling policy, nice) of the sidecar ``pid`` once it writes its status (it has
    taken its priority by then), within 20 s."""
    deadline = time.monotonic() + 20
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.sched_getscheduler(pid), psutil.Process(pid).nice()


@pytest.mark.parametrize(
    ("priority", "expected"),
    [("idle", (os.SCHED_IDLE, 0)), ("low", (os.SCHED_OTHER, 19)), ("normal", (os.SCHED_OTHER, 0))],
)
async def test_the_sidecar_takes_its_priority(
    tmp_path: Path, priority: str, expected: tuple[int, int]
) -> None:
    overrides = ["sinks=[jsonl,tensorboard]", "sidecar.default=sidecar"]
    overrides.append(f"sidecar.priority={priority}")
    with anyio.fail_after(60):
        bus: Bus
        async with run_bus(tmp_path, overrides, health_interval=None) as bus:
            sidecar = sidecar_of(bus)
            while sidecar.pid is None:  # its lane opens it
                await anyio.sleep(0.02)
            pid = sidecar.pid
            status = sidecar.spec.folder / STATUS_NAME
            seen = await anyio.to_thread.run_sync(_policy_once_running, pid, status)
            bus.log({"loss": 1.0}, step=0)
    assert seen == expected
    assert bus.report is not None
    assert bus.report.undelivered == {}


def test_the_console_moves_with_the_default_unless_kept_in() -> None:
    names = ["jsonl", "console", "tensorboard", "redis"]
    config = load_config(main.run_config(), None, ["sidecar.default=sidecar"])
    assert sidecar_names(config, names) == ["console", "tensorboard"]
    kept = load_config(main.run_config(), None, ["sidecar.default=sidecar", "console.process=in"])
    assert sidecar_names(kept, names) == ["tensorboard"]


def test_auto_starts_a_sidecar_only_for_a_sink_heavier_than_the_console() -> None:
    """``sidecar.default=auto`` (the default): the console alone stays in; with wandb or
    TensorBoard beside it, the console goes with them."""
    config = load_config(main.run_config(), None, [])
    assert config.sidecar.default == "auto"
    assert sidecar_names(config, ["jsonl", "console"]) == []
    assert sidecar_names(config, ["jsonl", "console", "wandb"]) == ["console", "wandb"]
    assert sidecar_names(config, ["jsonl", "tensorboard", "redis"]) == ["tensorboard"]
    assert sidecar_names(config, ["memory", "wandb"]) == []  # no log to follow
