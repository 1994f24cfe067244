"""How the policy acts: its action distribution, overall and by what the simulator knew.

Each part is written only when the replay has what it needs, and listed under ``skipped``
otherwise: the mean action per value of each categorical context label (``regime``, ``hour``,
``segment``...), the mean action per bin of the position held (``position``), the share of
states that traded (``trading`` == 1) and the holding time (``holding_time`` per state, or
else the lengths of the runs of a same-signed non-zero ``position`` within an episode).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from agents.analysis.replay import F32, Replay
from agents.analysis.views import (
    ViewResult,
    categorical_labels,
    floats,
    label_values,
    new_figure,
)

BINS = 20
"""Histogram bins of a continuous action component."""

POSITION_BINS = 10
"""Equal-width bins of the position held."""

MAX_LEVELS = 50
"""An integer-valued action with at most this many levels is shown as level counts."""


def _distribution(actions: F32) -> dict[str, Any]:
    """Level counts of a discrete action, else a histogram, per component."""
    discrete = bool(np.all(actions == np.round(actions))) and len(np.unique(actions)) <= MAX_LEVELS
    parts = []
    for a in range(actions.shape[1]):
        column = actions[:, a]
        if discrete:
            levels, counts = np.unique(column, return_counts=True)
            parts.append({"levels": floats(levels), "counts": counts.tolist()})
        else:
            counts, edges = np.histogram(column, bins=BINS)
            parts.append({"edges": floats(edges), "counts": counts.tolist()})
    return {
        "discrete": discrete,
        "mean": floats(actions.mean(axis=0)),
        "std": floats(actions.std(axis=0)),
        "components": parts,
    }


def _by_label(actions: F32, values: npt.NDArray[Any]) -> dict[str, Any]:
    """Mean action and count per value of a label."""
    keys = np.asarray(label_values(values))
    out: dict[str, Any] = {}
    for key in sorted(set(keys.tolist()), key=_sort_key):
        mask = keys == key
        out[key] = {"count": int(mask.sum()), "mean_action": floats(actions[mask].mean(axis=0))}
    return out


def _sort_key(key: str) -> tuple[int, float, str]:
    """Numeric labels in numeric order, then the others alphabetically."""
    try:
        return (0, float(key), "")
    except ValueError:
        return (1, 0.0, key)


def _by_position(actions: F32, position: npt.NDArray[Any]) -> dict[str, Any]:
    """Mean action per equal-width bin of the position held (empty bins left out)."""
    position = np.asarray(position, dtype=np.float64)
    low, high = float(position.min()), float(position.max())
    edges = np.linspace(low, high, POSITION_BINS + 1) if high > low else np.array([low, high])
    which = np.clip(np.searchsorted(edges, position, side="right") - 1, 0, len(edges) - 2)
    centres, counts, means = [], [], []
    for b in range(len(edges) - 1):
        mask = which == b
        if mask.any():
            centres.append((edges[b] + edges[b + 1]) / 2)
            counts.append(int(mask.sum()))
            means.append(actions[mask].mean(axis=0))
    return {
        "edges": floats(edges),
        "centres": floats(centres),
        "counts": counts,
        "mean_action": floats(means),
    }


def _holding(replay: Replay) -> dict[str, Any] | None:
    """Holding times: given per state, or run lengths of a held position within episodes."""
    if "holding_time" in replay.context:
        times = np.asarray(replay.context["holding_time"], dtype=np.float64)
        source = "context holding_time"
    elif "position" in replay.context:
        sign = np.sign(np.asarray(replay.context["position"], dtype=np.float64))
        runs: list[int] = []
        length = 0
        for i in range(len(sign)):
            new_run = i == 0 or sign[i] != sign[i - 1] or replay.episode[i] != replay.episode[i - 1]
            if new_run and length:
                runs.append(length)
                length = 0
            if sign[i] != 0:
                length += 1
        if length:
            runs.append(length)
        times = np.asarray(runs, dtype=np.float64)
        source = "runs of a same-signed non-zero position"
    else:
        return None
    if len(times) == 0:
        return {"source": source, "count": 0, "mean": None, "median": None}
    counts, edges = np.histogram(times, bins=min(BINS, max(1, len(np.unique(times)))))
    return {
        "source": source,
        "count": len(times),
        "mean": float(times.mean()),
        "median": float(np.median(times)),
        "edges": floats(edges),
        "counts": counts.tolist(),
    }


def action_view(replay: Replay, *, seed: int = 0) -> ViewResult:
    """The action distribution, overall and by context label, position, trading and holding."""
    del seed  # nothing random: every state is used
    actions = np.asarray(replay.actions, dtype=np.float32).reshape(len(replay.observations), -1)
    names = replay.action_names
    labels = categorical_labels(replay)
    numbers: dict[str, Any] = {
        "n_states": len(actions),
        "action_names": list(names),
        "distribution": _distribution(actions),
        "by_label": {label: _by_label(actions, replay.context[label]) for label in labels},
    }
    skipped = [] if labels else ["categorical labels"]
    if "position" in replay.context:
        numbers["by_position"] = _by_position(actions, replay.context["position"])
    else:
        skipped.append("position")
    if "trading" in replay.context:
        trading = np.asarray(replay.context["trading"], dtype=np.float64)
        numbers["trade_frequency"] = float(np.mean(trading == 1))
    else:
        skipped.append("trading")
    holding = _holding(replay)
    if holding is not None:
        numbers["holding_time"] = holding
    else:
        skipped.append("holding_time")
    numbers["skipped"] = skipped

    panels = 1 + len(labels) + ("by_position" in numbers) + (holding is not None)
    figure = new_figure(4.0 * min(panels, 3), 3.2 * ((panels + 2) // 3))
    axes = list(np.atleast_1d(figure.subplots((panels + 2) // 3, min(panels, 3))).ravel())
    for ax in axes[panels:]:
        ax.set_visible(False)
    dist = numbers["distribution"]
    ax = axes[0]
    for a, part in enumerate(dist["components"]):
        if dist["discrete"]:
            ax.bar(
                np.asarray(part["levels"]) + 0.8 * a / len(names), part["counts"], 0.8 / len(names)
            )
        else:
            ax.stairs(part["counts"], part["edges"], label=names[a])
    ax.set_title("Action distribution", fontsize=9)
    if len(names) > 1:
        ax.legend(fontsize=6)
    for ax, label in zip(axes[1:], labels, strict=False):
        groups = numbers["by_label"][label]
        means = np.asarray([g["mean_action"] for g in groups.values()])
        x = np.arange(len(groups))
        for a in range(means.shape[1]):
            ax.bar(x + 0.8 * a / len(names), means[:, a], 0.8 / len(names), label=names[a])
        ax.set_xticks(x, list(groups), fontsize=6, rotation=45)
        ax.set_title(f"Mean action by {label}", fontsize=9)
    rest = axes[1 + len(labels) :]
    if "by_position" in numbers:
        ax = rest.pop(0)
        pos = numbers["by_position"]
        ax.plot(pos["centres"], pos["mean_action"], marker="o")
        ax.set_xlabel("position held")
        ax.set_title("Mean action by position", fontsize=9)
    if holding is not None and holding["count"]:
        ax = rest.pop(0)
        ax.stairs(holding["counts"], holding["edges"])
        ax.set_xlabel("holding time (steps)")
        ax.set_title("Holding time", fontsize=9)

    mean = ", ".join(f"{n} {m:.3g}" for n, m in zip(names, dist["mean"], strict=True))
    lines = [f"**Actions** over {len(actions)} states: mean {mean}."]
    for label in labels:
        groups = numbers["by_label"][label]
        items = list(groups.items())
        parts = ", ".join(f"{k} {np.mean(g['mean_action']):.3g}" for k, g in items[:8])
        parts += f" and {len(items) - 8} more" if len(items) > 8 else ""
        lines.append(f"Mean action by `{label}`: {parts}.")
        if len(lines) == 3:
            break
    extra = []
    if "trade_frequency" in numbers:
        extra.append(f"trades at {numbers['trade_frequency']:.1%} of states")
    if holding is not None and holding["mean"] is not None:
        extra.append(f"holds {holding['mean']:.1f} steps on average")
    if skipped:
        extra.append(f"not available: {', '.join(skipped)}")
    lines.append("; ".join(extra).capitalize() + "." if extra else "")
    return ViewResult("action", numbers, figure, "\n".join(line for line in lines if line))
