"""A report chart drawn as a PNG with matplotlib (Agg canvas, no pyplot state)."""

from __future__ import annotations

import itertools
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from telemetry.reports.document import Chart, Series

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
"""Colours of series that name none, in order."""


def draw_png(chart: Chart, path: Path) -> Path:
    """Draw ``chart`` into ``path`` (PNG, 1000x420 pixels)."""
    figure = Figure(figsize=(10, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = _bar_width(chart.x)
    for index, series in enumerate(chart.series):
        color = series.color or PALETTE[index % len(PALETTE)]
        kind = series.kind or chart.kind
        xs, ys = _points(chart.x, series)
        if kind == "bars":  # several bar series overlap: the histogram's never share a bin
            axes.bar(xs, ys, width=width, color=color, label=series.label)
        elif kind == "points":
            axes.scatter(xs, ys, s=9, color=color, alpha=0.6, label=series.label)
        else:
            axes.plot(xs, ys, color=color, linewidth=1.4, label=series.label)
    if chart.x_ticks is not None:
        axes.set_xticks(
            range(len(chart.x_ticks)), chart.x_ticks, rotation=30 if len(chart.x_ticks) > 8 else 0
        )
    axes.set_title(chart.title)
    axes.set_xlabel(chart.x_label)
    axes.set_ylabel(chart.y_label)
    axes.grid(alpha=0.3)
    if chart.legend and len(chart.series) > 1:
        axes.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _points(x: list[float], series: Series) -> tuple[list[float], list[float]]:
    """The series' points that have a value."""
    kept = [(a, b) for a, b in zip(x, series.y, strict=True) if b is not None]
    return [a for a, _ in kept], [b for _, b in kept]


def _bar_width(x: list[float]) -> float:
    gaps = [b - a for a, b in itertools.pairwise(x) if b > a]
    return 0.8 * (min(gaps) if gaps else 1.0)
