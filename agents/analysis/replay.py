"""What the views analyse: a trained policy and the states it met on fresh seeded episodes.

``agents/analysis/adapters.py`` (loading a checkpoint with its run's config and
replaying it on its simulator) fills a ``Replay``; the views (``agents/analysis/views/``)
only read one, so each view is tested on a ``Replay`` built by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Replay:
    """A trained policy and the states it visited, with what the simulator knew of each."""

    trainer: str
    """erl, ppo or amp."""
    observations: F32
    """Every visited state, shape (N, F)."""
    actions: F32
    """The policy's action at each state, shape (N, A) (PPO: the bid level's index, A = 1)."""
    feature_names: list[str]
    """The F observation features, named by the simulator's observation fields."""
    action_names: list[str]
    """The A action components (ERL: one target position per stock)."""
    policy: Callable[[torch.Tensor], torch.Tensor]
    """Differentiable: a batch of observations (n, F) to the policy's output (n, A) (PPO: the
    expected bid level under its action distribution, so gradients exist)."""
    hidden: Callable[[torch.Tensor], torch.Tensor]
    """A batch of observations (n, F) to the last hidden layer's activations (n, H)."""
    returns_to_go: F32
    """Undiscounted sum of the rewards from each state to its episode's end, shape (N,)."""
    episode: npt.NDArray[np.int64]
    """The episode index of each state, shape (N,)."""
    context: Mapping[str, npt.NDArray[Any]] = field(default_factory=dict)
    """Per-state labels the simulator knows, each shape (N,): ERL ``regime`` (the first
    stock's regime name), ``hour`` (hour of the trading day), ``position`` (net position
    held), ``trading`` (1 where the action changed a holding); PPO ``hour``, ``segment``,
    ``budget_left``; AMP ``tracking_error``."""
    episode_returns: F32 = field(default_factory=lambda: np.zeros(0, np.float32))
    """Each replayed episode's total reward."""
    price_features: list[int] = field(default_factory=list)
    """Indices of the features that are price moves (ERL's recent returns): sensitivity first."""
    evaluate: Callable[[Callable[[F32], F32]], float] | None = None
    """Replays the same seeded episodes with another policy (numpy obs -> action) and returns
    the mean episode return: feature permutation's drop in return uses it when given."""
