"""What a report holds, apart from how it is drawn: sections of charts, tables and text.

Each report kind builds one ``Report``; the markdown writer draws its charts
with matplotlib, the HTML writer hands the same data (``Report.data()``) to the
page's script, which draws them with uPlot, so both formats show the same
views from the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

ChartKind = Literal["line", "bars", "points"]
"""Lines through the points, bars at the x values, or markers only (a scatter)."""

Cell = str | int | float | None
"""A table cell: text, a number (formatted by the writer), or empty."""


@dataclass(frozen=True, slots=True)
class Series:
    """One plotted series, its values aligned with its chart's ``x`` (``None``: no point)."""

    label: str
    y: list[float | None]
    color: str | None = None
    """A ``#rrggbb`` colour, or the writer's palette."""
    kind: ChartKind | None = None
    """Drawn unlike its chart (markers on a line chart); ``None``: as the chart."""


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart over one shared x axis (sorted ascending, as uPlot needs)."""

    id: str
    """File stem of the PNG and element id in the page: letters, digits, dashes."""
    title: str
    x: list[float]
    series: list[Series]
    kind: ChartKind = "line"
    x_label: str = ""
    y_label: str = ""
    x_ticks: list[str] | None = None
    """Category names: x is 0..n-1 and each tick shows its name (hours, sides, axes)."""
    legend: bool = True


@dataclass(frozen=True, slots=True)
class Table:
    """A titled table; numbers are formatted by the writer."""

    title: str
    columns: list[str]
    rows: list[list[Cell]]


Item = Chart | Table


@dataclass(slots=True)
class Section:
    """A heading, a paragraph and its charts and tables, in order."""

    title: str
    text: str = ""
    items: list[Item] = field(default_factory=list)


@dataclass(slots=True)
class Report:
    """A whole report: title, where its numbers come from, its sections."""

    title: str
    source: str
    """One line naming the logs it was built from."""
    sections: list[Section] = field(default_factory=list)

    def charts(self) -> list[Chart]:
        return [item for s in self.sections for item in s.items if isinstance(item, Chart)]

    def data(self) -> dict[str, Any]:
        """The report as JSON-ready data for the HTML page (cells as the markdown shows them)."""
        return {
            "title": self.title,
            "source": self.source,
            "sections": [
                {"title": s.title, "text": s.text, "items": [_item(i) for i in s.items]}
                for s in self.sections
            ],
        }


def _item(item: Item) -> dict[str, Any]:
    if isinstance(item, Table):
        return {
            "type": "table",
            "title": item.title,
            "columns": item.columns,
            "rows": [[format_number(c) for c in row] for row in item.rows],
        }
    return {
        "type": "chart",
        "id": item.id,
        "title": item.title,
        "kind": item.kind,
        "x": item.x,
        "x_label": item.x_label,
        "y_label": item.y_label,
        "x_ticks": item.x_ticks,
        "legend": item.legend,
        "series": [
            {
                "label": s.label,
                "y": [_finite_or_none(v) for v in s.y],
                "color": s.color,
                "kind": s.kind or item.kind,
            }
            for s in item.series
        ],
    }


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def format_number(value: Cell) -> str:
    """A cell as text: 6 significant digits, thousands apart, NaN as n/a."""
    if value is None:
        return ""
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.6g}"
