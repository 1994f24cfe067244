"""Closing with sinks in a sidecar: on time with a hung sink, its replay line, console output."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from sinks.registry import SinkSpec, register_sink
from telemetry.events import Health
from telemetry.reader import LogReader
from tests.sidecar import hanging
from tests.sidecar.common import run_bus

register_sink(hanging.NAME, SinkSpec(options=hanging.HangingOptions, build=hanging.build))

CLOSE_TIMEOUT = 4.0


async def test_a_hung_sidecar_sink_misses_the_deadline_alone(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A sink hung in the sidecar: the close takes ``close_timeout``, the report names it with
    its replay command, TensorBoard beside it gets everything, and the sidecar's console prints
    to this process's terminal; health events carry the sidecar sinks' counts."""
    overrides = [
        "sinks=[jsonl,console,tensorboard,hanging]",
        "console.process=sidecar",
        "console.format=json",
        "tensorboard.process=sidecar",
        "hanging.process=sidecar",
        f"close_timeout={CLOSE_TIMEOUT}",
    ]
    with anyio.fail_after(60):
        async with run_bus(tmp_path, overrides, health_interval=0.5) as bus:
            for step in range(30):
                bus.log({"episode/total_reward": float(step)}, step=step, axis="episode")
                await anyio.sleep(0.1)
            started = time.monotonic()
    took = time.monotonic() - started
    assert took < CLOSE_TIMEOUT + 1.0
    report = bus.report
    assert report is not None
    assert not report.deadline_met
    sinks = {s.name: s for s in report.sinks}
    assert set(sinks) == {"jsonl", "console", "tensorboard", "hanging"}
    assert sinks["hanging"].pending == report.published
    assert sinks["hanging"].replay == f"python main.py replay {tmp_path} sinks=[hanging]"
    assert sinks["tensorboard"].delivered == report.published
    assert sinks["console"].delivered == report.published
    assert report.undelivered == {"hanging": report.published}
    health = [e for e in LogReader(tmp_path) if isinstance(e, Health)]
    assert max(e.values["telemetry/tensorboard/delivered"] for e in health) > 0
    assert all(e.values["telemetry/hanging/delivered"] == 0 for e in health)
    err = capfd.readouterr().err
    assert '"episode/total_reward": 29.0' in err  # the sidecar's console line for the last step


async def test_jsonl_and_memory_stay_in_the_training_process(tmp_path: Path) -> None:
    """``jsonl.process=sidecar`` and ``memory.process=sidecar`` are refused, naming the key."""
    import main

    for sink in ("jsonl", "memory"):
        with pytest.raises(main.ConfigError, match=rf"^{sink}\.process=sidecar: .*use {sink}"):
            run_bus(tmp_path, [f"sinks=[{sink}]", f"{sink}.process=sidecar"])
    with pytest.raises(main.ConfigError, match=r"wandb\.process must be auto, in, sidecar"):
        run_bus(tmp_path, ["sinks=[wandb]", "wandb.process=elsewhere"])
    with pytest.raises(main.ConfigError, match=r"sidecar\.default must be auto, in, sidecar"):
        run_bus(tmp_path, ["sidecar.default=yes"])
    with pytest.raises(main.ConfigError, match=r"sidecar\.priority must be one of idle, low"):
        run_bus(tmp_path, ["sidecar.priority=high"])
