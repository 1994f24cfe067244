"""Sink names usable in config, each bound to its options class and a builder."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telemetry.errors import UnknownSinkError
from telemetry.sink import Delivery, Sink


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What a sink builder may need to know about the run it serves."""

    run_id: str
    run_dir: Path
    run_name: str
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """A registered sink: the config section it reads and how to build it."""

    options: type[Delivery]
    build: Callable[[SinkContext, Any], Sink]


_BUILTIN: dict[str, str] = {
    "jsonl": "sinks.jsonl",
    "console": "sinks.console",
    "memory": "sinks.memory",
    "tensorboard": "sinks.tensorboard_sink",
    "wandb": "sinks.wandb_sink",
}
"""Built-in sinks by module; each module defines ``OPTIONS`` and ``build``."""
_registered: dict[str, SinkSpec] = {}


def register_sink(name: str, spec: SinkSpec) -> None:
    """Make ``name`` usable in ``sinks=[...]``; a later registration replaces an earlier one."""
    _registered[name] = spec


def known_sinks() -> list[str]:
    """Every sink name, built-in and registered, sorted."""
    return sorted({*_BUILTIN, *_registered})


def sink_spec(name: str) -> SinkSpec:
    """The spec for ``name``; raises ``UnknownSinkError`` listing the known names."""
    if name in _registered:
        return _registered[name]
    module_name = _BUILTIN.get(name)
    if module_name is None:
        raise UnknownSinkError(f"unknown sink {name!r}; known sinks: {', '.join(known_sinks())}")
    module = importlib.import_module(module_name)
    return SinkSpec(options=module.OPTIONS, build=module.build)
