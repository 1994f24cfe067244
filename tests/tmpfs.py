"""Real small file systems for the full-disk tests: a tmpfs mounted for one test, filled up."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _cannot(reason: str) -> None:
    # CI runs as root on purpose: there a missing tmpfs is a broken test machine.
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the tmpfs tests: {reason}")
    pytest.skip(reason)


@contextmanager
def tmpfs(where: Path, size: int | str, *options: str) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes (or ``"256k"``) mounted at ``where`` for the block's length."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        _cannot("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join((f"size={size}", *options)), "tmpfs", str(where)],
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


def fill(mount: Path, leave: int) -> Path:
    """A filler file leaving about ``leave`` bytes free on ``mount``."""
    stats = os.statvfs(mount)
    filler = mount / "filler"
    filler.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - leave))
    return filler
