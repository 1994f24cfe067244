"""What an offline wandb run already holds, read back from its run files (``run-<id>.wandb``).

A wandb run file is a 7-byte header (``:W&B``, a 2-byte magic, a version byte)
and then LevelDB-style log records in 32 KiB blocks: a 4-byte CRC, a 2-byte
little-endian length and a 1-byte type (full, first, middle, last), a record
split across blocks where it does not fit, blocks padded with zeros at their
end. wandb's service writes the records in the order the client sent them, so
a file left by a killed process is a prefix of what was sent: its last record
may be torn, and is then ignored.

The wandb sink resumes an offline run from what these files hold, not from
what it had handed to wandb: a row handed to ``log`` that wandb's service had
not yet written when its process was killed is not in the file, and is sent
again; a row in the file never is. A resumed online run says the same through its
summary (``from_summary``): the last value of each axis's ``_seq/<axis>`` column.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from telemetry.events import SCALAR_EVENTS, Event

_BLOCK = 32 * 1024
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
Record = Any
"""wandb's ``Record`` protobuf message (its generated module has no type stubs)."""
SEQ_KEY = "_seq"
"""Hidden history column: the last bus ``seq`` folded into the row."""
AXIS_SEQ_PREFIX = "_seq/"
"""Hidden history column ``_seq/<axis>`` of an axis's rows: a run's summary keeps the last
value of each, so a resumed online run says, per axis, the last row it holds."""
APPLIED_KEY = "_applied"
"""Summary key: every event that is not a scalar row, up to this ``seq``, was handed to
wandb before it (the records after it in the file follow it)."""


def records(path: Path) -> Iterator[Record]:
    """Every whole Record in the file, in the order wandb wrote them (a torn tail ignored)."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a wandb run file")
    offset, pending = _HEADER, b""
    while offset + _HEADER <= len(data):
        left_in_block = _BLOCK - offset % _BLOCK
        if left_in_block < _HEADER:
            offset += left_in_block
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, offset)
        if kind == 0 and length == 0:
            offset += left_in_block  # zero padding to the end of the block
            continue
        offset += _HEADER
        if offset + length > len(data) or kind not in (_FULL, _FIRST, _MIDDLE, _LAST):
            return  # a record cut off by the writer's death
        payload = data[offset : offset + length]
        offset += length
        if kind == _FULL:
            yield _parse(payload)
        elif kind == _FIRST:
            pending = payload
        elif kind == _MIDDLE:
            pending += payload
        else:
            yield _parse(pending + payload)
            pending = b""


def _parse(payload: bytes) -> Record:
    # wandb's package takes a second to import: only where a run file is read.
    from wandb.proto import wandb_internal_pb2

    record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
    record.ParseFromString(payload)
    return record


def items(updates: Iterable[Any]) -> dict[str, Any]:
    """History or summary items as a dict of key to decoded value."""
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in updates}


def history(path: Path) -> list[dict[str, Any]]:
    """The history rows of the run file, each as a dict of key to decoded value."""
    return [
        items(record.history.item)
        for record in records(path)
        if record.WhichOneof("record_type") == "history"
    ]


def run_files(wandb_dir: Path, run_id: str) -> list[Path]:
    """The offline run files of ``run_id`` under wandb's folder, oldest first."""
    found = wandb_dir.glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
    return sorted(found, key=lambda path: (path.stat().st_mtime, path.name))


@dataclass(slots=True)
class Held:
    """What a run's files hold, by ``seq``.

    ``axes``: per axis, the ``seq`` of its last row's last event: wandb's service
    writes rows in order, so every scalar event of that axis up to it is held.
    ``applied``: every other event up to it was written (``APPLIED_KEY``).
    ``finished``: the newest file ends with the run's exit: nothing is missing.
    """

    axes: dict[str, int] = field(default_factory=dict)
    applied: int = 0
    finished: bool = False
    files: int = 0

    @property
    def top(self) -> int:
        """No event after this ``seq`` is held."""
        return max([self.applied, *self.axes.values()])

    def holds(self, event: Event) -> bool:
        """``event`` is in the run already."""
        if isinstance(event, SCALAR_EVENTS):
            return event.seq <= self.axes.get(event.axis, 0)
        return event.seq <= self.applied

    def without(self, events: Sequence[Event]) -> Sequence[Event]:
        """``events`` less those the run holds."""
        if not events or events[0].seq > self.top:
            return events
        return [e for e in events if not self.holds(e)]

    def read(self, path: Path) -> None:
        """Add what one run file holds."""
        axes: set[str] = set()
        last = ""
        for record in records(path):
            last = record.WhichOneof("record_type") or ""
            if last == "metric" and record.metric.step_metric:
                axes.add(record.metric.step_metric)
            elif last == "history":
                row = items(record.history.item)
                seq = row.get(SEQ_KEY)
                if isinstance(seq, int):
                    for axis in axes.intersection(row):
                        self.axes[axis] = max(self.axes.get(axis, 0), seq)
            elif last == "summary":
                applied = items(record.summary.update).get(APPLIED_KEY)
                if isinstance(applied, int):
                    self.applied = max(self.applied, applied)
        self.finished = last == "exit"
        self.files += 1


def from_summary(summary: Mapping[str, Any]) -> Held | None:
    """What a resumed online run holds, by its summary's ``_seq/<axis>`` and ``_applied``;
    None for a run whose rows have no ``_seq/<axis>`` column (logged by an older version)."""
    axes = {
        key.removeprefix(AXIS_SEQ_PREFIX): int(value)
        for key, value in summary.items()
        if key.startswith(AXIS_SEQ_PREFIX) and isinstance(value, (int, float))
    }
    if not axes:
        return None
    applied = summary.get(APPLIED_KEY)
    return Held(axes=axes, applied=int(applied) if isinstance(applied, (int, float)) else 0)


def held(wandb_dir: Path, run_id: str, wait: float) -> Held:
    """What the offline run files of ``run_id`` hold, once no process writes them.

    A killed client's wandb service outlives it by a moment, still writing what it
    was sent: the files are read once no process has them open (at most ``wait`` s).
    """
    files = run_files(wandb_dir, run_id)
    found = Held()
    if not files:
        return found
    _wait_unwritten(files, wait)
    for path in files:
        found.read(path)
    return found


def _wait_unwritten(files: Sequence[Path], wait: float) -> None:
    paths = {str(path.resolve()) for path in files}
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _open_anywhere(paths):
        time.sleep(0.1)


def _open_anywhere(paths: set[str]) -> bool:
    for process in psutil.process_iter():
        try:
            if any(f.path in paths for f in process.open_files()):
                return True
        except (psutil.Error, OSError):
            continue
    return False
