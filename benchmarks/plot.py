"""The scaling figure: hot-path cost and throughput against sinks, metrics and threads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

PLAIN = FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 10 else f"{value:g}")

PANELS = (
    ("sinks", "sinks attached (JSONL + counting sinks)"),
    ("metrics", "metrics per event"),
    ("threads", "publishing threads"),
)


def plot_scaling(results: dict[str, Any], path: Path) -> None:
    """Three panels, each with us per bus.log (left axis) and events/s delivered (right axis)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), constrained_layout=True)
    for ax, (name, label) in zip(axes, PANELS, strict=True):
        data = results.get(name)
        if not data:
            ax.set_visible(False)
            continue
        x = data["x"]
        log_scale = name == "metrics"
        ax.plot(x, data["hot_us"], "o-", color="tab:blue", label="bus.log cost (us/call)")
        ax.set_xscale("log", base=10 if log_scale else 2)
        ax.set_xticks(x, [str(v) for v in x])
        ax.minorticks_off()
        ax.set_xlabel(label)
        _value_axis(ax, "us per bus.log (median)", "tab:blue", log_scale)
        ax.grid(True, alpha=0.3)
        twin = ax.twinx()
        twin.plot(x, data["events_per_s"], "s--", color="tab:orange", label="events/s delivered")
        _value_axis(twin, "events/s until delivered (median)", "tab:orange", log_scale)
        ax.set_title(f"scaling with {name}")
        lines = ax.get_lines() + twin.get_lines()
        ax.legend(lines, [line.get_label() for line in lines], loc="best", fontsize=8)
    fig.suptitle("rltelemetry bus: hot path and throughput (JSON Lines durable log attached)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _value_axis(ax: Any, label: str, color: str, log_scale: bool) -> None:
    """Label, colour and scale one y axis: log with 1-2-5 ticks, or linear from 0."""
    ax.set_ylabel(label, color=color)
    ax.tick_params(axis="y", labelcolor=color)
    if log_scale:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(PLAIN)
