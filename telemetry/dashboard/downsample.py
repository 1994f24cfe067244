"""Series for a chart: the points in a range, downsampled to the chart's width when many."""

from __future__ import annotations

from typing import Any

import numpy as np
from tsdownsample import MinMaxLTTBDownsampler, NaNMinMaxLTTBDownsampler

from telemetry.dashboard.columns import Column, Floats

FULL_FACTOR = 4
"""A range holding at most this many points per pixel is served at full resolution..."""
FULL_POINTS = 20_000
"""... and so is any range of at most this many points (uPlot draws them in milliseconds)."""


def window(
    x: Floats, y: Floats, width: int, start: float | None, end: float | None
) -> tuple[Floats, Floats, int, bool]:
    """``(x, y, points in range, downsampled)``: every point in ``[start, end]``, or ~``width``.

    Downsampling is min/max-LTTB (tsdownsample), and the range's own lowest and
    highest points are always kept, so a spike never disappears from a chart.
    One point either side of the range is kept so lines reach the chart's edges.
    """
    if x.size and np.any(np.diff(x) < 0):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
    lo = 0 if start is None else max(int(np.searchsorted(x, start, "left")) - 1, 0)
    hi = x.size if end is None else min(int(np.searchsorted(x, end, "right")) + 1, x.size)
    x, y = x[lo:hi], y[lo:hi]
    total = int(x.size)
    if total <= max(width * FULL_FACTOR, FULL_POINTS):
        return x, y, total, False
    finite = np.isfinite(y)
    downsampler = (
        MinMaxLTTBDownsampler() if finite.all() else NaNMinMaxLTTBDownsampler()  # type: ignore[no-untyped-call]
    )
    keep = downsampler.downsample(x, y, n_out=max(width - 2, 3))
    extremes = []
    if finite.any():
        masked = np.where(finite, y, np.nan)
        extremes = [int(np.nanargmin(masked)), int(np.nanargmax(masked))]
    keep = np.unique(np.concatenate([keep.astype(np.int64), np.array(extremes, np.int64)]))
    return x[keep], y[keep], total, True


def as_list(values: Floats) -> list[float | None]:
    """JSON-ready: NaN and infinities become null (a gap in the chart)."""
    return [None if not np.isfinite(v) else float(v) for v in values.tolist()]


def column_series(
    column: Column, axis: str, width: int, start: float | None, end: float | None
) -> dict[str, Any]:
    """One key's points on x = ``step`` or ``time``, as the series endpoint returns them."""
    x = column.time if axis == "time" else column.step
    xs, ys, total, downsampled = window(x, column.value, width, start, end)
    return {
        "x": as_list(xs),
        "y": as_list(ys),
        "total": total,
        "downsampled": downsampled,
        "axis": column.axis,
    }
