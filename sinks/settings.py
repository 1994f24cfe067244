"""Config sections for sinks: one typed section per registered sink, checked and built.

``main.py train``/``replay`` and ``telemetry.compat`` (``import telemetry as wandb``) build
their config schemas here, so a sink added to the registry has its keys checked, listed
and refused with a suggestion in every one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field, fields, make_dataclass
from typing import Any, TypeVar, cast

from sinks.registry import known_sinks, sink_spec
from telemetry.errors import ConfigError
from telemetry.sink import Sink, SinkContext

__all__ = ["build_sinks", "sink_sections", "validate_sinks", "with_sections"]

S = TypeVar("S")


def sink_sections() -> list[tuple[str, type[Any]]]:
    """``(name, options class)`` of every registered sink, as the registry holds them now."""
    return [(sink, sink_spec(sink).options) for sink in known_sinks()]


def with_sections(name: str, base: type[S], extra: Sequence[tuple[str, type[Any]]] = ()) -> type[S]:
    """``base`` plus a section per registered sink (and per ``extra`` pair), typed by its class.

    Built from the registry when called, so a sink added there has its keys
    checked, listed by ``--help`` and refused with a suggestion when misspelt,
    like every built-in one.
    """
    sections = [*sink_sections(), *extra]
    taken = {f.name for f in fields(cast(Any, base))}
    for key, _ in sections:
        if key in taken:
            raise ConfigError(f"sink or trainer name {key!r} is already a config key of {name}")
        taken.add(key)
    schema = make_dataclass(
        name,
        [(key, options, field(default_factory=options)) for key, options in sections],
        bases=(base,),
    )
    schema.__module__ = base.__module__
    schema.__doc__ = base.__doc__
    return cast(type[S], schema)


def validate_sinks(config: Any, names: list[str]) -> None:
    """Each sink known, listed once, and its section's values allowed."""
    if not names:
        known = ", ".join(known_sinks())
        raise ConfigError(f"sinks must name at least one sink; known sinks: {known}")
    for name in names:
        sink_spec(name)
    if len(set(names)) != len(names):
        raise ConfigError(f"sinks lists a sink twice: {names}")
    for name in names:
        getattr(config, name).validate(name)


def build_sinks(config: Any, names: list[str], context: SinkContext) -> list[tuple[Sink, Any]]:
    """Each named sink built from its config section, paired with its delivery settings."""
    pairs = []
    for name in names:
        section = getattr(config, name)
        pairs.append((sink_spec(name).build(context, section), section))
    return pairs
