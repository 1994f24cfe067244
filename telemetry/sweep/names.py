"""Sweep parameter names as config keys of our own ``train``.

A dotted name is a config key as it is (``erl.actor_lr``, ``aggregate.every``);
a bare name is, in this order, an alias the trainer declares (the seeds'
``num_generations`` -> ``episodes``), a key of the trainer's section
(``actor_lr`` -> ``erl.actor_lr``), a simulator setting (``inaction_penalty`` ->
``erl.sim.inaction_penalty``), or a run-level key (``seed``, ``episodes``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields, is_dataclass
from typing import Any

from telemetry.errors import ConfigError


def config_keys(
    names: Iterable[str],
    *,
    run_keys: Sequence[str],
    trainer: str,
    trainer_keys: Sequence[str],
    sim_keys: Sequence[str],
    aliases: Mapping[str, str],
) -> dict[str, str]:
    """Each parameter name's config key; ``ConfigError`` naming an unknown one."""
    keys = {}
    for name in names:
        if "." in name:
            keys[name] = name
        elif name in aliases:
            keys[name] = aliases[name]
        elif name in trainer_keys:
            keys[name] = f"{trainer}.{name}"
        elif name in sim_keys:
            keys[name] = f"{trainer}.sim.{name}"
        elif name in run_keys:
            keys[name] = name
        else:
            known = sorted({*aliases, *trainer_keys, *sim_keys})
            raise ConfigError(
                f"parameters.{name}: not a setting of trainer {trainer!r}; use a dotted config "
                f"key (such as {trainer}.{trainer_keys[0]}) or one of: {', '.join(known)}"
            )
    return keys


def field_names(config: Any) -> list[str]:
    """The leaf keys of a config dataclass (its nested sections left out)."""
    if not is_dataclass(config):
        return []
    names = []
    for f in fields(config):
        value = getattr(config, f.name, None)
        if not is_dataclass(value):
            names.append(f.name)
    return names
