"""Where a trainer's checkpoints go, how one is written (atomically), and which is the newest."""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from telemetry.errors import CheckpointError, write_failure

FOLDER = "checkpoints"
"""The checkpoints' folder inside a run folder."""


def folder(run_dir: Path) -> Path:
    """The checkpoints' folder of the run in ``run_dir``."""
    return Path(run_dir) / FOLDER


def latest(folder: Path, pattern: re.Pattern[str]) -> Path | None:
    """The file in ``folder`` whose name matches ``pattern`` with the highest number in group 1."""
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return max(found)[1] if found else None


def save(state: Mapping[str, Any], path: Path) -> Path:
    """Write ``state`` (``torch.save``) to ``path`` through a temp file beside it and a rename.

    A crash mid-write leaves the previous checkpoint whole. A write that fails removes the temp
    file, which gives back the space it took (so the log can still record the failure), and
    raises ``CheckpointError`` naming ``path`` and the reason.
    """
    # Serialised in memory first: torch reports a failed file write as a RuntimeError
    # without its errno, and the reason is what the user needs.
    data = io.BytesIO()
    torch.save(dict(state), data)
    tmp = path.with_suffix(".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as handle:
            handle.write(data.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = write_failure(exc)
        raise CheckpointError(f"cannot write the checkpoint {path}: {reason}") from None
    return path
