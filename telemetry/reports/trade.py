"""The trade report: one run's trade views and its statistics table."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from telemetry.events import TradeClosed
from telemetry.reports.document import Cell, Chart, Report, Section, Series, Table
from telemetry.reports.runs import RunLog
from telemetry.stats.trades import run_capital, trade_statistics, trade_views

WIN = "#2e9e5b"
LOSS = "#d1495b"

STATISTICS: tuple[tuple[str, str, str], ...] = (
    ("trades", "Trades", "trade events in the log"),
    ("total_pnl", "Total P&L", "sum of the trades' pnl (net of costs)"),
    ("sharpe", "Sharpe ratio", "empyrical, per-trade returns pnl / capital, not annualised"),
    ("sortino", "Sortino ratio", "empyrical, the same returns, not annualised"),
    ("max_drawdown", "Maximum drawdown", "deepest fall of the cumulative P&L from a peak"),
    (
        "max_drawdown_duration",
        "Drawdown duration (trades)",
        "trades from that peak until the P&L was back at it (or the last trade)",
    ),
    ("win_rate", "Win rate", "share of trades with pnl > 0"),
    ("profit_factor", "Profit factor", "gross profit / gross loss"),
    ("average_win", "Average win", "mean pnl of the winning trades"),
    ("average_loss", "Average loss", "mean pnl of the losing trades"),
    ("expectancy", "Expectancy", "mean pnl per trade"),
    ("largest_win", "Largest win", "highest pnl"),
    ("largest_loss", "Largest loss", "lowest pnl"),
    ("mean_return", "Mean return on capital", "mean of pnl / capital"),
    ("mean_trade_return", "Mean return on notional", "mean of pnl / (size * entry price)"),
)
"""Key in ``trade_statistics``, label in the report, how it is computed."""


def trade_report(run: RunLog, trades: Sequence[TradeClosed], source: str) -> Report:
    """The trade views and statistics of ``run``'s ``trades`` (non-empty)."""
    views = trade_views(trades)
    capital = run_capital(run.config)
    stats = trade_statistics(trades, capital)
    steps = views["by_step"]
    title = f"Trades of {run.name or run.folder.run_id}"
    report = Report(title=title, source=source)
    about = Table(
        "Run",
        ["run", "run id", "trainer", "trades", f"{steps['axis']}s with trades"],
        [[run.folder.id, run.folder.run_id, run.trainer, len(trades), len(steps["step"])]],
    )
    rows: list[list[Cell]] = [[label, stats[key], how] for key, label, how in STATISTICS]
    report.sections += [
        Section(
            "Statistics",
            "Every trade event of the log, in log order. Sharpe and Sortino are "
            "empyrical-reloaded's (annualization=1: per trade, not annualised) on each "
            "trade's P&L as a return on the account's capital, pnl / capital, with capital "
            f"{capital:,.0f} (erl.sim.initial_capital): the trade is the one period the log "
            "defines, and a return on capital weighs each trade by what it did to the account.",
            [about, Table("Statistics", ["statistic", "value", "how"], rows)],
        ),
        _pnl_section(views),
        _distribution_section(views),
        _duration_section(views),
        _hour_section(views),
        _side_section(views),
        _step_section(views),
    ]
    return report


def _pnl_section(views: dict[str, Any]) -> Section:
    curve, fall = views["cumulative_pnl"], views["drawdown"]
    return Section(
        "Cumulative P&L and drawdown",
        "Realised P&L after each trade (0 before the first), and its distance below its "
        "running peak.",
        [
            Chart(
                "cumulative-pnl",
                "Cumulative P&L",
                curve["x"],
                [Series("P&L", curve["y"])],
                x_label="trade",
                y_label="P&L",
                legend=False,
            ),
            Chart(
                "drawdown",
                "Drawdown",
                fall["x"],
                [Series("drawdown", fall["y"], LOSS)],
                x_label="trade",
                y_label="P&L below peak",
                legend=False,
            ),
        ],
    )


def _distribution_section(views: dict[str, Any]) -> Section:
    dist = views["distribution"]
    edges = dist["edges"]
    centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    series = [Series("wins", dist["wins"], WIN), Series("losses", dist["losses"], LOSS)]
    chart = Chart(
        "distribution",
        "Win/loss distribution",
        centres,
        series,
        kind="bars",
        x_label="P&L per trade",
        y_label="trades",
    )
    text = (
        f"{len(centres)} equal bins of P&L from {edges[0]:.6g} to {edges[-1]:.6g}; "
        "a trade at exactly 0 is counted with the losses."
    )
    return Section("Win/loss distribution", text, [chart])


def _duration_section(views: dict[str, Any]) -> Section:
    points = views["duration_vs_return"]
    order = sorted(range(len(points["duration"])), key=lambda i: points["duration"][i])
    x = [float(points["duration"][i]) for i in order]
    pct = [None if points["return"][i] is None else 100 * points["return"][i] for i in order]
    wins = [p if points["win"][i] else None for p, i in zip(pct, order, strict=True)]
    rest = [None if points["win"][i] else p for p, i in zip(pct, order, strict=True)]
    chart = Chart(
        "duration-return",
        "Trade duration against return",
        x,
        [Series("wins", wins, WIN), Series("losses", rest, LOSS)],
        kind="points",
        x_label="holding duration (steps)",
        y_label="return on notional (%)",
    )
    return Section("Trade duration against return", "One point per trade.", [chart])


def _hour_section(views: dict[str, Any]) -> Section:
    hours = views["by_hour"]
    ticks = hours["hour"]
    x = [float(i) for i in range(len(ticks))]
    rate = [None if r is None else 100 * r for r in hours["win_rate"]]
    table = Table(
        "By hour of day",
        ["hour", "trades", "win rate", "P&L"],
        [
            list(row)
            for row in zip(ticks, hours["trades"], hours["win_rate"], hours["pnl"], strict=True)
        ],
    )
    return Section(
        "Win rate and P&L by hour of day",
        "time_of_day is the fraction of the simulated trading day elapsed at the trade's exit "
        "step; the day is placed on a 09:30-16:00 session, one bucket per hour from its start.",
        [
            Chart(
                "hour-pnl",
                "P&L by hour of day",
                x,
                [Series("P&L", hours["pnl"])],
                kind="bars",
                x_label="hour",
                y_label="P&L",
                x_ticks=ticks,
                legend=False,
            ),
            Chart(
                "hour-win-rate",
                "Win rate by hour of day",
                x,
                [Series("win rate", rate, WIN)],
                kind="bars",
                x_label="hour",
                y_label="win rate (%)",
                x_ticks=ticks,
                legend=False,
            ),
            table,
        ],
    )


def _side_section(views: dict[str, Any]) -> Section:
    sides = views["long_short"]
    names = ["long", "short"]
    table = Table(
        "Long against short",
        ["side", "trades", "win rate", "P&L"],
        [[s, sides[s]["trades"], sides[s]["win_rate"], sides[s]["pnl"]] for s in names],
    )
    chart = Chart(
        "long-short",
        "P&L, long against short",
        [0.0, 1.0],
        [Series("P&L", [sides[s]["pnl"] for s in names])],
        kind="bars",
        x_label="side",
        y_label="P&L",
        x_ticks=names,
        legend=False,
    )
    return Section("Long against short", "", [table, chart])


def _step_section(views: dict[str, Any]) -> Section:
    steps = views["by_step"]
    axis = steps["axis"]
    x = [float(s) for s in steps["step"]]
    rate = [None if r is None else 100 * r for r in steps["win_rate"]]
    return Section(
        f"By {axis}",
        f"The trades of each {axis} (for ERL: the validation trades of that generation's "
        "champion).",
        [
            Chart(
                "step-pnl",
                f"P&L per {axis}",
                x,
                [Series("P&L", steps["pnl"])],
                kind="bars",
                x_label=axis,
                y_label="P&L",
                legend=False,
            ),
            Chart(
                "step-win-rate",
                f"Win rate per {axis}",
                x,
                [Series("win rate", rate, WIN)],
                x_label=axis,
                y_label="win rate (%)",
                legend=False,
            ),
        ],
    )
