"""A report as markdown, its charts as PNG files beside it, referenced by relative paths."""

from __future__ import annotations

from pathlib import Path

from telemetry.reports.document import Chart, Report, Table, format_number
from telemetry.reports.figures import draw_png


def write_markdown(report: Report, output_dir: Path, stem: str) -> Path:
    """Write ``stem.md`` and ``stem-<chart id>.png`` per chart into ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# {report.title}", "", f"_{report.source}_", ""]
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        if section.text:
            lines += [section.text, ""]
        for item in section.items:
            if isinstance(item, Table):
                lines += table_lines(item)
            else:
                lines += _chart_lines(item, output_dir, stem)
    path = output_dir / f"{stem}.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def table_lines(table: Table) -> list[str]:
    """A pipe table with a bold title line; numbers right-aligned."""
    if not table.rows:
        return [f"**{table.title}**: none.", ""]
    numeric = [
        all(isinstance(row[i], int | float) or row[i] is None for row in table.rows)
        for i in range(len(table.columns))
    ]
    rule = ["---:" if n else "---" for n in numeric]
    lines = [f"**{table.title}**", "", _row(table.columns), _row(rule)]
    lines += [_row([format_number(cell) for cell in row]) for row in table.rows]
    return [*lines, ""]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def _chart_lines(chart: Chart, output_dir: Path, stem: str) -> list[str]:
    name = f"{stem}-{chart.id}.png"
    draw_png(chart, output_dir / name)
    return [f"![{chart.title}]({name})", ""]
