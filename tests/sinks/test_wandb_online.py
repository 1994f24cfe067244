"""The wandb sink online against the fake W&B backend, with the PPO trainer running.

Each test runs ``python main.py train`` in a subprocess pointed at the fake, breaks
the backend in one way, and checks that training finishes, the JSON Lines log is
complete, and every history row reaches the fake exactly once per step.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telemetry.events import Metrics
from telemetry.reader import LogReader
from tests.fakes.wandb_server import FakeWandbServer, online_env, wandb_server

__all__ = ["wandb_server"]
ROOT = Path(__file__).resolve().parents[2]
EPISODES = 150


_PROCESSES: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    """Kill any training process a failed test left behind."""
    yield
    while _PROCESSES:
        process = _PROCESSES.pop()
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def _start(server: FakeWandbServer, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, **online_env(server)}
    command = [
        sys.executable, "main.py", "train", "trainer=ppo", f"episodes={EPISODES}",
        f"out={out}", "sinks=[jsonl,console,wandb]", "wandb.mode=online",
        "console.format=json", "console.every=1000", "health_interval=0", *extra,
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _PROCESSES.append(process)
    return process


def _finish(process: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


def _run_dir(out: Path) -> Path:
    (folder,) = out.iterdir()
    return folder


def _has_rows(server: FakeWandbServer) -> bool:
    return any(_episode_rows(server, run_id) for run_id in server.run_ids())


def _episode_rows(server: FakeWandbServer, run_id: str) -> list[dict[str, Any]]:
    return [row for row in server.history(run_id) if "episode" in row]


def _assert_every_row_once(server: FakeWandbServer, run_dir: Path) -> None:
    events = [e for e in LogReader(run_dir) if isinstance(e, Metrics) and e.axis == "episode"]
    steps = sorted({e.step for e in events})
    assert steps == list(range(EPISODES))
    run_id = run_dir.name.rsplit("-", 1)[-1]
    rows = _episode_rows(server, run_id)
    counts = Counter(row["episode"] for row in rows)
    assert sorted(counts) == steps
    assert set(counts.values()) == {1}
    by_step = {row["episode"]: row for row in rows}
    for event in events:
        for key, value in event.values.items():
            assert by_step[event.step][key] == pytest.approx(value, nan_ok=True), key


def test_server_down_at_start_then_up(wandb_server: FakeWandbServer, tmp_path: Path) -> None:
    """Refused at init, the sink waits in the log and delivers everything once it is up."""
    wandb_server.fault = "refuse"
    process = _start(wandb_server, tmp_path, "close_timeout=60")
    time.sleep(4)
    wandb_server.fault = None
    code, stderr = _finish(process)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    _assert_every_row_once(wandb_server, _run_dir(tmp_path))


def test_server_down_mid_run_then_up(wandb_server: FakeWandbServer, tmp_path: Path) -> None:
    """A stretch of refused connections mid-run loses no row and duplicates none."""
    process = _start(wandb_server, tmp_path, "close_timeout=60", "ppo.save_freq=1000")
    assert wandb_server.wait_for(lambda: _has_rows(wandb_server), 60)
    wandb_server.fault = "refuse"
    time.sleep(3)
    wandb_server.fault = None
    code, stderr = _finish(process)
    assert code == 0, stderr
    _assert_every_row_once(wandb_server, _run_dir(tmp_path))


def test_server_hanging_mid_run(wandb_server: FakeWandbServer, tmp_path: Path) -> None:
    """A backend that accepts and never answers for a while costs no row."""
    process = _start(wandb_server, tmp_path, "close_timeout=60", "ppo.save_freq=1000")
    assert wandb_server.wait_for(lambda: _has_rows(wandb_server), 60)
    wandb_server.fault = "hang"
    time.sleep(3)
    wandb_server.fault = None
    code, stderr = _finish(process)
    assert code == 0, stderr
    _assert_every_row_once(wandb_server, _run_dir(tmp_path))


def test_malformed_replies_at_init_then_healthy(
    wandb_server: FakeWandbServer, tmp_path: Path
) -> None:
    """Malformed GraphQL replies fail init; once they stop the whole run is delivered."""
    wandb_server.set_fault("malformed", only="graphql")
    process = _start(wandb_server, tmp_path, "close_timeout=60")
    time.sleep(3)
    wandb_server.fault = None
    code, stderr = _finish(process)
    assert code == 0, stderr
    _assert_every_row_once(wandb_server, _run_dir(tmp_path))


def test_dead_server_exits_on_time_and_replay_delivers_later(
    wandb_server: FakeWandbServer, tmp_path: Path
) -> None:
    """With the server never up, the run exits 0 on time and prints the replay command."""
    wandb_server.fault = "refuse"
    started = time.monotonic()
    code, stderr = _finish(_start(wandb_server, tmp_path, "close_timeout=5"))
    elapsed = time.monotonic() - started
    assert code == 0, stderr
    assert "Traceback" not in stderr
    run_dir = _run_dir(tmp_path)
    command = f"python main.py replay {run_dir} sinks=[wandb]"
    assert command in stderr
    assert elapsed < 60
    wandb_server.fault = None
    env = {**os.environ, **online_env(wandb_server)}
    replay = subprocess.run(
        [sys.executable, "main.py", "replay", str(run_dir), "sinks=[wandb]", "wandb.mode=online"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    _assert_every_row_once(wandb_server, run_dir)
