"""Reading a wandb run file (``run-<id>.wandb``) back: its Record protobufs, in order.

The file is a 7-byte header (``:W&B``, a 2-byte magic, a version byte) and then
LevelDB-style log records in 32 KiB blocks: a 4-byte CRC, a 2-byte little-endian
length and a 1-byte type (full, first, middle, last), with a record split across
blocks where it does not fit and blocks padded with zeros at their end.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

_BLOCK = 32 * 1024
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    """Every Record in the file, in the order wandb wrote them."""
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
        offset += _HEADER
        payload = data[offset : offset + length]
        offset += length
        if kind == _FULL:
            yield _parse(payload)
        elif kind == _FIRST:
            pending = payload
        elif kind == _MIDDLE:
            pending += payload
        elif kind == _LAST:
            yield _parse(pending + payload)
            pending = b""
        elif kind == 0 and length == 0:
            offset += left_in_block - _HEADER  # zero padding to the end of the block
        else:
            raise ValueError(f"{path}: bad record type {kind} at {offset - length - _HEADER}")


def _parse(payload: bytes) -> wandb_internal_pb2.Record:
    record = wandb_internal_pb2.Record()
    record.ParseFromString(payload)
    return record


def history(path: Path) -> list[dict[str, Any]]:
    """The history rows of the run file, each as a dict of key to decoded value."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows


def config(path: Path) -> dict[str, Any]:
    """The run config as the file last sets it."""
    values: dict[str, Any] = {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            for item in record.config.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "run":
            for item in record.run.config.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values


def run_file(folder: Path) -> Path:
    """The single ``run-*.wandb`` file under ``folder``."""
    found = sorted(folder.rglob("run-*.wandb"))
    if len(found) != 1:
        raise AssertionError(f"expected one wandb run file under {folder}, found {found}")
    return found[0]
