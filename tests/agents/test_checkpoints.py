"""A checkpoint that cannot be written, on a real small tmpfs (agents.checkpoints).

What happens (pinned here): the failed write's temp file is removed, which gives its space
back; ``train`` raises ``CheckpointError("cannot write the checkpoint <path>: the disk is
full")``; the bus around the trainer records ``run_finished`` with status ``failed`` and that
error in the log, which the freed space still holds.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import torch

from agents import checkpoints
from agents.ppo import build
from sinks.jsonl import JsonlSink
from telemetry.bus import Bus, RunInfo
from telemetry.errors import CheckpointError
from telemetry.events import Metrics, RunFinished
from telemetry.reader import LogReader
from tests.agents.test_ppo import small
from tests.tmpfs import fill, tmpfs

torch.set_num_threads(1)

MOUNT_SIZE = 1 << 20
"""Bytes of the tmpfs the run folder lives on."""
LEFT_FREE = 24 << 10
"""Bytes the filler file leaves free: room for the log, not for a 39 kB checkpoint."""


async def test_full_disk_fails_the_run_naming_the_checkpoint(tmp_path: Path) -> None:
    """torch.save on a full tmpfs: CheckpointError names the path, no temp file, log says failed."""
    with tmpfs(tmp_path / "small", MOUNT_SIZE) as mount:
        run_dir = mount / "run"
        run_dir.mkdir()
        filler = fill(mount, LEFT_FREE).stat().st_size
        log = run_dir / "events.jsonl"
        with pytest.raises(CheckpointError) as caught, anyio.fail_after(60):
            async with Bus(
                "disk", [JsonlSink(log, "disk")], run=RunInfo(name="disk"), health_interval=None
            ) as bus:
                # two tiny days, saved only at the end of train
                await build(small(eval_frequency=0), bus, run_dir, 0).train(2)
        path = run_dir / "checkpoints" / "episode_000002.pt"
        assert str(caught.value) == f"cannot write the checkpoint {path}: the disk is full"
        assert caught.value.__cause__ is None
        assert list(path.parent.iterdir()) == []  # the temp file is gone
        events = list(LogReader(log))
        assert [e.step for e in events if isinstance(e, Metrics)] == [0, 1]
        finished = events[-1]
        assert isinstance(finished, RunFinished)
        assert finished.status == "failed"
        assert finished.error is not None
        assert str(path) in finished.error
        print(f"\n[checkpoint] tmpfs {MOUNT_SIZE} B, filler {filler} B: {finished.error}")


def test_read_only_file_system_is_named(tmp_path: Path) -> None:
    """A checkpoint folder on a read-only tmpfs raises CheckpointError with that reason."""
    with tmpfs(tmp_path / "ro", MOUNT_SIZE, "ro") as mount:
        path = mount / "checkpoints" / "x.pt"
        with pytest.raises(CheckpointError, match=r"read-only$") as caught:
            checkpoints.save({"x": torch.zeros(3)}, path)
        assert str(caught.value) == (
            f"cannot write the checkpoint {path}: the file system is read-only"
        )


def test_a_written_checkpoint_loads_back_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """save writes the state whole under its own name, nothing beside it."""
    path = checkpoints.save({"x": torch.arange(4)}, tmp_path / "checkpoints" / "a-1.pt")
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.arange(4))
    assert [p.name for p in path.parent.iterdir()] == ["a-1.pt"]
