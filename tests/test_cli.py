"""The command line: every bad config exits 2 with one clear line and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["episodes=-5"], "episodes must be at least 1, got -5"),
        (["episodes=abc"], "episodes: Value 'abc'"),
        (["bogus=1"], "unknown key 'bogus'"),
        (["consol.every=2"], "did you mean 'console'"),
        (["console.colour=red"], "unknown key 'console.colour'"),
        (["sinks=[jsonl,nope]"], "unknown sink 'nope'; known sinks: console, jsonl, memory, "),
        (["sinks=[]"], "sinks must name at least one sink"),
        (["trainer=dqn"], "trainer must be one of erl, ppo, amp, got 'dqn'"),
        (["jsonl.capacity=0"], "jsonl.capacity must be at least 1, got 0"),
        (["jsonl.overflow=spill"], "jsonl.overflow must be block"),
        (["console.overflow=drop"], "console.overflow must be block or spill, got 'drop'"),
        (["console.format=xml"], "console.format must be auto, pretty or json"),
        (["seed=-1"], "seed must be 0 or more"),
        (["episodes"], "expected KEY=VALUE, got 'episodes'"),
    ],
)
def test_bad_config_exits_2_with_a_message(args: list[str], message: str) -> None:
    """A wrong key, type or value names the key and what is allowed, with status 2."""
    result = _run("train", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    """A --config path that does not exist is named."""
    result = _run("train", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml does not exist" in result.stderr


@pytest.mark.parametrize("command", ["train", "replay"])
def test_help_lists_usage(command: str) -> None:
    """--help on each command prints its usage and exits 0."""
    result = _run(command, "--help")
    assert result.returncode == 0
    assert f"python main.py {command}" in result.stdout


def test_train_help_lists_config_keys() -> None:
    """train --help lists every config key with its default."""
    result = _run("train", "--help")
    for key in (
        "episodes = None",
        "ppo.lr = ",
        "sinks = ['jsonl', 'console']",
        "jsonl.fsync_interval = 0.2",
    ):
        assert key in result.stdout


def test_replay_of_a_missing_path_exits_2(tmp_path: Path) -> None:
    """Replaying a path with no log names it and exits 2."""
    result = _run("replay", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert "no log at" in result.stderr
    assert "Traceback" not in result.stderr


def test_replay_refuses_to_write_the_log_it_reads(tmp_path: Path) -> None:
    """replay with sinks=[jsonl] is refused: it would append to its own input."""
    result = _run("replay", str(tmp_path), "sinks=[jsonl]")
    assert result.returncode == 2
    assert "cannot also write it" in result.stderr
