"""The policy's last hidden layer over the visited states, projected to two dimensions.

PCA (scikit-learn, full SVD) of ``replay.hidden`` on every state; UMAP would join it if
``umap`` imported, but it is not a dependency, so only PCA is computed. The scatter is
coloured three ways: by regime (or the first categorical context label, else the episode),
by return to go and by the first action component.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA  # type: ignore[import-untyped]  # sklearn ships no stubs

from agents.analysis.replay import Replay
from agents.analysis.views import (
    ViewResult,
    categorical_labels,
    floats,
    label_values,
    new_figure,
)


def _correlation(a: Any, b: Any) -> float | None:
    """Pearson correlation, None when either side is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def latent_view(replay: Replay, *, seed: int = 0) -> ViewResult:
    """PCA of the hidden activations, scattered by regime, return to go and first action."""
    with torch.no_grad():
        hidden = replay.hidden(torch.as_tensor(replay.observations, dtype=torch.float32))
    activations = hidden.detach().cpu().numpy().astype(np.float64)
    n, h = activations.shape
    k = min(2, n, h)
    pca = PCA(n_components=k, svd_solver="full", random_state=seed)
    points = pca.fit_transform(activations)
    if k < 2:
        points = np.pad(points, ((0, 0), (0, 2 - k)))
    actions = np.asarray(replay.actions, np.float64).reshape(n, -1)
    rtg = np.asarray(replay.returns_to_go, np.float64)

    labels = categorical_labels(replay)
    label = "regime" if "regime" in labels else (labels[0] if labels else "episode")
    keys = label_values(replay.context[label] if label != "episode" else replay.episode)
    groups = sorted(set(keys))
    centroids = {g: floats(points[np.asarray(keys) == g].mean(axis=0)) for g in groups}

    numbers: dict[str, Any] = {
        "n_states": n,
        "hidden_size": h,
        "method": "pca",
        "umap": "skipped: umap is not installed",
        "explained_variance_ratio": floats(pca.explained_variance_ratio_),
        "points": floats(points),
        "colour_label": label,
        "label_centroids": centroids,
        "correlation": {
            "pc1_return_to_go": _correlation(points[:, 0], rtg),
            "pc2_return_to_go": _correlation(points[:, 1], rtg),
            "pc1_first_action": _correlation(points[:, 0], actions[:, 0]),
            "pc2_first_action": _correlation(points[:, 1], actions[:, 0]),
        },
    }

    figure = new_figure(13.0, 4.0)
    ax_label, ax_rtg, ax_action = figure.subplots(1, 3)
    for g in groups:
        mask = np.asarray(keys) == g
        ax_label.scatter(points[mask, 0], points[mask, 1], s=3, label=g)
    if len(groups) <= 12:
        ax_label.legend(fontsize=6, markerscale=3)
    ax_label.set_title(f"PCA of hidden layer, by {label}", fontsize=9)
    for ax, values, title in (
        (ax_rtg, rtg, "by return to go"),
        (ax_action, actions[:, 0], f"by {replay.action_names[0]}"),
    ):
        drawn = ax.scatter(points[:, 0], points[:, 1], c=values, s=3, cmap="viridis")
        figure.colorbar(drawn, ax=ax)
        ax.set_title(title, fontsize=9)
    ratio = numbers["explained_variance_ratio"]
    for ax in (ax_label, ax_rtg, ax_action):
        ax.set_xlabel(f"PC1 ({ratio[0]:.0%})")
        ax.set_ylabel(f"PC2 ({ratio[1]:.0%})" if len(ratio) > 1 else "PC2")

    corr = numbers["correlation"]
    summary = "\n".join(
        [
            f"**Latent space**: PCA of the {h}-unit hidden layer over {n} states; PC1 and PC2 "
            f"explain {', '.join(f'{r:.1%}' for r in ratio)} of its variance.",
            f"Correlation with return to go: PC1 {_fmt(corr['pc1_return_to_go'])}, "
            f"PC2 {_fmt(corr['pc2_return_to_go'])}; with `{replay.action_names[0]}`: "
            f"PC1 {_fmt(corr['pc1_first_action'])}, PC2 {_fmt(corr['pc2_first_action'])}.",
            f"Coloured by `{label}` ({len(groups)} values).",
        ]
    )
    return ViewResult("latent", numbers, figure, summary)


def _fmt(value: float | None) -> str:
    """A correlation for the summary."""
    return "n/a" if value is None else f"{value:.2f}"
