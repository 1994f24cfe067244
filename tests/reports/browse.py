"""Opens HTML reports in Debian's Chromium, offline, and prints what each page drew, as JSON.

Run as a process of its own (``python -m tests.reports.browse FILE...`` from the
repository): Playwright's sync API allows one session per thread, and the dashboard's
tests keep theirs open for the whole test session.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Route, sync_playwright

from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS

INK = """() => [...document.querySelectorAll('.chart canvas')].map(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })"""


def inspect(page: Page, path: Path) -> dict[str, Any]:
    """Requests, errors, chart ids, drawn pixels per canvas and plotted data of one report."""
    requested: list[str] = []
    errors: list[str] = []

    def refuse(route: Route) -> None:
        requested.append(route.request.url)
        route.abort()

    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda request: requested.append(request.url))
    page.context.route(re.compile(r"^(?!file:).*"), refuse)
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-drawn]", timeout=10_000)
    return {
        "requested": requested,
        "errors": errors,
        "data": page.evaluate("JSON.parse(document.getElementById('report-data').textContent)"),
        "charts": page.evaluate("Object.keys(window.reportCharts)"),
        "plotted": page.evaluate(
            "Object.fromEntries(Object.entries(window.reportCharts).map(([k, u]) => [k, u.data]))"
        ),
        "ink": page.evaluate(INK),
        "tables": page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('table')].map("
            "t => [t.dataset.testid, t.querySelectorAll('tr').length]))"
        ),
    }


def main(paths: list[str]) -> None:
    found = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for path in paths:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
            found[path] = inspect(context.new_page(), Path(path))
            context.close()
        browser.close()
    print(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[1:])
