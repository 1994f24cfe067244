"""The PPO pieces PPO and AMP share: heads, observation input, GAE, the clipped surrogate.

After CleanRL's ``ppo.py``: two tanh MLPs (actor and critic) with orthogonal initialisation,
GAE advantages, shuffled minibatches, per-minibatch advantage normalisation, the clipped
surrogate with its approximate KL and clip fraction, the (optionally clipped) value loss, a
gradient step with norm clipping, and the critic's explained variance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from agents.common import RunningMeanStd, orthogonal_layer


def tanh_mlp(n_in: int, hidden: int, n_out: int, out_std: float) -> nn.Sequential:
    """Two tanh hidden layers of width ``hidden``; output weights scaled by ``out_std``."""
    return nn.Sequential(
        orthogonal_layer(n_in, hidden),
        nn.Tanh(),
        orthogonal_layer(hidden, hidden),
        nn.Tanh(),
        orthogonal_layer(hidden, n_out, std=out_std),
    )


class Heads(nn.Module):
    """Separate tanh MLPs: a critic (the state value) and an actor with ``n_out`` outputs."""

    def __init__(self, obs_dim: int, n_out: int, hidden: int) -> None:
        super().__init__()
        self.critic = tanh_mlp(obs_dim, hidden, 1, out_std=1.0)
        self.actor = tanh_mlp(obs_dim, hidden, n_out, out_std=0.01)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values, shape (n,)."""
        out: torch.Tensor = self.critic(obs).squeeze(-1)
        return out

    def head(self, obs: torch.Tensor) -> torch.Tensor:
        """The actor's outputs (logits, action means), shape (n, n_out)."""
        out: torch.Tensor = self.actor(obs)
        return out


class ObservationInput:
    """The networks' input: observations standardised by running statistics, or as they are."""

    def __init__(self, dim: int, normalize: bool) -> None:
        self.normalize = normalize
        self.rms = RunningMeanStd(dim)

    def update(self, obs: NDArray[Any]) -> None:
        """Fold observations into the statistics (only when normalising)."""
        if self.normalize:
            self.rms.update(obs)

    def tensor(self, obs: NDArray[Any]) -> torch.Tensor:
        """``obs`` as a float32 tensor, standardised and clipped when normalising."""
        if self.normalize:
            return torch.as_tensor(self.rms.normalize(obs))
        return torch.as_tensor(np.asarray(obs, dtype=np.float32))

    def state(self) -> dict[str, torch.Tensor]:
        """The statistics as float64 tensors (a checkpoint loadable with ``weights_only``)."""
        return {k: torch.as_tensor(v, dtype=torch.float64) for k, v in self.rms.state().items()}

    def load(self, state: dict[str, Any]) -> None:
        """Restore what ``state`` returned (tensors or arrays)."""
        self.rms.load({k: np.asarray(v) for k, v in state.items()})


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    gamma: float,
    lam: float,
    *,
    dones: torch.Tensor | None = None,
    last_value: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and returns over the first axis of a rollout, (T,) or (T, n).

    ``dones[t]`` cuts the return after step t; the step after the rollout is valued
    ``last_value``. Without them the rollout is one episode that ends at its last step.
    """
    if dones is None:
        dones = torch.zeros_like(rewards)
        dones[-1:] = 1.0
    if last_value is None:
        last_value = torch.zeros_like(values[0])
    horizon = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(last_value)
    for t in reversed(range(horizon)):
        next_value = last_value if t + 1 == horizon else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        last = delta + gamma * lam * not_done * last
        advantages[t] = last
    return advantages, advantages + values


def minibatches(
    n: int, size: int, generator: torch.Generator, *, drop_last: bool
) -> Iterator[torch.Tensor]:
    """Indices of one shuffled pass over ``n`` transitions, ``size`` at a time."""
    size = min(size, n)
    order = torch.randperm(n, generator=generator)
    stop = n - size + 1 if drop_last else n
    for start in range(0, stop, size):
        yield order[start : start + size]


@dataclass(frozen=True, slots=True)
class Surrogate:
    """The clipped surrogate loss of a minibatch and what it measured."""

    loss: torch.Tensor
    approx_kl: float
    """``mean((ratio - 1) - log ratio)``: the low-variance KL estimate."""
    clip_frac: float
    """Share of the transitions whose ratio left ``1 +- clip_coef``."""


def clipped_surrogate(
    new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip_coef: float
) -> Surrogate:
    """PPO's clipped surrogate on advantages normalised within the minibatch."""
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    with torch.no_grad():
        approx_kl = float(((ratio - 1.0) - log_ratio).mean())
        clip_frac = float(((ratio - 1.0).abs() > clip_coef).float().mean())
    adv = advantages
    if adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)).mean()
    return Surrogate(loss, approx_kl, clip_frac)


def value_loss(
    values: torch.Tensor,
    returns: torch.Tensor,
    *,
    clip_around: torch.Tensor | None = None,
    clip_coef: float = 0.0,
) -> torch.Tensor:
    """The critic's mean squared error; pessimistic over values clipped to ``clip_around +-
    clip_coef`` when ``clip_around`` (the rollout's values) is given (rl_games' clip_value)."""
    loss = (values - returns) ** 2
    if clip_around is not None:
        clipped = clip_around + torch.clamp(values - clip_around, -clip_coef, clip_coef)
        loss = torch.max(loss, (clipped - returns) ** 2)
    return loss.mean()


def gradient_step(
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    groups: Iterable[Iterable[nn.Parameter]],
    max_norm: float,
) -> None:
    """Back-propagate ``loss``, clip each group's gradient norm to ``max_norm``, step."""
    optimizer.zero_grad()
    torch.autograd.backward(loss)
    for params in groups:
        nn.utils.clip_grad_norm_(list(params), max_norm)
    optimizer.step()


def explained_variance(returns: torch.Tensor, values: torch.Tensor) -> float:
    """``1 - var(returns - values) / var(returns)``: 1 for a perfect critic, 0 if undefined."""
    var = float(returns.var()) if returns.numel() > 1 else 0.0
    return 1.0 - float((returns - values).var()) / var if var > 0 else 0.0


class Means:
    """Per-minibatch statistics of an update, averaged at its end."""

    def __init__(self) -> None:
        self._values: dict[str, list[float]] = {}

    def add(self, **values: float | torch.Tensor) -> None:
        """Record one minibatch's values (tensors are detached)."""
        for key, value in values.items():
            number = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
            self._values.setdefault(key, []).append(number)

    def means(self) -> dict[str, float]:
        """The mean of every key recorded."""
        return {key: float(np.mean(v)) for key, v in self._values.items()}
