"""The event file writer: TensorBoard's checksums, its reader, and a write that fails midway."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto.event_pb2 import Event as EventProto
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tb_masked_crc

from sinks.tfevents import FILE_VERSION, EventFile, masked_crc32c


@pytest.mark.parametrize("data", [b"", b"a", b"123456789", bytes(range(256)) * 7])
def test_checksum_is_tensorboards_own(data: bytes) -> None:
    """The C CRC gives what TensorBoard's pure-Python reference computes."""
    assert masked_crc32c(data) == tb_masked_crc(data)


def _stored(path: Path) -> list[EventProto]:
    return [EventProto.FromString(raw) for raw in RawEventFileLoader(str(path)).Load()]


def _scalar(step: int) -> bytes:
    event = EventProto(wall_time=1000.0 + step, step=step)
    event.summary.value.add(tag="loss", simple_value=step / 2)
    data: bytes = event.SerializeToString()
    return data


def test_records_read_back_by_tensorboard(tmp_path: Path) -> None:
    file = EventFile(tmp_path, EventProto)
    file.append([_scalar(step) for step in range(3)])
    file.append([_scalar(3)])
    file.close()
    assert file.path.name.startswith("events.out.tfevents.")
    events = _stored(file.path)
    assert events[0].file_version == FILE_VERSION
    assert [(e.step, e.summary.value[0].simple_value) for e in events[1:]] == [
        (0, 0.0),
        (1, 0.5),
        (2, 1.0),
        (3, 1.5),
    ]


def test_a_write_that_fails_midway_leaves_no_part_of_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills after part of a batch: the file is cut back and reads clean after."""
    file = EventFile(tmp_path, EventProto)
    file.append([_scalar(0)])
    real_write = os.write

    def half_then_full(fd: int, data: memoryview) -> int:
        if len(data) > 40:
            return real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError, match="No space"):
        file.append([_scalar(step) for step in range(1, 5)])
    monkeypatch.undo()
    file.append([_scalar(9)])
    file.close()
    assert [e.step for e in _stored(file.path)[1:]] == [0, 9]
