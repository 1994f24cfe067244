"""What a sidecar is to run: the moved sinks, their config sections and the run; one JSON file.

The training process writes it into the run folder (``sidecar/spec.json``);
the sidecar reads it back and rebuilds each sink by its registered builder.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from telemetry.errors import ConfigError
from telemetry.sink import Delivery, Sink, SinkContext

FOLDER = "sidecar"
"""The sidecar's folder inside the run folder: its spec, cursors and status."""
SPEC_NAME = "spec.json"
CURSORS = "cursors"
STATUS_NAME = "status.json"


@dataclass(frozen=True, slots=True)
class MovedSink:
    """One sink the sidecar feeds: its name, config section, and where its code lives."""

    name: str
    options: dict[str, Any]
    options_class: str
    """``module:qualname`` of its section's class (a ``Delivery``)."""
    build: str
    """``module:qualname`` of ``build(context, options)``."""
    keeps_steps_open: bool = False
    """It holds each axis's last step until the next arrives (``telemetry.sidecar.lanes``)."""
    asks_sink: bool = False
    """Reopened, it knows what its backend holds (``telemetry.sidecar.lanes.Resume``)."""

    @classmethod
    def of(
        cls,
        name: str,
        section: Delivery,
        build: Callable[[SinkContext, Any], Sink],
        *,
        keeps_steps_open: bool,
        asks_sink: bool,
    ) -> MovedSink:
        """``name`` with its checked section; ``ConfigError`` if its code cannot be imported."""
        return cls(
            name=name,
            options=dataclasses.asdict(section),
            options_class=_importable(name, type(section)),
            build=_importable(name, build),
            keeps_steps_open=keeps_steps_open,
            asks_sink=asks_sink,
        )

    def sink(self, context: SinkContext) -> tuple[Sink, Delivery]:
        """The sink built as the training process would, with its section."""
        options = _load(self.options_class)(**self.options)
        return _load(self.build)(context, options), options


@dataclass(frozen=True, slots=True)
class SidecarSpec:
    """Everything a sidecar needs: the run, the ``seq`` its bus starts after, the sinks."""

    run_id: str
    run_dir: str
    run_name: str
    resumed: bool
    first_seq: int
    sinks: tuple[MovedSink, ...]
    priority: str = "idle"
    """CPU priority of the sidecar process (``telemetry.sidecar.settings``)."""

    @property
    def context(self) -> SinkContext:
        return SinkContext(
            run_id=self.run_id,
            run_dir=Path(self.run_dir),
            run_name=self.run_name,
            resumed=self.resumed,
        )

    @property
    def folder(self) -> Path:
        return Path(self.run_dir) / FOLDER

    def save(self) -> Path:
        """Write the spec into the run's sidecar folder; returns its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / SPEC_NAME
        data = dataclasses.asdict(self)
        tmp = path.with_name(f".{SPEC_NAME}.tmp")
        tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, run_dir: Path) -> SidecarSpec:
        data = orjson.loads((run_dir / FOLDER / SPEC_NAME).read_bytes())
        sinks = tuple(MovedSink(**s) for s in data.pop("sinks"))
        return cls(**data, sinks=sinks)


def spec_for(
    context: SinkContext, sinks: tuple[MovedSink, ...], *, first_seq: int, priority: str = "idle"
) -> SidecarSpec:
    """The spec of a run about to open its bus, whose ``seq`` start after ``first_seq``."""
    return SidecarSpec(
        priority=priority,
        run_id=context.run_id,
        run_dir=str(context.run_dir),
        run_name=context.run_name,
        resumed=context.resumed,
        first_seq=first_seq,
        sinks=sinks,
    )


def importable(thing: Any) -> bool:
    """Another process can import ``thing`` by module and name (not a lambda, a local or
    something of ``__main__``)."""
    return "<" not in thing.__qualname__ and thing.__module__ != "__main__"


def _importable(name: str, thing: Any) -> str:
    where = f"{thing.__module__}:{thing.__qualname__}"
    if not importable(thing):
        raise ConfigError(
            f"{name}.process=sidecar: the sink's code ({where}) cannot be imported by another "
            f"process; define it in a module, or use {name}.process=in"
        )
    return where


def _load(where: str) -> Any:
    module, _, qualname = where.partition(":")
    thing: Any = importlib.import_module(module)
    for part in qualname.split("."):
        thing = getattr(thing, part)
    return thing
