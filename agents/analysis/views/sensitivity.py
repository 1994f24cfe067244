"""How the policy reacts to its inputs: partial dependence and local gradients.

The features shown are the most important price features (``replay.price_features``, at most
``MAX_PRICE``), then the most important others, ``MAX_FEATURES`` in all; importance is the
mean |d action / d input| times the feature's std over a seeded batch. Each is shifted by
``SHOCKS`` shocks evenly spaced over ±``SHOCK_STDS`` of its std at every state, and the mean
action recorded (partial dependence). Local gradients d action / d input (torch autograd) are
taken at typical states: the per-feature quantiles ``QUANTILES`` of the observations (0.5 is
the median state).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.analysis.replay import F32, Replay
from agents.analysis.views import ViewResult, floats, new_figure, run_policy, sample_indices

MAX_FEATURES = 6
"""Features with a partial-dependence curve."""

MAX_PRICE = 4
"""At most this many of them are price features, so the others get a curve too."""

SHOCKS = 21
"""Points per curve."""

SHOCK_STDS = 3.0
"""Half-width of the shock range, in stds of the feature."""

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
"""The typical states for local gradients: these per-feature quantiles of the observations."""


def _jacobian(replay: Replay, states: F32) -> F32:
    """d action / d input at each state, shape (n, A, F) (the policy acts row by row)."""
    x = torch.as_tensor(states, dtype=torch.float32).clone().requires_grad_(True)
    out = replay.policy(x).reshape(len(states), -1)
    rows = []
    for a in range(out.shape[1]):
        (grad,) = torch.autograd.grad(out[:, a].sum(), x, retain_graph=a + 1 < out.shape[1])
        rows.append(grad.detach().cpu().numpy())
    return np.stack(rows, axis=1).astype(np.float32)


def _choose(replay: Replay, importance: F32) -> list[int]:
    """The most important price features, then the most important others."""
    order = [int(i) for i in np.argsort(-importance, kind="stable")]
    price = set(replay.price_features)
    chosen = [i for i in order if i in price][:MAX_PRICE]
    chosen += [i for i in order if i not in price][: MAX_FEATURES - len(chosen)]
    return chosen


def sensitivity_view(replay: Replay, *, seed: int = 0) -> ViewResult:
    """Partial-dependence curves of the most important inputs and gradients at typical states."""
    obs = replay.observations
    names = replay.feature_names
    std = obs.std(axis=0).astype(np.float32)
    batch = obs[sample_indices(len(obs), seed)]
    importance = np.abs(_jacobian(replay, batch)).mean(axis=(0, 1)) * std
    chosen = _choose(replay, importance)

    units = np.linspace(-SHOCK_STDS, SHOCK_STDS, SHOCKS).astype(np.float32)
    curves: dict[str, Any] = {}
    for j in chosen:
        shocks = units * std[j]
        shifted = np.repeat(obs[None], SHOCKS, axis=0)  # (S, N, F)
        shifted[:, :, j] += shocks[:, None]
        out = run_policy(replay, shifted.reshape(-1, obs.shape[1])).reshape(SHOCKS, len(obs), -1)
        mean = out.mean(axis=1)
        curves[names[j]] = {
            "index": j,
            "price_feature": j in replay.price_features,
            "std": float(std[j]),
            "shocks": floats(shocks),
            "mean_action": floats(mean),
            "range": floats(mean.max(axis=0) - mean.min(axis=0)),
        }

    states = np.quantile(obs, QUANTILES, axis=0).astype(np.float32)
    gradients = _jacobian(replay, states)
    numbers: dict[str, Any] = {
        "n_states": len(obs),
        "importance_batch_size": len(batch),
        "importance": floats(importance),
        "feature_names": list(names),
        "action_names": list(replay.action_names),
        "shock_stds": floats(units),
        "curves": curves,
        "local": {
            "quantiles": list(QUANTILES),
            "states": floats(states),
            "gradients": floats(gradients),
        },
    }

    figure = new_figure(12.0, 3.0 * ((len(chosen) + 2) // 3 + 1))
    rows = (len(chosen) + 2) // 3 + 1
    axes = list(np.atleast_1d(figure.subplots(rows, 3)).ravel())
    for ax, (name, curve) in zip(axes, curves.items(), strict=False):
        lines = ax.plot(units, curve["mean_action"])
        if len(replay.action_names) > 1:
            ax.legend(lines, replay.action_names, fontsize=6)
        ax.set_title(f"{name}{' (price)' if curve['price_feature'] else ''}", fontsize=9)
        ax.set_xlabel("shock (std)")
        ax.set_ylabel("mean action")
    for ax in axes[len(curves) : -3]:
        ax.set_visible(False)
    heat = axes[-3]
    median = gradients[QUANTILES.index(0.5)][:, chosen]
    drawn = heat.imshow(median, aspect="auto", cmap="coolwarm")
    heat.set_xticks(range(len(chosen)), [names[j] for j in chosen], fontsize=6, rotation=45)
    heat.set_yticks(range(len(replay.action_names)), replay.action_names, fontsize=6)
    heat.set_title("d action / d input at the median state", fontsize=9)
    figure.colorbar(drawn, ax=heat)
    for ax in axes[-2:]:
        ax.set_visible(False)

    widest = max(curves.items(), key=lambda kv: max(kv[1]["range"]))
    summary = "\n".join(
        [
            f"**Sensitivity** over {len(obs)} states to shocks of ±{SHOCK_STDS:g} std: "
            f"`{widest[0]}` moves the mean action most (range {max(widest[1]['range']):.3g}).",
            "Curve ranges: "
            + ", ".join(f"`{n}` {max(c['range']):.3g}" for n, c in curves.items())
            + ".",
            f"Largest |gradient| at the median state: {float(np.abs(median).max()):.3g}.",
        ]
    )
    return ViewResult("sensitivity", numbers, figure, summary)
