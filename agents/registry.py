"""Trainer names usable in config, each bound to the module that implements it."""

from __future__ import annotations

import importlib
from types import ModuleType

from telemetry.errors import ConfigError

TRAINERS: dict[str, str] = {"erl": "agents.erl", "ppo": "agents.ppo", "amp": "agents.amp"}
"""Each module defines ``CONFIG`` (a config dataclass) and ``build(config, bus, run_dir, seed)``.

The trainers' issue adds the modules; until then ``train`` names the missing one.
"""


DEFAULT_EPISODES: dict[str, int] = {"erl": 30, "ppo": 300, "amp": 30}
"""Episodes (ERL generations, AMP epochs) a run trains for unless ``episodes`` says otherwise."""

MAIN_AXIS: dict[str, str] = {"erl": "generation", "ppo": "episode", "amp": "epoch"}
"""The step axis each trainer counts its episodes on (progress bar, default aggregation)."""


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
