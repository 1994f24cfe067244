"""The four views of a trained policy, each a pure computation over a ``Replay`` plus a figure.

A view is ``def <name>_view(replay, *, seed=0) -> ViewResult``: the numbers behind its figure
(JSON-serialisable), the figure itself (Agg, never pyplot state) and a short markdown summary.
``VIEWS`` names them for the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from agents.analysis.replay import F32, Replay

BATCH_SIZE = 512
"""States in the seeded batch that integrated gradients and permutation importance use."""

MAX_CATEGORIES = 50
"""A context label with more distinct values than this is not categorical."""

NOT_CATEGORICAL = frozenset({"position", "trading", "holding_time", "budget_left"})
"""Context labels with their own treatment (or continuous), never grouped by value."""


@dataclass(frozen=True, slots=True)
class ViewResult:
    """What one view found: its numbers, its figure and a few lines saying what they show."""

    name: str
    """The view's name in ``VIEWS``."""
    numbers: dict[str, Any]
    """Every number behind the figure; ``json.dumps`` accepts it."""
    figure: Figure
    """The view's figure (Agg canvas)."""
    summary: str
    """Two to four markdown lines saying what the view shows, with its numbers."""


def new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas, so no pyplot state is touched."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def sample_indices(n: int, seed: int, size: int = BATCH_SIZE) -> npt.NDArray[np.int64]:
    """A fixed seeded subset of ``min(size, n)`` state indices, in increasing order."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(size, n), replace=False)).astype(np.int64)


def run_policy(replay: Replay, observations: F32) -> F32:
    """The policy's output on a batch of observations (n, F), without gradients, as numpy."""
    with torch.no_grad():
        out = replay.policy(torch.as_tensor(observations, dtype=torch.float32))
    return out.detach().cpu().numpy().astype(np.float32).reshape(len(observations), -1)


def categorical_labels(replay: Replay) -> list[str]:
    """Context labels that take a few discrete values (regime, hour, segment...), in order."""
    names = []
    for name, values in replay.context.items():
        array = np.asarray(values)
        if name in NOT_CATEGORICAL or array.shape != (len(replay.observations),):
            continue
        if array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.round(array))):
            continue
        if array.dtype.kind in "OUSbiuf" and len(np.unique(array)) <= MAX_CATEGORIES:
            names.append(name)
    return names


def label_values(values: npt.NDArray[Any]) -> list[str]:
    """Each state's label as a string key (numbers stay JSON objects); integral floats as ints."""
    array = np.asarray(values)
    if array.dtype.kind == "f":
        array = array.astype(np.int64)
    return [str(v) for v in array.tolist()]


def floats(values: Any) -> Any:
    """A numpy array or scalar as nested Python floats, NaN as None (strict JSON)."""
    array = np.asarray(values, dtype=np.float64)
    if np.all(np.isfinite(array)):
        return array.tolist()
    if array.ndim == 0:
        return None
    return [floats(v) for v in array]


# The views import ViewResult and the helpers above, so they are imported after them.
from agents.analysis.views.action import action_view  # noqa: E402
from agents.analysis.views.feature import feature_view  # noqa: E402
from agents.analysis.views.latent import latent_view  # noqa: E402
from agents.analysis.views.sensitivity import sensitivity_view  # noqa: E402

VIEWS: dict[str, Callable[..., ViewResult]] = {
    "feature": feature_view,
    "action": action_view,
    "latent": latent_view,
    "sensitivity": sensitivity_view,
}
"""Every view by the name the CLI takes."""

__all__ = [
    "VIEWS",
    "ViewResult",
    "action_view",
    "feature_view",
    "latent_view",
    "sensitivity_view",
]
