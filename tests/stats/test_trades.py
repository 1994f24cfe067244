"""Trade statistics and views equal the same figures computed here from the log itself."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import empyrical  # type: ignore[import-untyped]  # empyrical ships no stubs
import numpy as np
import pytest

from telemetry.stats.trades import (
    load_trades,
    run_capital,
    session_hour_labels,
    trade_statistics,
    trade_views,
)
from tests.reports.logs import logged_trades, plain_statistics, random_trades, write_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose log holds metrics and 120 trades over two generations."""
    folder = tmp_path_factory.mktemp("run")
    metrics = [(g, {"fitness/max": float(g)}) for g in range(10)]
    return write_run(folder, "trades01", metrics=metrics, trades=random_trades(3, 120))


def _returns(rows: list[dict[str, Any]]) -> list[float]:
    return [r["pnl"] / (r["size"] * r["entry_price"]) for r in rows]


def _max_drawdown(pnl: list[float]) -> tuple[float, int]:
    """Deepest fall from a running peak of the P&L from 0, and trades from that peak to recovery."""
    best = (0.0, 0)
    peak_value, peak_at, total = 0.0, 0, 0.0
    curve = [0.0]
    for p in pnl:
        total += p
        curve.append(total)
    for i, value in enumerate(curve):
        if value > peak_value:
            peak_value, peak_at = value, i
        if peak_value - value > best[0]:
            recovered = next(
                (j for j in range(i, len(curve)) if curve[j] >= peak_value), len(curve) - 1
            )
            best = (peak_value - value, recovered - peak_at)
    return best


def test_load_trades_reads_every_trade_event_in_log_order(run: Path) -> None:
    """Only the trade events come back, all of them, in the order of the log."""
    rows = logged_trades(run)
    trades = load_trades(run)
    assert len(trades) == len(rows) == 120
    assert [t.seq for t in trades] == [r["seq"] for r in rows]
    assert [t.pnl for t in trades] == [r["pnl"] for r in rows]


def test_trade_level_statistics_equal_plain_computations_from_the_log(run: Path) -> None:
    """Win rate, profit factor, averages, expectancy, extremes, drawdown match by hand."""
    rows = logged_trades(run)
    pnl = [r["pnl"] for r in rows]
    depth, duration = _max_drawdown(pnl)
    stats = trade_statistics(load_trades(run))
    expected = plain_statistics(rows, 100_000.0)
    expected |= {"max_drawdown": depth, "max_drawdown_duration": duration}
    assert depth > 0
    assert duration > 0
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-9), key


def test_risk_ratios_are_empyricals_on_the_trades_returns_on_capital(run: Path) -> None:
    """Sharpe and Sortino equal empyrical's functions on pnl / capital, not annualised."""
    pnl = [r["pnl"] for r in logged_trades(run)]
    for capital in (100_000.0, 2_500.0):
        returns = np.array(pnl) / capital
        stats = trade_statistics(load_trades(run), capital)
        assert stats["sharpe"] == pytest.approx(empyrical.sharpe_ratio(returns, annualization=1))
        assert stats["sortino"] == pytest.approx(empyrical.sortino_ratio(returns, annualization=1))
        assert stats["mean_return"] == pytest.approx(statistics.fmean(pnl) / capital)
    # the textbook per-period Sharpe (mean over sample deviation), with the sign of the P&L
    assert stats["sharpe"] == pytest.approx(statistics.fmean(pnl) / statistics.stdev(pnl))
    assert math.copysign(1, stats["sharpe"]) == math.copysign(1, stats["total_pnl"])


def test_the_capital_is_the_runs_initial_capital_or_the_simulators_default() -> None:
    """erl.sim.initial_capital from the run's config, else 100,000."""
    assert run_capital({"erl": {"sim": {"initial_capital": 5e4}}}) == 5e4
    assert run_capital({"erl": {"sim": {}}}) == 100_000.0
    assert run_capital({}) == 100_000.0


def test_drawdown_and_its_duration_on_a_known_path(tmp_path: Path) -> None:
    """P&L 10, -5, -10, 8, 20, -3: deepest fall 15 from the peak after trade 1, back at trade 5."""
    trades = random_trades(1, 6)
    for trade, pnl in zip(trades, (10.0, -5.0, -10.0, 8.0, 20.0, -3.0), strict=True):
        trade["pnl"] = pnl
    stats = trade_statistics(load_trades(write_run(tmp_path, "known", trades=trades)))
    assert stats["max_drawdown"] == 15.0
    assert stats["max_drawdown_duration"] == 4.0
    assert stats["profit_factor"] == pytest.approx(38 / 18)


def test_views_equal_the_logs_figures(run: Path) -> None:
    """Curves, histogram, hours, sides and generations carry the log's numbers."""
    rows = logged_trades(run)
    pnl = [r["pnl"] for r in rows]
    views = trade_views(load_trades(run))
    curve = [0.0]
    for p in pnl:
        curve.append(curve[-1] + p)
    assert views["cumulative_pnl"]["y"] == pytest.approx(curve)
    falls = [c - max(curve[: i + 1]) for i, c in enumerate(curve)]
    assert views["drawdown"]["y"] == pytest.approx(falls)
    dist = views["distribution"]
    assert sum(dist["wins"]) == sum(p > 0 for p in pnl)
    assert sum(dist["losses"]) == sum(p <= 0 for p in pnl)
    assert dist["edges"][0] <= min(pnl) < dist["edges"][1]
    assert dist["edges"][-2] <= max(pnl) < dist["edges"][-1]
    assert 0.0 in dist["edges"]  # a bin holds wins or losses, never both
    assert not any(w and lo for w, lo in zip(dist["wins"], dist["losses"], strict=True))
    assert views["duration_vs_return"]["duration"] == [r["holding_duration"] for r in rows]
    assert views["duration_vs_return"]["return"] == pytest.approx(_returns(rows))
    hours = views["by_hour"]
    assert hours["hour"] == session_hour_labels() == [f"{h:02d}:30" for h in range(9, 16)]
    for k in range(7):
        bucket = [r["pnl"] for r in rows if min(6, math.floor(r["time_of_day"] * 6.5)) == k]
        assert hours["trades"][k] == len(bucket)
        assert hours["pnl"][k] == pytest.approx(math.fsum(bucket))
    for side, sign in (("long", 1), ("short", -1)):
        mine = [r["pnl"] for r in rows if r["direction"] == sign]
        assert views["long_short"][side]["trades"] == len(mine)
        assert views["long_short"][side]["win_rate"] == sum(p > 0 for p in mine) / len(mine)
        assert views["long_short"][side]["pnl"] == pytest.approx(math.fsum(mine))
    assert views["by_step"]["step"] == [4, 9]
    assert views["by_step"]["trades"] == [60, 60]


def test_no_trades_gives_empty_views_and_undefined_statistics() -> None:
    """Without trades the views are empty and JSON-safe, every ratio NaN."""
    views = trade_views([])
    assert views["count"] == 0
    assert views["cumulative_pnl"]["y"] == [0.0]
    assert views["long_short"]["long"]["win_rate"] is None
    stats = trade_statistics([])
    assert stats["trades"] == 0
    assert all(math.isnan(stats[k]) for k in ("sharpe", "win_rate", "max_drawdown", "expectancy"))
