"""A run's config as wandb has it: attribute and item access, ``update``, ``setdefaults``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import structlog
import yaml

from telemetry.errors import ConfigError

logger = structlog.get_logger("telemetry.compat")
OnChange = Callable[[dict[str, Any]], None]


def as_mapping(config: Any, what: str = "config") -> dict[str, Any]:
    """A dict from what ``init(config=...)`` and ``update`` accept: a mapping, an
    ``argparse.Namespace`` (or any object with ``__dict__``), or a YAML file's path."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, argparse.Namespace):
        return dict(vars(config))
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"{what}: {path} is not a file")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{what}: {path} does not hold a mapping")
        # wandb's config-defaults.yaml form: {key: {value: ..., desc: ...}}
        return {
            k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in loaded.items()
        }
    if hasattr(config, "__dict__"):
        return {k: v for k, v in vars(config).items() if not k.startswith("_")}
    raise ConfigError(f"{what} must be a mapping, a Namespace or a YAML path, got {config!r}")


class Config:
    """Key to value, readable as ``config.lr`` and ``config["lr"]``; changes are published.

    Keys a sweep set (``locked``) keep the sweep's value: a later ``update`` of one is
    ignored with a warning, as under ``wandb agent``.
    """

    __slots__ = ("_items", "_locked", "_on_change", "_warned")

    def __init__(self, items: Mapping[str, Any] | None = None, locked: Mapping[str, Any] = {}):
        object.__setattr__(self, "_items", dict(items or {}))
        self._items.update(locked)
        object.__setattr__(self, "_locked", frozenset(locked))
        object.__setattr__(self, "_on_change", None)
        object.__setattr__(self, "_warned", set())

    def attach(self, on_change: OnChange) -> None:
        """Publish every later change through ``on_change`` (the run's bus)."""
        object.__setattr__(self, "_on_change", on_change)

    # -- reading --

    def __getattr__(self, key: str) -> Any:
        try:
            return self._items[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Config({self._items!r})"

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def keys(self) -> Any:
        return self._items.keys()

    def items(self) -> Any:
        return self._items.items()

    def values(self) -> Any:
        return self._items.values()

    def as_dict(self) -> dict[str, Any]:
        """A copy of the config as a plain dict."""
        return dict(self._items)

    # -- changing --

    def __setattr__(self, key: str, value: Any) -> None:
        self._set({key: value})

    def __setitem__(self, key: str, value: Any) -> None:
        self._set({key: value})

    def update(self, values: Any = None, allow_val_change: bool | None = None) -> None:
        """Set every key of ``values`` (a mapping, a Namespace or a YAML path)."""
        self._set(as_mapping(values, "config.update"))

    def setdefaults(self, values: Any) -> None:
        """Set the keys of ``values`` that the config does not hold yet."""
        given = as_mapping(values, "config.setdefaults")
        self._set({k: v for k, v in given.items() if k not in self._items})

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self._items:
            self._set({key: default})
        return self._items[key]

    def _set(self, values: dict[str, Any]) -> None:
        changed = {}
        for key, value in values.items():
            if key in self._locked:
                if key not in self._warned and value != self._items[key]:
                    self._warned.add(key)
                    logger.warning(
                        "config_locked_by_sweep", key=key, kept=self._items[key], ignored=value
                    )
                continue
            self._items[key] = value
            changed[key] = value
        if changed and self._on_change is not None:
            self._on_change(changed)


def flat_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``outer.inner`` keys; values the log cannot hold as their JSON text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{name}."))
        elif value is None or isinstance(value, (str, bool, int, float)):
            out[name] = value
        elif isinstance(value, (list, tuple)) and all(
            isinstance(v, (str, int, float, bool)) for v in value
        ):
            out[name] = list(value)
        elif hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            out[name] = value.item()
        else:
            out[name] = json.dumps(value, default=str)
    return out


def plain(value: Any) -> Any:
    """A JSON-safe copy of a config (what the run_started event and config.yaml hold)."""
    return json.loads(json.dumps(value, default=_plain_leaf))


def _plain_leaf(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
