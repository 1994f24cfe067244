"""A report as one self-contained HTML file: its data, uPlot and the report script inlined.

The file loads nothing: the vendored uPlot (``telemetry/dashboard/static/vendor``),
its stylesheet, ``static/report.js`` and the report's data (JSON in a
``<script type="application/json">``) are all inside it, so it opens offline
from disk and draws its charts there.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path

from telemetry.reports.document import Report

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 16px 24px;
       color: #1d232a; background: #fff; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px;
     border-bottom: 1px solid #dde2e8; padding-bottom: 4px; }
.source { color: #5b6673; font-style: italic; }
table { border-collapse: collapse; margin: 8px 0 16px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #dde2e8; padding: 3px 8px; text-align: left; }
td.number { text-align: right; } caption { text-align: left; font-weight: 600; padding: 4px 0; }
.chart { margin: 12px 0 20px; } .chart-title { font-weight: 600; margin-bottom: 4px; }
"""


def _asset(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def _script_text(text: str) -> str:
    """``text`` safe inside a ``<script>`` element (no early ``</script>``)."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def write_html(report: Report, output_dir: Path, stem: str) -> Path:
    """Write ``stem.html`` into ``output_dir``: the whole report in one file."""
    uplot_js = _asset("telemetry.dashboard", "static/vendor/uplot/uPlot.iife.min.js")
    uplot_css = _asset("telemetry.dashboard", "static/vendor/uplot/uPlot.min.css")
    script = _asset("telemetry.reports", "static/report.js")
    data = json.dumps(report.data(), allow_nan=False, separators=(",", ":"))
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(report.title)}</title>
<style>{uplot_css}</style>
<style>{STYLE}</style>
</head>
<body>
<main id="report" data-testid="report"></main>
<script type="application/json" id="report-data">{_script_text(data)}</script>
<script>{_script_text(uplot_js)}</script>
<script>{_script_text(script)}</script>
</body>
</html>
"""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{stem}.html"
    path.write_text(page, encoding="utf-8")
    return path
