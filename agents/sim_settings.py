"""A trainer's ``sim`` section: any simulator setting, by its name in the simulator's config.

Each trainer config names the few simulator settings users change most as its
own fields (``erl.n_stocks``); every other one is reachable through the
trainer's ``sim`` mapping (``erl.sim.loss_penalty_multiplier=2``), checked here
against the simulator config's fields and by the simulator's own validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from telemetry.errors import ConfigError

C = TypeVar("C")


def sim_setting_names(cls: type[Any]) -> list[str]:
    """The settings a simulator config takes (its init fields)."""
    return [f.name for f in fields(cls) if f.init]


def sim_config(cls: type[C], section: str, settings: Mapping[str, Any], **own: Any) -> C:
    """``cls`` built from the trainer's ``own`` fields with ``settings`` (its ``sim``) on top.

    Raises ``ConfigError`` naming ``<section>.sim.<key>`` for an unknown setting, one
    the trainer sets as its own field, or a value the simulator refuses.
    """
    allowed = sim_setting_names(cls)
    for key in settings:
        if key in own:
            raise ConfigError(f"{section}.sim.{key}: set it as {section}.{key}")
        if key not in allowed:
            listed = ", ".join(name for name in allowed if name not in own)
            raise ConfigError(f"{section}.sim.{key}: unknown simulator setting; allowed: {listed}")
    values = {key: _tuples(value) for key, value in settings.items()}
    try:
        return cls(**own, **values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section}.sim: {exc}") from None


def _tuples(value: Any) -> Any:
    """YAML lists as the tuples simulator configs hold (a transition matrix: nested)."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(item) for item in value)
    return value
