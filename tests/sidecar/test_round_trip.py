"""TensorBoard and wandb record the same thing in the training process and in the sidecar."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio

from telemetry.events import Hyperparameters, Metrics
from telemetry.reader import LogReader
from tests.sidecar.common import (
    _offline,  # noqa: F401  the fixture
    run_bus,
    same,
    tensorboard_scalars,
    wandb_rows,
)

STEPS = 40
ROOT = Path(__file__).resolve().parents[2]


async def _record(folder: Path, process: str) -> dict[str, Any]:
    """A run with TensorBoard and wandb (offline) ``in`` process or in the ``sidecar``."""
    overrides = [
        "sinks=[jsonl,tensorboard,wandb]",
        "wandb.mode=offline",
        f"tensorboard.process={process}",
        f"wandb.process={process}",
    ]
    async with run_bus(folder, overrides, health_interval=None) as bus:
        bus.emit(Hyperparameters, values={"lr": 0.001})
        for step in range(STEPS):
            loss = math.nan if step == 4 else 1.0 / (step + 1)
            bus.log({"losses/value": loss, "fitness/best": float(step)}, step=step, axis="episode")
            if step % 10 == 0:
                bus.log({"eval/score": step * 2.0}, step=step, axis="episode")
            await anyio.sleep(0.005)
    assert bus.report is not None
    assert bus.report.undelivered == {}
    moved = [lane for lane in bus.lanes if lane.name == "sidecar"]
    assert bool(moved) == (process == "sidecar")
    return {
        "tensorboard": [  # health counts differ from run to run
            s
            for s in tensorboard_scalars(folder / "tensorboard")
            if s[1:] and "/" in s[0] and not s[0].startswith("telemetry/")
        ],
        "wandb": sorted((r for r in wandb_rows(folder, "episode")), key=lambda r: r["episode"]),
        "report": {s.name: s.delivered for s in bus.report.sinks},
    }


def _as_text(rows: list[Any]) -> str:
    """Rows (or tuples) as text: NaN compares unequal to itself, its repr does not."""
    return repr([sorted(r.items()) if isinstance(r, dict) else r for r in rows])


def _assert_holds_the_log(folder: Path, got: dict[str, Any]) -> None:
    """Every metric of the log is once in TensorBoard's and wandb's files, at its step."""
    metrics = [e for e in LogReader(folder) if isinstance(e, Metrics) and e.axis == "episode"]
    scalars = {(tag, step): value for tag, step, value in got["tensorboard"]}
    assert len(scalars) == len(got["tensorboard"])  # no step twice
    rows = {row["episode"]: row for row in got["wandb"]}
    assert sorted(rows) == list(range(STEPS))
    assert len(got["wandb"]) == STEPS
    for event in metrics:
        for key, value in event.values.items():
            assert math.isclose(scalars[(key, event.step)], value, rel_tol=1e-6) or same(
                scalars[(key, event.step)], value
            )
            assert same(float(rows[event.step][key]), float(value))
    published = len(list(LogReader(folder)))
    assert got["report"] == {"jsonl": published, "tensorboard": published, "wandb": published}


async def test_in_process_and_sidecar_write_the_same_outputs(tmp_path: Path) -> None:
    """The same events give equal TensorBoard scalars and wandb rows in both modes."""
    with anyio.fail_after(180):
        here = await _record(tmp_path / "in", "in")
        there = await _record(tmp_path / "sidecar", "sidecar")
    _assert_holds_the_log(tmp_path / "in", here)
    _assert_holds_the_log(tmp_path / "sidecar", there)
    assert _as_text(here["tensorboard"]) == _as_text(there["tensorboard"])
    assert _as_text(here["wandb"]) == _as_text(there["wandb"])
    assert here["report"] == there["report"]


def test_a_trained_and_resumed_run_feeds_its_sidecar(tmp_path: Path) -> None:
    """``train`` with TensorBoard and wandb (offline) in the sidecar, then ``resume``: every
    episode of both processes is once in TensorBoard's and wandb's files."""
    base = ["console.format=json", "sinks=[jsonl,console,tensorboard,wandb]", "wandb.mode=offline"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["NETRC"] = str(tmp_path / "no-netrc")

    def train(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "main.py", "train", *base, "sidecar.default=sidecar", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    train("trainer=ppo", "episodes=4", f"out={tmp_path / 'runs'}")
    (run_dir,) = (tmp_path / "runs").iterdir()
    train(f"resume={run_dir}", "episodes=2")
    board = [s for s in tensorboard_scalars(run_dir / "tensorboard") if s[0] == "episode/steps"]
    assert sorted(step for _, step, _ in board) == list(range(6))
    rows = wandb_rows(run_dir, "episode")
    assert sorted(row["episode"] for row in rows) == list(range(6))
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2
