"""Trainer names usable in config, each bound to the module that implements it.

Adding a trainer is one module and one line here: the module exports
``SPEC = TrainerSpec(config=..., build=..., episodes=..., axis=...)``
(``agents.base.TrainerSpec``); the line binds its config name to the module.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from agents.base import TrainerSpec
from telemetry.errors import ConfigError

TRAINERS: dict[str, str] = {"erl": "agents.erl", "ppo": "agents.ppo", "amp": "agents.amp"}
"""Trainer name to module; each module exports ``SPEC``, a ``TrainerSpec``."""


def trainer_module(name: str) -> ModuleType:
    """The module of trainer ``name``; raises ``ConfigError`` listing the known names."""
    module_name = TRAINERS.get(name)
    if module_name is None:
        raise ConfigError(f"trainer must be one of {', '.join(TRAINERS)}, got {name!r}")
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigError(f"trainer {name!r} is not available in this build") from None


def trainer_spec(name: str) -> TrainerSpec:
    """What trainer ``name`` exports as ``SPEC``: its config class, builder, episodes, axis."""
    spec = getattr(trainer_module(name), "SPEC", None)
    if not isinstance(spec, TrainerSpec):
        raise ConfigError(f"trainer {name!r}: module {TRAINERS[name]} exports no TrainerSpec SPEC")
    return spec
