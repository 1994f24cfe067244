"""Sink names usable in config, each bound to the module that implements it.

Adding a sink is one module and one line here: the module defines ``OPTIONS``
(its config section: a ``telemetry.sink.Delivery`` dataclass with the sink's
own keys) and ``build(context, options)`` returning the sink; the line binds
its config name to the module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telemetry.errors import UnknownSinkError
from telemetry.sink import Delivery, Sink, SinkContext

SINKS: dict[str, str] = {
    "jsonl": "sinks.jsonl",
    "console": "sinks.console",
    "memory": "sinks.memory",
    "tensorboard": "sinks.tensorboard_sink",
    "wandb": "sinks.wandb_sink",
    "redis": "sinks.redis_sink",
}
"""Sink name to module; each module defines ``OPTIONS`` and ``build(context, options)``."""

LOG_SINK = "jsonl"
"""The durable log: every run writes it, whatever else ``sinks`` lists."""


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """A registered sink: the config section it reads and how to build it."""

    options: type[Delivery]
    build: Callable[[SinkContext, Any], Sink]


_registered: dict[str, SinkSpec] = {}


def register_sink(name: str, spec: SinkSpec) -> None:
    """Make ``name`` usable in ``sinks=[...]`` without a module; a later one replaces it."""
    _registered[name] = spec


def known_sinks() -> list[str]:
    """Every sink name, from modules and registered, sorted."""
    return sorted({*SINKS, *_registered})


def sink_spec(name: str) -> SinkSpec:
    """The spec for ``name``; raises ``UnknownSinkError`` listing the known names."""
    if name in _registered:
        return _registered[name]
    module_name = SINKS.get(name)
    if module_name is None:
        raise UnknownSinkError(f"unknown sink {name!r}; known sinks: {', '.join(known_sinks())}")
    module = importlib.import_module(module_name)
    return SinkSpec(options=module.OPTIONS, build=module.build)
