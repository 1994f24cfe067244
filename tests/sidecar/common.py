"""What the sidecar tests share: a run's sinks built from config, a bus, outputs read back."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

import main
from sinks.settings import build_sinks
from telemetry.bus import Bus, RunInfo
from telemetry.config import load_config
from telemetry.sidecar.parent import Sidecar
from telemetry.sink import SinkContext
from tests.fakes.wandb_file import history

RUN_ID = "sidecar-run"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def run_bus(folder: Path, overrides: Sequence[str], **bus: Any) -> Bus:
    """A bus as ``train`` builds it for ``folder``, its sinks from the ``overrides``."""
    config = load_config(main.run_config(), None, list(overrides))
    config.validate()
    context = SinkContext(run_id=RUN_ID, run_dir=folder, run_name="sidecar-test")
    sinks = build_sinks(config, config.sink_names, context)
    bus.setdefault("close_timeout", config.close_timeout)
    return Bus(RUN_ID, sinks, run=RunInfo(name="sidecar-test"), **bus)


def sidecar_of(bus: Bus) -> Sidecar:
    """The bus's sidecar sink."""
    return next(lane.sink for lane in bus.lanes if isinstance(lane.sink, Sidecar))


def tensorboard_scalars(log_dir: Path) -> list[tuple[str, int, float]]:
    """``(tag, step, value)`` of every scalar in every event file, as TensorBoard reads them."""
    accumulator = EventAccumulator(str(log_dir), size_guidance={SCALARS: 0})
    accumulator.Reload()
    return sorted(
        (tag, event.step, event.value)
        for tag in accumulator.Tags()["scalars"]
        for event in accumulator.Scalars(tag)
    )


def wandb_rows(folder: Path, axis: str) -> list[dict[str, Any]]:
    """The history rows on ``axis`` of every wandb run file under ``folder`` (each restart of a
    sidecar resumes the run in a new offline run folder), without wandb's own keys."""
    rows = []
    for path in sorted(folder.rglob("run-*.wandb")):
        for row in history(path):
            if axis in row:
                rows.append({k: v for k, v in row.items() if not k.startswith("_")})
    return rows


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b
