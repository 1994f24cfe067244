"""Config sections for sinks: one typed section per registered sink, checked and built.

``main.py train``/``replay`` and ``telemetry.compat`` (``import telemetry as wandb``) build
their config schemas here, so a sink added to the registry has its keys checked, listed
and refused with a suggestion in every one of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field, fields, make_dataclass
from typing import Any, TypeVar, cast

from sinks.jsonl import _last_seq_in
from sinks.registry import LOG_SINK, known_sinks, sink_spec
from telemetry.errors import ConfigError
from telemetry.reader import LOG_NAME
from telemetry.sidecar.parent import Sidecar
from telemetry.sidecar.settings import SidecarSection
from telemetry.sidecar.spec import MovedSink, importable, spec_for
from telemetry.sink import Delivery, Sink, SinkContext

__all__ = [
    "build_here",
    "build_sinks",
    "sidecar_sink",
    "sink_sections",
    "validate_sinks",
    "with_sections",
]

S = TypeVar("S")

SIDECAR = "sidecar"
"""The run's section saying where sinks run by default (``telemetry.sidecar.settings``)."""

STAY_IN: dict[str, str] = {
    LOG_SINK: "the durable log is written by the training process; the sidecar follows it",
    "memory": "its events are read in the training process's memory",
}
"""Sinks that always run in the training process, and why."""

IN_UNLESS_ASKED = frozenset({"redis"})
"""Sinks that ``sidecar.default=sidecar`` leaves in the training process (``process=auto``):
redis is one cheap add per batch, and the producer of a collected run. (The console moves:
the sidecar shares the trainer's terminal.)"""

LIGHT = frozenset({"console"})
"""Sinks that do not, alone, make ``sidecar.default=auto`` start a sidecar."""

KEEPS_STEPS_OPEN = frozenset({"wandb"})
"""Sinks that hold each axis's last step until the next arrives (wandb's rows): a sidecar
restarted after ``kill -9`` hands those steps again."""


def _asks_sink(name: str, section: Any) -> bool:
    """wandb reads what its resumed run holds (online: the run's summary; offline: its run
    files): a restarted sidecar hands it everything and lets it skip that
    (``telemetry.sidecar.lanes.Resume``)."""
    if name != "wandb":
        return False
    from sinks.wandb_sink import READS_BACK, resolve_mode

    return resolve_mode(section.mode) in READS_BACK


def sink_sections() -> list[tuple[str, type[Any]]]:
    """``(name, options class)`` of every registered sink, as the registry holds them now."""
    return [(sink, sink_spec(sink).options) for sink in known_sinks()]


def with_sections(name: str, base: type[S], extra: Sequence[tuple[str, type[Any]]] = ()) -> type[S]:
    """``base`` plus a section per registered sink (and per ``extra`` pair), typed by its class.

    Built from the registry when called, so a sink added there has its keys
    checked, listed by ``--help`` and refused with a suggestion when misspelt,
    like every built-in one.
    """
    sections: list[tuple[str, type[Any]]] = [*sink_sections(), (SIDECAR, SidecarSection), *extra]
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
    sidecar = getattr(config, SIDECAR, None)
    if sidecar is not None:
        sidecar.validate()
    for name, why in STAY_IN.items():
        section = getattr(config, name, None)
        if section is not None and section.process == "sidecar":
            raise ConfigError(f"{name}.process=sidecar: {why}; use {name}.process=in")


def build_sinks(config: Any, names: list[str], context: SinkContext) -> list[tuple[Sink, Any]]:
    """Each named sink built from its config section, paired with its delivery settings.

    Sinks that run in the sidecar (``process``, ``sidecar.default``) are not built here:
    one ``telemetry.sidecar.parent.Sidecar`` takes their place and starts the process
    that feeds them. Only a run that writes the log (``names`` holds it) has one; a bus
    without it (``replay``) builds every sink here.
    """
    moved = sidecar_names(config, names)
    pairs = build_here(config, [n for n in names if n not in moved], context)
    if moved:
        section: SidecarSection = getattr(config, SIDECAR)
        sections = {name: getattr(config, name) for name in moved}
        sidecar = sidecar_sink(
            context, sections, restarts=section.restarts, priority=section.priority
        )
        pairs.append((sidecar, sidecar.delivery))
    return pairs


def sidecar_sink(
    context: SinkContext,
    sections: Mapping[str, Delivery],
    *,
    restarts: int = 5,
    priority: str = "idle",
) -> Sidecar:
    """The sink that runs the sinks named in ``sections`` (each with its section) in a
    sidecar process following the log of ``context.run_dir``."""
    moved = tuple(_moved(name, section) for name, section in sections.items())
    # The bus starts after the log's last seq (a resumed run's), as it reads before opening.
    first_seq = _last_seq_in(context.run_dir / LOG_NAME) if context.resumed else 0
    spec = spec_for(context, moved, first_seq=first_seq, priority=priority)
    return Sidecar(spec, restarts=restarts)


def build_here(config: Any, names: list[str], context: SinkContext) -> list[tuple[Sink, Any]]:
    """Each named sink built in this process from its section, paired with it."""
    pairs = []
    for name in names:
        section = getattr(config, name)
        pairs.append((sink_spec(name).build(context, section), section))
    return pairs


def sidecar_names(config: Any, names: list[str]) -> list[str]:
    """The sinks of ``names`` that run in the sidecar: none unless the log is among them."""
    sidecar: SidecarSection | None = getattr(config, SIDECAR, None)
    if sidecar is None or LOG_SINK not in names:
        return []
    default = sidecar.default
    by_default = [
        n
        for n in names
        if getattr(config, n).process == "auto" and n not in STAY_IN and n not in IN_UNLESS_ASKED
    ]
    if default == "auto":
        # A sink defined in a script stays in (asked to move, it is refused); a second
        # process is worth it only for a sink that costs the trainer, not the console alone.
        by_default = [n for n in by_default if _importable_sink(config, n)]
        default = "sidecar" if any(n not in LIGHT for n in by_default) else "in"
    moved = []
    for name in names:
        process = default if name in by_default else getattr(config, name).process
        if process == "sidecar" and name not in STAY_IN:
            moved.append(name)
    return moved


def _importable_sink(config: Any, name: str) -> bool:
    """Another process can import the code of sink ``name`` (its builder and its options)."""
    return importable(sink_spec(name).build) and importable(type(getattr(config, name)))


def _moved(name: str, section: Delivery) -> MovedSink:
    build = sink_spec(name).build
    return MovedSink.of(
        name,
        section,
        build,
        keeps_steps_open=name in KEEPS_STEPS_OPEN,
        asks_sink=_asks_sink(name, section),
    )
