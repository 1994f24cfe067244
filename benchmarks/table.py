"""The printed table: per figure its value, anchor, ratio, goal and pass/fail."""

from __future__ import annotations

import math

from benchmarks.common import Figure, Report


def number(value: float | None, unit: str = "") -> str:
    """A compact human number with its unit."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    magnitude = abs(value)
    if magnitude >= 100_000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:,.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def ratio_text(figure: Figure) -> str:
    if figure.ratio is None:
        return "-"
    r = figure.ratio
    if math.isnan(r):
        return "nan"
    if r and r < 0.1:
        return f"1/{1 / r:,.0f}"
    return f"{r:.3g}x"


def verdict(figure: Figure) -> str:
    if figure.passed is None:
        return "info"
    return "PASS" if figure.passed else "FAIL"


def rows(report: Report) -> list[list[str]]:
    out = []
    for figure in report.figures.values():
        anchor = "-"
        if figure.anchor is not None:
            anchor = f"{number(figure.anchor, figure.unit)} ({figure.anchor_label})"
        out.append(
            [
                figure.key,
                number(figure.value, figure.unit),
                anchor,
                ratio_text(figure),
                figure.goal or "-",
                verdict(figure),
            ]
        )
    return out


def render(report: Report) -> str:
    """A plain-text table, then the titles and notes of the figures, then any errors."""
    header = ["figure", "value", "anchor (direct, same run)", "ratio", "goal", "pass"]
    body = rows(report)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in body:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    lines.append("")
    lines.append("ratio = median over repeats of value/anchor, each pair measured back to back")
    for figure in report.figures.values():
        text = f"  {figure.key}: {figure.title}"
        if figure.note:
            text += f" [{figure.note}]"
        lines.append(text)
    passed = [f for f in report.figures.values() if f.passed is True]
    failed = [f for f in report.figures.values() if f.passed is False]
    lines.append(f"\ngoals: {len(passed)} passed, {len(failed)} failed")
    for name, error in report.errors.items():
        lines.append(f"\nsection {name} failed:\n{error}")
    return "\n".join(lines)
