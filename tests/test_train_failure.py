"""A run that fails for a reason of ours ends with one line, status 1 and its log closed failed."""

from __future__ import annotations

from pathlib import Path

from telemetry.events import Metrics, RunFinished
from telemetry.reader import LogReader
from tests.reliability.common import run_cli
from tests.tmpfs import fill, tmpfs

MOUNT_SIZE = 1 << 20
"""Bytes of the tmpfs the run folders live on."""
LEFT_FREE = 64 << 10
"""Bytes the filler leaves free: room for config and log, not for PPO's 157 kB checkpoint."""


def test_unwritable_checkpoint_ends_the_run_with_one_line(tmp_path: Path) -> None:
    """A full disk under the checkpoint: exit 1, one ``error:`` line naming it, log ends failed."""
    with tmpfs(tmp_path / "out", MOUNT_SIZE) as out:
        fill(out, LEFT_FREE)
        result = run_cli(
            "train", "trainer=ppo", "episodes=1", f"out={out}", "sinks=[console]",
            "console.format=json",
        )  # fmt: skip
        (run_dir,) = (p for p in out.iterdir() if p.is_dir())
        path = run_dir / "checkpoints" / "episode_000001.pt"
        message = f"cannot write the checkpoint {path}: the disk is full"
        assert result.returncode == 1, result.stderr
        lines = result.stderr.splitlines()
        assert [line for line in lines if line.startswith("error:")] == [f"error: {message}"]
        assert lines[-1] == f"error: {message}"
        assert "Traceback" not in result.stderr
        events = list(LogReader(run_dir))
        assert [e.step for e in events if isinstance(e, Metrics) and e.axis == "episode"] == [0]
        finished = events[-1]
        assert isinstance(finished, RunFinished)
        assert finished.status == "failed"
        assert finished.error == f"CheckpointError: {message}"
