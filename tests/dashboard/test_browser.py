"""The dashboard in a real headless Chromium: what a user sees, read back from the page."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from telemetry.events import Metrics
from telemetry.reader import LogReader
from tests.dashboard.conftest import LiveRun, make_run, screenshot, write_big_log

KEY = "episode/reward"
CHART = f'[data-testid="chart"][data-key="{KEY}"][data-drawn="true"]'


def chart_data(page: Any, key: str = KEY) -> list[dict[str, Any]]:
    """The series a chart was handed, as the page holds them."""
    data: list[dict[str, Any]] = page.evaluate(f"window.__charts[{key!r}].__chartData")
    return data


def log_points(folder: Path, key: str = KEY) -> tuple[list[float], list[float]]:
    steps, values = [], []
    for event in LogReader(folder):
        if isinstance(event, Metrics) and key in event.values:
            steps.append(float(event.step))
            values.append(float(event.values[key]))
    return steps, values


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Two finished runs written by the real bus: different lr, 60 and 40 steps."""
    root = tmp_path / "runs"
    make_run(root / "run-a", "aaaa", steps=60, config={"lr": 0.001}, tags=("base",))
    make_run(root / "run-b", "bbbb", steps=40, config={"lr": 0.01}, group="g1", shift=-1.0)
    return root


def test_runs_table_lists_the_runs(serve: Callable[..., str], runs: Path, page: Any) -> None:
    """The runs table shows both runs with their status and last values, and filters."""
    page.goto(serve(runs))
    page.wait_for_selector('[data-testid="run-row"]', timeout=10_000)
    rows = page.locator('[data-testid="run-row"]')
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.id)")) == ["run-a", "run-b"]
    assert page.locator('[data-testid="run-status"]').all_inner_texts() == ["finished"] * 2
    assert "aaaa" in page.locator('[data-id="run-a"]').inner_text()
    screenshot(page, "runs")
    page.fill('[data-testid="runs-filter"]', "g1")
    assert page.locator('[data-testid="run-row"]').count() == 1


def test_chart_values_equal_the_log(serve: Callable[..., str], runs: Path, page: Any) -> None:
    """The reward chart plots exactly the logged points, with evaluations and the band."""
    page.goto(f"{serve(runs)}/#/run/run-a")
    page.wait_for_selector(CHART, timeout=10_000)
    steps, values = log_points(runs / "run-a")
    line, evals, band = chart_data(page)
    assert (line["x"], line["y"]) == (steps, values)
    assert evals["kind"] == "points"
    assert len(evals["x"]) == 6
    assert band["kind"] == "band"
    namespaces = page.locator('[data-testid="namespace"]').evaluate_all(
        "ss => ss.map(s => s.dataset.namespace)"
    )
    assert namespaces == ["episode", "losses"]
    assert "0.001" in page.locator('[data-testid="config"]').inner_text()
    assert "checkpoint" in page.locator('[data-testid="artifacts"]').inner_text()
    page.locator(CHART).hover()
    screenshot(page, "run")
    times = [e.time for e in LogReader(runs / "run-a") if isinstance(e, Metrics)]
    page.select_option('[data-testid="x-axis"]', "time")
    page.wait_for_function(f"window.__charts[{KEY!r}].__chartData[0].x[0] > 1e9", timeout=5_000)
    line = chart_data(page)[0]
    assert (line["x"], line["y"]) == (times, values)


def test_a_new_step_shows_within_a_second(
    serve: Callable[..., str], tmp_path: Path, page: Any
) -> None:
    """A step published on a live bus appears on the open page within one second."""
    runs = tmp_path / "runs"
    with LiveRun(runs / "live", "live") as run:
        for step in range(5):
            run.log({KEY: float(step)}, step=step)
        run.bus.flush_from_thread()
        page.goto(f"{serve(runs)}/#/run/live")
        page.wait_for_selector(CHART, timeout=10_000)
        latencies = []
        for step in range(5, 10):
            published = time.monotonic()
            run.log({KEY: step * 1.5}, step=step)
            page.wait_for_function(
                f"window.__charts[{KEY!r}].__chartData[0].x.at(-1) === {step}",
                polling=10,
                timeout=2_000,
            )
            latencies.append(time.monotonic() - published)
        assert chart_data(page)[0]["y"][-1] == 9 * 1.5
    assert max(latencies) < 1.0, latencies


def test_a_new_run_appears_in_the_table(serve: Callable[..., str], runs: Path, page: Any) -> None:
    """A run started while the table is open gets its row without a reload."""
    page.goto(serve(runs))
    page.wait_for_selector('[data-testid="run-row"]', timeout=10_000)
    with LiveRun(runs / "fresh", "fresh") as run:
        run.log({KEY: 1.0}, step=0)
        page.wait_for_selector('[data-id="fresh"]', timeout=3_000)
        assert page.locator('[data-id="fresh"] [data-testid="run-status"]').inner_text() == (
            "running"
        )


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder holding one run of 1,000,000 steps of two keys."""
    root = tmp_path_factory.mktemp("million")
    write_big_log(root / "big", 1_000_000)
    return root


def test_a_million_point_run_is_interactive_within_two_seconds(
    serve: Callable[..., str], million: Path, page: Any
) -> None:
    """Opened as the server starts, a 1M-point run draws what is read so far and fills in;
    opened again, it draws in under 2 s; a zoom fetches every point of its range."""
    base = serve(million)
    page.goto(f"{base}/#/run/big")
    page.wait_for_selector(CHART, timeout=30_000)
    assert page.locator('[data-testid="loading"]').count() == 1  # drawn before fully read
    page.wait_for_selector('[data-testid="loading"]', state="detached", timeout=120_000)
    assert chart_data(page)[0]["x"][-1] == 999_999
    started = time.monotonic()
    page.reload()
    page.wait_for_selector(CHART, timeout=5_000)
    page.wait_for_selector('[data-testid="chart"][data-key="losses/loss"][data-drawn="true"]')
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    line = chart_data(page)[0]
    assert 100 < len(line["x"]) < 2_000
    assert line["x"][-1] == 999_999
    screenshot(page, "run-million")
    over = page.locator(f"{CHART} .u-over")
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.50, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.51, y, steps=3)
    page.mouse.up()
    contiguous = "xs.length < 50000 && xs.every((x, i) => i === 0 || x === xs[i - 1] + 1)"
    page.wait_for_function(
        f"(xs => {contiguous})(window.__charts[{KEY!r}].__chartData[0].x)", timeout=5_000
    )
    zoomed = chart_data(page)[0]
    steps = [int(x) for x in zoomed["x"]]
    assert len(steps) > 10
    assert steps == list(range(steps[0], steps[-1] + 1))


def test_comparing_two_runs_overlays_both(serve: Callable[..., str], runs: Path, page: Any) -> None:
    """Selecting two runs and pressing Compare overlays both and lists the lr difference."""
    page.goto(serve(runs))
    page.wait_for_selector('[data-testid="run-row"]', timeout=10_000)
    for box in page.locator('[data-testid="run-select"]').all():
        box.check()
    page.click('[data-testid="compare"]')
    page.wait_for_selector(CHART, timeout=10_000)
    labels = [series["label"] for series in chart_data(page)]
    assert sorted(labels) == ["aaaa", "bbbb"]
    lengths = sorted(len(series["x"]) for series in chart_data(page))
    assert lengths == [40, 60]
    diff = page.locator('[data-testid="config-diff"]').inner_text()
    assert "lr" in diff
    assert "0.01" in diff
    screenshot(page, "compare")


def test_a_malformed_line_shows_as_a_problem(
    serve: Callable[..., str], runs: Path, page: Any
) -> None:
    """A garbage line in the log is listed on the run's page with its line number."""
    log = runs / "run-b" / "events.jsonl"
    line = log.read_bytes().count(b"\n") + 1
    with log.open("ab") as handle:
        handle.write(b"this is not json\n")
    page.goto(f"{serve(runs)}/#/run/run-b")
    page.wait_for_selector(CHART, timeout=10_000)
    problem = page.locator('[data-testid="problem"]').inner_text()
    assert problem.startswith(f"line {line}: not valid JSON")
    assert len(chart_data(page)[0]["x"]) == 40


def twema(xs: list[float], ys: list[float], param: float) -> list[float]:
    """W&B's documented time-weighted EMA, written here independently of the page's."""
    weight = min(math.sqrt(param), 0.999)
    span = (xs[-1] - xs[0]) or 1.0
    out, total, debias = [], 0.0, 0.0
    for i, y in enumerate(ys):
        change = (xs[i] - xs[max(i - 1, 0)]) / span * 1000
        decay = weight**change
        total = total * decay + y
        debias = debias * decay + 1
        out.append(total / debias)
    return out


def test_smoothing_is_wandbs_time_weighted_ema(
    serve: Callable[..., str], runs: Path, page: Any
) -> None:
    """The page's default smoothing equals W&B's formula on unevenly spaced points."""
    xs = [0.0, 1.0, 2.0, 5.0, 6.0, 10.0, 30.0, 31.0]
    ys = [1.0, 3.0, 2.0, 8.0, 7.0, 0.5, 4.0, 4.5]
    page.goto(serve(runs))
    smoothed = page.evaluate(
        "async ([xs, ys]) => (await import('/static/smoothing.js')).twema(xs, ys, 0.6)",
        [xs, ys],
    )
    assert smoothed == pytest.approx(twema(xs, ys, 0.6), rel=1e-12)
    assert smoothed[0] == ys[0]  # the de-bias term: no pull toward zero


def test_the_page_works_behind_a_token(serve: Callable[..., str], runs: Path, page: Any) -> None:
    """With a token, the printed URL (``?token=``) opens the page, its charts and live stream."""
    base = serve(runs, token="t0ken")
    assert httpx.get(f"{base}/api/runs").status_code == 403
    page.goto(f"{base}/?token=t0ken#/run/run-a")
    page.wait_for_selector(CHART, timeout=10_000)
    page.wait_for_function("document.body.dataset.liveOffset !== undefined", timeout=5_000)
    assert len(chart_data(page)[0]["x"]) == 60
