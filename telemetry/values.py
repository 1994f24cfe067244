"""Checking and converting metric values at the point where they are published."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from telemetry.errors import InvalidMetricError

Scalar = int | float
"""A metric value as stored: a Python int (64-bit range) or float, NaN and infinities kept."""

MAX_KEY_LENGTH = 256
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_ALLOWED = "int, float, bool, a numpy number, or a 0-d numpy array or torch tensor"


def coerce_values(values: Mapping[str, Any], *, what: str = "metric") -> dict[str, Scalar]:
    """Return a fresh dict of plain ints and floats, or raise naming the first bad key.

    Plain ints and floats under string keys take the fast path; everything else
    goes through ``coerce_scalar``.
    """
    if type(values) is dict:
        # The common case: copy in C, then one pass of type checks, no per-item stores.
        out: dict[str, Scalar] = dict(values)
        for key, value in out.items():
            kind = type(value)
            if (kind is float or (kind is int and _INT_MIN <= value <= _INT_MAX)) and (
                type(key) is str and 0 < len(key) <= MAX_KEY_LENGTH
            ):
                continue
            return _coerce_each(values, what)
        return out
    if not isinstance(values, Mapping):
        raise InvalidMetricError(
            f"{what} values must be a mapping of key to number, got {type(values).__name__}"
        )
    return _coerce_each(values, what)


def _coerce_each(values: Mapping[str, Any], what: str) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for key, value in values.items():
        if type(key) is not str or not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidMetricError(describe_bad_key(key, what))
        kind = type(value)
        if kind is float or (kind is int and _INT_MIN <= value <= _INT_MAX):
            out[key] = value
        else:
            out[key] = coerce_scalar(key, value, what=what)
    return out


def describe_bad_key(key: object, what: str = "metric") -> str:
    """The error message for a key that is not a usable metric name."""
    if not isinstance(key, str):
        return f"{what} key {key!r} is a {type(key).__name__}; keys must be strings"
    if not key:
        return f"{what} key is empty; use a 'namespace/name' string"
    return (
        f"{what} key {key[:40]!r}... is {len(key)} characters long; "
        f"at most {MAX_KEY_LENGTH} are allowed"
    )


def coerce_scalar(key: str, value: Any, *, what: str = "metric") -> Scalar:
    """Convert one non-plain value (bool, numpy, 0-d tensor) or raise naming ``key``."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if _INT_MIN <= value <= _INT_MAX:
            return int(value)
        raise InvalidMetricError(
            f"{what} {key!r} = {value} is outside the 64-bit integer range; pass it as a float"
        )
    if isinstance(value, float):
        return float(value)
    ndim = getattr(value, "ndim", None)
    item = getattr(value, "item", None)
    if ndim == 0 and callable(item):
        # numpy scalars and 0-d arrays, and 0-d torch tensors, all expose .item().
        try:
            plain = item()
        except Exception as exc:  # e.g. a tensor on a device that cannot be read
            raise InvalidMetricError(f"{what} {key!r}: could not read the value ({exc})") from exc
        if isinstance(plain, (bool, int, float)):
            return coerce_scalar(key, plain, what=what)
        raise InvalidMetricError(
            f"{what} {key!r} holds a {type(plain).__name__} ({plain!r}); allowed: {_ALLOWED}"
        )
    if ndim is not None and callable(item):
        shape = tuple(getattr(value, "shape", ()))
        raise InvalidMetricError(
            f"{what} {key!r} is a {type(value).__name__} of shape {shape}; only single "
            f"numbers are recorded: reduce it first (for example .mean().item())"
        )
    raise InvalidMetricError(
        f"{what} {key!r} has a value of type {type(value).__name__} ({_short(value)}); "
        f"allowed: {_ALLOWED}"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
