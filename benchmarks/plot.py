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
        ax.plot(x, data["hot_us"], "o-", color="tab:blue", label="bus.log cost (us/call)")
        ax.set_xscale("log", base=10 if name == "metrics" else 2)
        ax.set_xticks(x, [str(v) for v in x])
        ax.minorticks_off()
        ax.set_xlabel(label)
        ax.set_ylabel("us per bus.log (median)", color="tab:blue")
        ax.tick_params(axis="y", labelcolor="tab:blue")
        if name == "metrics":
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_minor_formatter(NullFormatter())
        else:
            ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(PLAIN)
        ax.grid(True, alpha=0.3)
        twin = ax.twinx()
        twin.plot(x, data["events_per_s"], "s--", color="tab:orange", label="events/s delivered")
        twin.set_ylabel("events/s until delivered (median)", color="tab:orange")
        twin.tick_params(axis="y", labelcolor="tab:orange")
        if name == "metrics":
            twin.set_yscale("log")
            twin.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            twin.yaxis.set_minor_formatter(NullFormatter())
        else:
            twin.set_ylim(bottom=0)
        twin.yaxis.set_major_formatter(PLAIN)
        ax.set_title(f"scaling with {name}")
        lines = ax.get_lines() + twin.get_lines()
        ax.legend(lines, [line.get_label() for line in lines], loc="best", fontsize=8)
    fig.suptitle("rltelemetry bus: hot path and throughput (JSON Lines durable log attached)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
