"""A checkpoint that cannot be written, on a real small tmpfs (agents.checkpoints).

What happens (pinned here): the failed write's temp file is removed, which gives its space
back; ``train`` raises ``CheckpointError("cannot write the checkpoint <path>: the disk is
full")``; the bus around the trainer records ``run_finished`` with status ``failed`` and that
error in the log, which the freed space still holds.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
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

torch.set_num_threads(1)

MOUNT_SIZE = 1 << 20
"""Bytes of the tmpfs the run folder lives on."""
LEFT_FREE = 24 << 10
"""Bytes the filler file leaves free: room for the log, not for a 39 kB checkpoint."""


def _cannot(reason: str) -> None:
    # CI runs as root on purpose: there a missing tmpfs is a broken test machine.
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the tmpfs tests: {reason}")
    pytest.skip(reason)


@contextmanager
def _tmpfs(where: Path, *options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        _cannot("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join((f"size={MOUNT_SIZE}", *options)), "tmpfs", where],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        _cannot(f"mounting a tmpfs is not permitted here: {result.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30, check=False)


def _fill(mount: Path, leave: int) -> int:
    """Write a filler file so that only about ``leave`` bytes stay free; its size."""
    stats = os.statvfs(mount)
    size = stats.f_bavail * stats.f_frsize - leave
    with (mount / "filler").open("wb") as handle:
        handle.write(b"\0" * size)
    return size


async def test_full_disk_fails_the_run_naming_the_checkpoint(tmp_path: Path) -> None:
    """torch.save on a full tmpfs: CheckpointError names the path, no temp file, log says failed."""
    with _tmpfs(tmp_path / "small") as mount:
        run_dir = mount / "run"
        run_dir.mkdir()
        filler = _fill(mount, LEFT_FREE)
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
    with _tmpfs(tmp_path / "ro", "ro") as mount:
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
