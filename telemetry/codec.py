"""The JSON Lines encoding of events: one orjson object per line.

Non-finite floats are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (orjson alone would write ``null``) and read back as floats
wherever a number is expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import orjson

from telemetry.errors import LogFormatError
from telemetry.events import EVENT_TYPES, SCALAR_EVENTS, Event, RunStarted

SCHEMA_VERSION: Final = 1
FORMAT_NAME: Final = "rltelemetry.jsonl"
_NON_FINITE_TEXT: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def header(run_id: str, time: float) -> bytes:
    """The first line of every log: format name and schema version."""
    return orjson.dumps(
        {
            "type": "schema",
            "run_id": run_id,
            "seq": 0,
            "time": time,
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
        }
    )


def encode(event: Event) -> bytes:
    """One event as one line of JSON, without the newline."""
    line = orjson.dumps(event)  # from the event's __dict__ (telemetry.events says why)
    # orjson writes NaN and infinities as null; a null is rare, so only then
    # take the slower path that spells them out.
    if b"null" in line:
        return orjson.dumps(_spell_non_finite(vars(event)))
    return line


def encode_lines(events: Sequence[Event]) -> bytes:
    """Events as JSON Lines, each ending in a newline: what ``encode`` gives, in one call
    (a batch of the log is encoded without a Python call per event)."""
    dumps = orjson.dumps
    lines = [dumps(event) for event in events]
    lines.append(b"")
    data = b"\n".join(lines)
    if b"null" in data:
        lines = [encode(event) for event in events]
        lines.append(b"")
        data = b"\n".join(lines)
    return data


def _spell_non_finite(value: Any) -> Any:
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _spell_non_finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_spell_non_finite(v) for v in value]
    return value


def decode(line: bytes | str) -> Event | dict[str, Any]:
    """Parse one line: an event, or the header dict (``type == "schema"``).

    Raises ``ValueError`` with a short reason for anything that is not a valid line.
    """
    obj = orjson.loads(line)
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "schema":
        version = obj.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise LogFormatError(
                f"schema_version {version!r} is newer than this reader's {SCHEMA_VERSION}; "
                "upgrade rltelemetry to read it"
            )
        return obj
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}")
    _check_envelope(obj)
    del obj["type"]
    values = obj.get("values")
    if cls in SCALAR_EVENTS:
        if not isinstance(values, dict):
            raise ValueError("'values' must be an object of metric key to number")
        obj["values"] = {k: _number(k, v) for k, v in values.items()}
    if cls is RunStarted and isinstance(obj.get("tags"), list):
        obj["tags"] = tuple(obj["tags"])
    try:
        return cls(**obj)
    except TypeError as exc:
        raise ValueError(f"bad fields for {kind!r}: {exc}") from None


def _check_envelope(obj: dict[str, Any]) -> None:
    if not isinstance(obj.get("run_id"), str):
        raise ValueError("'run_id' must be a string")
    seq = obj.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ValueError("'seq' must be a positive integer")
    if not isinstance(obj.get("time"), (int, float)):
        raise ValueError("'time' must be a number")


def _number(key: str, value: Any) -> int | float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _NON_FINITE_TEXT:
        return _NON_FINITE_TEXT[value]
    raise ValueError(f"value of {key!r} is {value!r}, not a number")
