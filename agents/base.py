"""What every trainer shares: its result, its contract, and the start-of-run events."""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psutil

from telemetry.bus import Bus
from telemetry.events import Hyperparameters, SystemInfo


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What ``train`` returns: final and best metrics, and where the run's files are."""

    run_dir: Path
    episodes: int
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)


def train_result(
    run_dir: Path, episodes: int, final: dict[str, float], best: dict[str, float]
) -> TrainResult:
    """A ``TrainResult`` whose ``best`` holds only the records set so far (finite values)."""
    kept = {key: value for key, value in best.items() if math.isfinite(value)}
    return TrainResult(run_dir=run_dir, episodes=episodes, final=dict(final), best=kept)


class Trainer(Protocol):
    """An async trainer that publishes only events on its bus."""

    async def train(self, num_episodes: int) -> TrainResult:
        """Train for ``num_episodes`` more episodes (generations, epochs) and report."""


@dataclass(frozen=True, slots=True)
class TrainerSpec:
    """What a trainer module exports as ``SPEC``: all the CLI and the registry need of it."""

    config: type[Any]
    """The trainer's config dataclass (its section in the run config); has ``validate()``."""
    build: Callable[[Any, Bus, Path, int], Trainer]
    """``build(config, bus, run_dir, seed)``: a trainer publishing on ``bus``."""
    episodes: int
    """Episodes (generations, epochs) a run trains for unless ``episodes`` says otherwise."""
    axis: str
    """The step axis the trainer counts its episodes on (progress, default aggregation)."""
    sim: type[Any] | None = None
    """The simulator's config class, whose settings the trainer's ``sim`` section takes."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Other names of config keys that sweeps accept (the seeds' ``num_generations``)."""


def system_info() -> dict[str, str | int | float]:
    """Python, torch and numpy versions, CPU count and memory of this machine."""
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 2),
        "executable": sys.executable,
    }


def publish_start(bus: Bus, config: Any) -> None:
    """Publish a trainer's hyperparameters (its config dataclass, flat) and system info."""
    if is_dataclass(config) and not isinstance(config, type):
        values = flatten(asdict(config))
    else:
        values = dict(config)
    bus.emit(Hyperparameters, values=values)
    bus.emit(SystemInfo, values=system_info())


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a/b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out
