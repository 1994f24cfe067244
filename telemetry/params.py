"""Checking hyperparameters, artifact metadata and system information values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from telemetry.errors import InvalidMetricError
from telemetry.events import Param
from telemetry.values import MAX_KEY_LENGTH, coerce_scalar, describe_bad_key


def coerce_params(values: Mapping[str, Any], *, what: str = "hyperparameter") -> dict[str, Param]:
    """Plain str, bool, int, float or None per key; numbers as in ``coerce_scalar``.

    Sequences of scalars become their text (``[64, 64]`` is kept as ``"[64, 64]"``)
    so that every backend can show them; anything else raises naming the key.
    """
    if not isinstance(values, Mapping):
        raise InvalidMetricError(f"{what}s must be a mapping, got {type(values).__name__}")
    out: dict[str, Param] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidMetricError(describe_bad_key(key, what))
        if value is None or isinstance(value, (str, bool)):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(
            isinstance(v, (str, int, float, bool)) for v in value
        ):
            out[key] = repr(list(value))
        elif isinstance(value, Mapping):
            raise InvalidMetricError(
                f"{what} {key!r} is a nested mapping; flatten it into 'outer/inner' keys"
            )
        else:
            out[key] = coerce_scalar(key, value, what=what)
    return out


def dotted(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``dotted.key -> value`` (lists and empty sections kept whole), as the
    dashboard's and the reports' config differences show it."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(dotted(value, f"{name}."))
        else:
            out[name] = value
    return out
