"""Training from the command line: each trainer runs, resumes, and stops cleanly on signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from telemetry.events import Metrics, RunFinished, RunStarted
from telemetry.reader import LogReader

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "erl": ["episodes=3", "erl.population_size=4", "erl.episode_length=50",
            "erl.gradient_steps_per_generation=10", "erl.log_frequency=2"],
    "ppo": ["episodes=6"],
    "amp": ["episodes=2", "amp.num_envs=32", "amp.horizon=16", "amp.eval_trials=4",
            "amp.eval_frequency=2"],
}  # fmt: skip
AXIS = {"erl": "generation", "ppo": "episode", "amp": "epoch"}


def _train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "main.py", "train", "console.format=json", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _steps(run_dir: Path, axis: str) -> list[int]:
    return [e.step for e in LogReader(run_dir) if isinstance(e, Metrics) and e.axis == axis]


@pytest.mark.parametrize("trainer", ["erl", "ppo", "amp"])
def test_each_trainer_runs_and_resumes_from_the_cli(trainer: str, tmp_path: Path) -> None:
    """train runs the trainer to the end; resume=RUN continues its steps and appends its log."""
    first = _train(f"trainer={trainer}", f"out={tmp_path}", *SMALL[trainer])
    assert first.returncode == 0, first.stderr
    (run_dir,) = tmp_path.iterdir()
    steps = _steps(run_dir, AXIS[trainer])
    count = int(SMALL[trainer][0].split("=")[1])
    assert sorted(set(steps)) == list(range(count))
    size = (run_dir / "events.jsonl").stat().st_size
    again = _train(f"resume={run_dir}", "episodes=2")
    assert again.returncode == 0, again.stderr
    assert (run_dir / "events.jsonl").stat().st_size > size
    events = list(LogReader(run_dir))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert {e.run_id for e in events} == {run_dir.name.rsplit("-", 1)[-1]}
    starts = [e for e in events if isinstance(e, RunStarted)]
    assert [s.resumed for s in starts] == [False, True]
    assert sorted(set(_steps(run_dir, AXIS[trainer]))) == list(range(count + 2))


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_stop_the_run_as_interrupted(
    signum: signal.Signals, status: int, tmp_path: Path
) -> None:
    """SIGINT and SIGTERM end the run within its close deadline with the conventional status."""
    process = subprocess.Popen(
        [sys.executable, "main.py", "train", "trainer=ppo", "episodes=100000", f"out={tmp_path}",
         "close_timeout=5", "console.format=json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            logs = list(tmp_path.glob("*/events.jsonl"))
            if logs and logs[0].stat().st_size > 20_000:
                break
            time.sleep(0.1)
        process.send_signal(signum)
        sent = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == status, stderr
    assert took < 5 + 3
    assert "Traceback" not in stderr
    (run_dir,) = tmp_path.iterdir()
    events = list(LogReader(run_dir))
    assert isinstance(events[-1], RunFinished)
    assert events[-1].status == "interrupted"
