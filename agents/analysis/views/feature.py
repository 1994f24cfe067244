"""Feature importance: what the policy looks at, by integrated gradients and by permutation.

Integrated gradients (Captum) attribute each action component, from the mean observation
as baseline, over a seeded batch of states; a feature's importance is its mean |attribution|
averaged over the batch and the action components. Permutation shuffles one feature's column
across the same batch (seeded) and measures the mean |change in action|; with
``replay.evaluate`` it also replays the episodes with that feature replaced, in every
observation the policy sees, by a seeded draw from its values over the replay (a shuffle one
observation at a time), and measures the drop in mean episode return.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from captum.attr import IntegratedGradients  # type: ignore[import-untyped]  # captum ships no stubs
from scipy.stats import spearmanr  # type: ignore[import-untyped]  # scipy ships no stubs

from agents.analysis.replay import F32, Replay
from agents.analysis.views import ViewResult, floats, new_figure, run_policy, sample_indices

IG_STEPS = 64
"""Integration steps (Gauss-Legendre) of integrated gradients."""

TOP = 20
"""Features shown per ranking in the figure."""


def _integrated_gradients(
    replay: Replay, batch: torch.Tensor, baseline: torch.Tensor
) -> tuple[F32, dict[str, Any]]:
    """Attributions (A, n, F) of each action component, and the completeness check."""
    ig = IntegratedGradients(replay.policy)
    with torch.no_grad():
        delta_out = (replay.policy(batch) - replay.policy(baseline)).reshape(len(batch), -1)
    attributions = []
    for a in range(delta_out.shape[1]):
        attr = ig.attribute(batch, baselines=baseline, target=a, n_steps=IG_STEPS)
        attributions.append(attr.detach().cpu().numpy())
    attr_all = np.stack(attributions).astype(np.float32)
    sums = attr_all.sum(axis=2).T.astype(np.float64)  # (n, A)
    diff = delta_out.numpy().astype(np.float64)
    error = np.abs(sums - diff)
    scale = float(np.mean(np.abs(diff)))
    completeness = {
        "max_abs_error": float(error.max()),
        "mean_abs_output_change": scale,
        # Relative to the typical output change: a state whose output barely moves from the
        # baseline would make a per-state ratio meaningless.
        "max_rel_error": float(error.max() / scale) if scale > 0 else 0.0,
    }
    return attr_all, completeness


def _numpy_policy(replay: Replay) -> Callable[[F32], F32]:
    """The policy as numpy obs (..., F) -> output (..., A)."""

    def act(obs: F32) -> F32:
        flat = np.asarray(obs, dtype=np.float32).reshape(-1, obs.shape[-1])
        out = run_policy(replay, flat)
        return out.reshape(*obs.shape[:-1], out.shape[-1])

    return act


def _return_drops(replay: Replay, seed: int) -> tuple[float, F32] | None:
    """Mean episode return with the policy as is, and its drop with each feature replaced."""
    if replay.evaluate is None:
        return None
    act = _numpy_policy(replay)
    base = replay.evaluate(act)
    drops = np.zeros(replay.observations.shape[1], np.float32)
    for j in range(len(drops)):
        column = replay.observations[:, j].copy()
        rng = np.random.default_rng([seed, j])

        def shuffled(
            obs: F32, j: int = j, column: F32 = column, rng: np.random.Generator = rng
        ) -> F32:
            obs = np.array(obs, dtype=np.float32, copy=True)
            obs[..., j] = rng.choice(column, size=obs.shape[:-1])
            return act(obs)

        drops[j] = base - replay.evaluate(shuffled)
    return float(base), drops


def _spearman(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float | None:
    """Spearman rank correlation, None when a ranking is constant (no order to compare)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


def feature_view(replay: Replay, *, seed: int = 0) -> ViewResult:
    """Integrated-gradients and permutation importance of every feature, side by side."""
    obs = replay.observations
    names = replay.feature_names
    idx = sample_indices(len(obs), seed)
    batch_np = obs[idx]
    batch = torch.as_tensor(batch_np, dtype=torch.float32)
    baseline = torch.as_tensor(obs.mean(axis=0, keepdims=True), dtype=torch.float32)

    attributions, completeness = _integrated_gradients(replay, batch, baseline)
    ig_importance = np.abs(attributions).mean(axis=(0, 1))

    rng = np.random.default_rng(seed)
    n, f = batch_np.shape
    permuted = np.repeat(batch_np[None], f, axis=0)  # (F, n, F)
    for j in range(f):
        permuted[j, :, j] = batch_np[rng.permutation(n), j]
    base_action = run_policy(replay, batch_np)
    moved = run_policy(replay, permuted.reshape(f * n, f)).reshape(f, n, -1)
    perm_importance = np.abs(moved - base_action[None]).mean(axis=(1, 2))

    drops = _return_drops(replay, seed)
    rankings: dict[str, npt.NDArray[Any]] = {
        "integrated_gradients": ig_importance,
        "permutation_action": perm_importance,
    }
    if drops is not None:
        rankings["permutation_return"] = drops[1]

    numbers: dict[str, Any] = {
        "batch_size": int(n),
        "feature_names": list(names),
        "action_names": list(replay.action_names),
        "ig": {
            "baseline": "mean observation over all states",
            "target": "each action component separately; importance averages over components",
            "n_steps": IG_STEPS,
            "mean_abs_attribution": floats(ig_importance),
            "mean_abs_attribution_per_action": floats(np.abs(attributions).mean(axis=1)),
            "completeness": completeness,
        },
        "permutation": {
            "mean_abs_action_change": floats(perm_importance),
            "mean_return": None if drops is None else drops[0],
            "return_drop": None if drops is None else floats(drops[1]),
        },
        "ranking": {
            key: [names[i] for i in np.argsort(-v, kind="stable")] for key, v in rankings.items()
        },
        "spearman": {
            "ig_vs_permutation_action": _spearman(ig_importance, perm_importance),
            "ig_vs_permutation_return": None
            if drops is None
            else _spearman(ig_importance, drops[1]),
            "permutation_action_vs_return": (
                None if drops is None else _spearman(perm_importance, drops[1])
            ),
        },
    }

    figure = new_figure(5.0 * len(rankings), 0.3 * min(TOP, f) + 1.5)
    titles = {
        "integrated_gradients": "Integrated gradients: mean |attribution|",
        "permutation_action": "Permutation: mean |Δ action|",
        "permutation_return": "Permutation: drop in mean return",
    }
    for ax, (key, values) in zip(figure.subplots(1, len(rankings)), rankings.items(), strict=True):
        top = np.argsort(-values, kind="stable")[:TOP][::-1]
        ax.barh([names[i] for i in top], values[top], color="tab:blue")
        ax.set_title(titles[key], fontsize=9)
        ax.tick_params(axis="y", labelsize=7)

    rho = numbers["spearman"]["ig_vs_permutation_action"]
    lines = [
        f"**Feature importance** over {n} states: integrated gradients rank "
        f"`{numbers['ranking']['integrated_gradients'][0]}` first, permutation "
        f"`{numbers['ranking']['permutation_action'][0]}` first "
        f"(Spearman {'n/a' if rho is None else f'{rho:.2f}'}).",
        f"IG completeness: max error {completeness['max_abs_error']:.2g} "
        f"({completeness['max_rel_error']:.2%} of the mean output change).",
    ]
    if drops is not None:
        lines.append(
            f"Shuffling `{numbers['ranking']['permutation_return'][0]}` costs the most return: "
            f"{float(drops[1].max()):.3g} of {drops[0]:.3g}."
        )
    return ViewResult("feature", numbers, figure, "\n".join(lines))
