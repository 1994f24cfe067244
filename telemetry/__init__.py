"""Asynchronous telemetry for ML training; also ``import telemetry as wandb``.

The wandb-compatible names (``init``, ``log``, ``config``, ``summary``, ``finish``...)
load on first use (PEP 562), so ``import telemetry.bus`` costs what it did. Any other
name raises ``UnsupportedAPIError`` naming it and listing the supported ones.
"""

from __future__ import annotations

from typing import Any

_NAMES = frozenset(
    [
        "alert",
        "AlertLevel",
        "Artifact",
        "config",
        "define_metric",
        "finish",
        "init",
        "log",
        "log_artifact",
        "run",
        "save",
        "summary",
    ]
)


def __getattr__(name: str) -> Any:
    if name.startswith("__") or (name not in _NAMES and name.islower() and _is_module(name)):
        raise AttributeError(name)
    from telemetry.compat import api

    if name in _NAMES:
        if name in api.RUN_BOUND or name == "run":
            return api.before_init(name)  # a run, once started, sets the attribute itself
        value = getattr(api, name) if name != "Artifact" else api.Artifact
        globals()[name] = value
        return value
    raise api.unsupported(f"telemetry.{name}", api.SUPPORTED)


def _is_module(name: str) -> bool:
    """A submodule's name: ``from telemetry import bus`` must fall back to importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(f"telemetry.{name}") is not None
    except (ImportError, ValueError):
        return False
