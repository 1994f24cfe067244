"""The sweep, health and trades pages in real Chromium: what they show equals the logs."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest

from sinks.jsonl import JsonlSink
from telemetry.alerts import AlertRule, AlertSpec
from telemetry.bus import Bus
from tests.conftest import OutageSink
from tests.dashboard.conftest import screenshot
from tests.dashboard.test_views_api import make_runs
from tests.reports.logs import logged_trades
from tests.stats.test_sweeps import ROOT, results, run_sweep

WAIT_MS = 15_000


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_runs(tmp_path_factory)


def open_view(page: Any, base: str, hash_: str, ready: str) -> None:
    """Open the page at ``hash_`` and wait (bounded) until ``ready`` is on it."""
    page.goto(f"{base}/{hash_}")
    page.locator(ready).first.wait_for(timeout=WAIT_MS)


def chart_data(page: Any, testid: str) -> list[dict[str, Any]]:
    """The series a chart was drawn from, read back from the page."""
    data: list[dict[str, Any]] = page.evaluate(
        f"document.querySelector('[data-testid=\"{testid}\"]').__chartData"
    )
    return data


def test_the_sweep_page_shows_its_trials_with_stopped_ones_marked(
    serve: Callable[..., str], page: Any, runs: Path
) -> None:
    """One row per trial with its outcome, a mark on exactly the stopped ones, a line per
    trial in the parallel coordinates, importance bars and the best trial."""
    base = serve(runs)
    open_view(page, base, "#/sweep/sweeps%2Fgrid", '[data-testid="trial"]')
    ended = sorted(results(runs / "sweeps" / "grid"), key=lambda r: r["trial"])
    rows = page.locator('[data-testid="trial"]')
    states = rows.evaluate_all("rs => rs.map(r => [Number(r.dataset.number), r.dataset.state])")
    assert states == [[r["trial"], r["outcome"]] for r in ended]
    marked = page.locator('[data-testid="trial"]:has([data-testid="stopped-mark"])')
    stopped = [r["trial"] for r in ended if r["outcome"] == "stopped"]
    assert stopped
    assert marked.evaluate_all("rs => rs.map(r => Number(r.dataset.number))") == stopped
    best = page.locator('[data-testid="trial-best"]').all_inner_texts()
    assert [float(b) for b in best] == pytest.approx([r["best"] for r in ended], rel=1e-3)
    lines = page.locator('[data-testid="parallel-line"]')
    drawn = lines.evaluate_all("ls => ls.map(l => [Number(l.dataset.trial), l.dataset.state])")
    assert sorted(drawn) == [[r["trial"], r["outcome"]] for r in ended]
    dashed = lines.evaluate_all("ls => ls.map(l => l.getAttribute('stroke-dasharray'))")
    assert dashed.count("6,4") == len(stopped)
    bars = page.locator('[data-testid="importance-bar"]')
    assert sorted(bars.evaluate_all("bs => bs.map(b => b.dataset.param)")) == ["kind", "x"]
    winner = min(ended, key=lambda r: r["best"])["trial"]
    assert page.locator('[data-testid="best"]').get_attribute("data-number") == str(winner)
    in_end_order = [r["best"] for r in results(runs / "sweeps" / "grid")]
    curve = chart_data(page, "best-so-far")
    assert curve[0]["y"] == list(itertools.accumulate(in_end_order, min))
    assert curve[1]["y"] == in_end_order
    screenshot(page, "sweep")
    page.locator("th", has_text="best loss").click()  # sorts the table by the objective
    order = rows.evaluate_all("rs => rs.map(r => Number(r.dataset.number))")
    assert order == [r["trial"] for r in sorted(ended, key=lambda r: r["best"])]
    rows.first.hover()  # brings that trial's line forward
    line = page.locator(f'[data-testid="parallel-line"][data-trial="{order[0]}"]')
    assert line.get_attribute("stroke-width") == "4"


def test_an_open_sweep_page_shows_a_trial_that_ends_later(
    serve: Callable[..., str], page: Any, tmp_path: Path
) -> None:
    """With trials still waiting, the page looks again: a trial an agent runs while the page
    is open shows as finished without a reload."""
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs in this thread
        folder = pool.submit(run_sweep, tmp_path, "--count", "1").result(timeout=120)
    base = serve(folder.parent.parent)
    open_view(page, base, f"#/sweep/sweeps%2F{folder.name}", '[data-testid="trial"]')
    finished = '[data-testid="trial"][data-state="finished"]'
    assert page.locator(finished).count() == 1
    assert page.locator('[data-testid="trial"][data-state="waiting"]').count() == 3
    agent = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "agent", str(folder), "--count", "1"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert agent.returncode == 0, agent.stderr[-2000:]
    page.wait_for_function(f"document.querySelectorAll('{finished}').length === 2", timeout=WAIT_MS)
    assert page.locator('[data-testid="trial"][data-state="waiting"]').count() == 2


def test_the_health_page_flags_the_sink_that_is_behind(
    serve: Callable[..., str], page: Any, runs: Path
) -> None:
    """The remote sink that was down is outlined as behind, with the log's pending counts;
    the others are not; system charts, the alert and the log record are shown."""
    base = serve(runs)
    open_view(page, base, "#/health/pipeline", '[data-testid="sink-chart"]')
    charts = page.locator('[data-testid="sink-chart"]')
    flags = charts.evaluate_all("cs => cs.map(c => [c.dataset.sink, c.dataset.behind])")
    assert sorted(flags) == [["jsonl", "false"], ["memory", "false"], ["remote", "true"]]
    assert "spilled" in page.locator('[data-testid="sink-behind"]').inner_text()
    lines = (runs / "pipeline" / "events.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    samples = [r for r in rows if r["type"] == "health"]
    drawn = page.evaluate("[...document.querySelectorAll('[data-sink=\"remote\"]')][0].__chartData")
    pending = next(s for s in drawn if s["label"] == "pending")
    assert pending["y"] == [s["values"]["telemetry/remote/pending"] for s in samples]
    assert pending["x"] == [s["time"] for s in samples]
    system_keys = {k for r in rows if r.get("axis") == "system" for k in r["values"]}
    drawn_keys = page.locator('[data-testid="system-chart"]').evaluate_all(
        "cs => cs.map(c => c.dataset.key)"
    )
    assert sorted(drawn_keys) == sorted(system_keys)
    assert page.locator('[data-testid="alerts-row"]').count() == 1
    assert "not finite: losses/value" in page.locator('[data-testid="alerts"]').inner_text()
    assert page.locator('[data-testid="records-row"]').count() == 1
    screenshot(page, "health")


def _train_until(folder: Path, stop: threading.Event, nan: threading.Event) -> None:
    """A run publishing until ``stop``, health every 0.1 s, a remote sink down; one NaN
    (an alert) once ``nan`` is set."""

    async def main() -> None:
        log = JsonlSink(folder / "events.jsonl", "live01")
        rules = AlertSpec(rules=(AlertRule(key="losses/*", when="nan"),))
        sinks: list[Any] = [log, OutageSink(down_at_open=True)]
        with anyio.fail_after(60):
            async with Bus("live01", sinks, alerts=rules, health_interval=0.1) as bus:
                step, fired = 0, False
                while not stop.is_set():
                    bad = nan.is_set() and not fired
                    fired = fired or bad
                    bus.log({"losses/value": float("nan") if bad else 1.0}, step=step)
                    step += 1
                    await anyio.sleep(0.02)

    folder.mkdir(parents=True)
    anyio.run(main)


def test_an_open_health_page_follows_the_run(
    serve: Callable[..., str], page: Any, tmp_path: Path
) -> None:
    """On a run being written, new health samples extend the sink's chart and a new alert
    joins the table, without a reload."""
    stop, nan = threading.Event(), threading.Event()
    writer = threading.Thread(target=_train_until, args=(tmp_path / "live", stop, nan))
    writer.start()
    try:
        log = tmp_path / "live" / "events.jsonl"
        deadline = time.monotonic() + 10
        while not (log.is_file() and '"health"' in log.read_text()):
            assert time.monotonic() < deadline, "the run wrote no health sample within 10 s"
            time.sleep(0.05)
        open_view(page, serve(tmp_path), "#/health/live", '[data-sink="remote"] canvas')
        points = "document.querySelector('[data-sink=\"remote\"]').__chartData[0].x.length"
        first = page.evaluate(points)
        page.wait_for_function(f"{points} >= {first + 3}", timeout=WAIT_MS)
        assert page.locator('[data-sink="remote"]').get_attribute("data-behind") == "true"
        assert page.locator('[data-testid="alerts-row"]').count() == 0
        nan.set()
        page.locator('[data-testid="alerts-row"]').wait_for(timeout=WAIT_MS)
    finally:
        stop.set()
        writer.join(timeout=30)
    assert "not finite: losses/value" in page.locator('[data-testid="alerts"]').inner_text()


def _bucket(time_of_day: float) -> int:
    """The session hour (09:30 + k hours) a fraction of the 6.5-hour trading day falls in."""
    return min(6, max(0, math.floor(time_of_day * 6.5)))


def test_the_trades_page_draws_the_logs_trades(
    serve: Callable[..., str], page: Any, runs: Path
) -> None:
    """Cumulative P&L, drawdown, the distribution, one point per trade, win rate by hour and
    long against short are drawn with the values computed here from the log's trade lines."""
    base = serve(runs)
    open_view(page, base, "#/trades/trading", '[data-testid="chart-hour-win-rate"] svg')
    trades = logged_trades(runs / "trading")
    pnl = [t["pnl"] for t in trades]
    curve = [0.0, *itertools.accumulate(pnl)]
    assert chart_data(page, "chart-cumulative-pnl")[0]["y"] == pytest.approx(curve)
    peaks = list(itertools.accumulate(curve, max))
    drawdown = [c - p for c, p in zip(curve, peaks, strict=True)]
    assert chart_data(page, "chart-drawdown")[0]["y"] == pytest.approx(drawdown)
    wins, losses = chart_data(page, "chart-distribution")
    assert (sum(wins["y"]), sum(losses["y"])) == (sum(p > 0 for p in pnl), sum(p <= 0 for p in pnl))
    assert page.locator(
        '[data-testid="chart-duration-return"] [data-testid="point"]'
    ).count() == len(trades)
    by_hour: list[list[float]] = [[] for _ in range(7)]
    for trade in trades:
        by_hour[_bucket(trade["time_of_day"])].append(trade["pnl"])
    rate = [sum(p > 0 for p in hour) / len(hour) if hour else None for hour in by_hour]
    assert chart_data(page, "chart-hour-win-rate")[0]["y"] == pytest.approx(rate)
    hour_pnl = chart_data(page, "chart-hour-pnl")[0]["y"]
    assert hour_pnl == pytest.approx([sum(hour) for hour in by_hour])
    sides = chart_data(page, "chart-long-short-pnl")[0]
    assert sides["x"] == ["long", "short"]
    expected = [sum(t["pnl"] for t in trades if t["direction"] == d) for d in (1, -1)]
    assert sides["y"] == pytest.approx(expected)
    shown = page.locator('[data-testid="statistic"][data-key="trades"]').get_attribute("data-value")
    assert shown == str(len(trades))
    screenshot(page, "trades")


def test_a_run_without_trades_or_health_says_so(
    serve: Callable[..., str], page: Any, runs: Path
) -> None:
    """The trades page of a run with no trade events and the health page of a run with no
    health events (a trial killed when stopped: its bus never closed) say so, with no error."""
    base = serve(runs)
    open_view(page, base, "#/trades/pipeline", '[data-testid="no-trades"]')
    assert page.locator('[data-testid="trade-count"]').inner_text() == "0 trades"
    killed = next(r for r in results(runs / "sweeps" / "grid") if r["outcome"] == "stopped")
    trial = f"sweeps%2Fgrid%2Ftrials%2F{killed['trial']:04d}"
    open_view(page, base, f"#/health/{trial}", '[data-testid="behind"]')
    assert "no health events" in page.locator('[data-testid="behind"]').inner_text()
    assert page.locator('[data-testid="sink-chart"]').count() == 0
