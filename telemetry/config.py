"""Loading a YAML config with ``key=value`` overrides into typed dataclasses (OmegaConf)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from telemetry.aggregate import AggregateSpec
from telemetry.errors import ConfigError

T = TypeVar("T")
_LIST_KEYS = frozenset({"sinks", "tags", "callbacks"})


@dataclass
class AggregateSection:
    """Window statistics the bus publishes for every sink."""

    every: int = 10
    """Steps per window; 0 turns aggregation off."""
    axis: str = ""
    """The step axis whose metrics are aggregated; empty: the trainer's main axis."""
    keys: list[str] = field(default_factory=list)
    """Metric keys to aggregate; empty means every key on the axis."""

    def spec(self) -> AggregateSpec:
        """The bus's view of this section; raises ``ConfigError`` for a value not allowed."""
        return AggregateSpec(every=self.every, axis=self.axis or "episode", keys=tuple(self.keys))


def load_config(
    schema: type[T], path: str | os.PathLike[str] | None, overrides: Sequence[str]
) -> T:
    """The schema's defaults, then the YAML file, then ``key=value`` overrides, type-checked.

    Raises ``ConfigError`` naming the key and what is allowed.
    """
    dotlist = [_normalise(item) for item in overrides]
    try:
        merged = OmegaConf.structured(schema)
        if path is not None:
            merged = OmegaConf.merge(merged, _load_yaml(Path(path)))
        merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(dotlist))
        result = OmegaConf.to_object(merged)
    except ConfigKeyError as exc:
        raise ConfigError(_unknown_key(schema, str(exc.full_key or exc.key))) from None
    except OmegaConfBaseException as exc:
        raise ConfigError(_describe(exc)) from None
    except TypeError as exc:  # OmegaConf cannot merge into one entry of a list of sections
        raise ConfigError(
            f"config: {exc}; a list such as alerts.rules is set whole (alerts.rules=[...])"
        ) from None
    assert isinstance(result, schema)
    return result


def _load_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return OmegaConf.load(path)
    except Exception as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None


def _normalise(item: str) -> str:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"expected KEY=VALUE, got {item!r}")
    if key in _LIST_KEYS and value and not value.startswith("["):
        return f"{key}=[{value}]"  # sinks=jsonl means sinks=[jsonl]
    return item


def _describe(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "config"
    message = str(getattr(exc, "msg", "") or exc).splitlines()[0]
    return f"{key}: {message}"


def _unknown_key(schema: type[Any], full_key: str) -> str:
    *parents, leaf = full_key.split(".")
    node: Any = schema
    for part in parents:
        types = {f.name: f.type for f in fields(node)} if is_dataclass(node) else {}
        node = _field_class(node, part) if part in types else None
        if node is None:
            break
    allowed = [f.name for f in fields(node)] if node is not None and is_dataclass(node) else []
    where = ".".join(parents)
    message = f"unknown key {full_key!r}"
    close = difflib.get_close_matches(leaf, allowed, n=1)
    if close:
        message += f"; did you mean {'.'.join([*parents, close[0]])!r}?"
    if allowed:
        message += f" Keys allowed{' in ' + where if where else ''}: {', '.join(allowed)}"
    return message


def _field_class(cls: type[Any], name: str) -> type[Any] | None:
    default = next(f for f in fields(cls) if f.name == name).default_factory
    if callable(default):
        value = default()
        return type(value) if is_dataclass(value) else None
    return None
