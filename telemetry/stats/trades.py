"""Trade analytics of one run from its own ``trade`` events: the views and the statistics.

Everything here is a pure function of the ``TradeClosed`` events read back from
the run's durable log, in log order (``seq``). For ERL those are the
validation trades of each validated generation's champion (``step`` = the
generation), so the curves run through the generations one after another.

Returns. The risk ratios (Sharpe, Sortino) use **each trade's P&L as a
return on the account's capital**, ``pnl / capital`` (``pnl`` net of the
entry and exit costs; ``capital`` the simulator's ``initial_capital``, the
equity every validation period starts with), computed by empyrical-reloaded
with ``annualization=1``: a per-trade ratio, not annualised. Why this series:
the log holds no portfolio return series (ERL publishes shaped rewards as
``fitness/*`` and ``validation/fitness``, not equity returns), and the
simulator's trades have no calendar to resample onto (a simulated day is
``steps_per_day`` steps; trades of several stocks overlap), so the trade is
the one period the log defines; and a return on capital weighs each trade by
what it did to the account, so the ratios have the sign of the P&L, as a
trader expects. The return on the trade's own notional, ``pnl / (size *
entry_price)``, would weigh a 10-share and a 1,000-share trade alike: an agent
losing on its large trades would show a positive Sharpe. Both ratios are
unchanged by the value of ``capital`` (a constant scale), which only sets the
units of ``mean_return``. The trade's return on its notional is kept for the
duration-against-return view and ``mean_trade_return``.

Drawdown is taken on the cumulative realised P&L (currency), starting from 0
before the first trade; its duration counts trades from the peak before the
deepest fall until the P&L is back at that peak (or the last trade).

Hour of day. ``time_of_day`` is the fraction of the simulated trading day
elapsed at the trade's exit step, ``(exit_step % steps_per_day) /
steps_per_day`` in [0, 1) (``sims/trading.py``). The views place that day on a
09:30-16:00 exchange session, so bucket ``k`` holds fractions in
``[k / 6.5, (k + 1) / 6.5)`` and is labelled by its clock start (the last,
15:30, is half an hour).

A win is a trade with ``pnl > 0`` (as ERL's ``validation/win_rate``), a loss
one with ``pnl < 0``; a trade at exactly 0 is neither.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from telemetry.events import TradeClosed
from telemetry.reader import LogReader

F64 = npt.NDArray[np.float64]

SESSION_OPEN_HOUR = 9.5
"""Clock time of the session's open the trading day is placed on (09:30)."""
SESSION_HOURS = 6.5
"""Length of the session, in hours (09:30 to 16:00)."""
HISTOGRAM_BINS = 20
"""Bins of the win/loss distribution."""
DEFAULT_CAPITAL = 100_000.0
"""The trading simulator's default ``initial_capital`` (``sims.trading.TradingConfig``)."""


def load_trades(run_dir: Path) -> list[TradeClosed]:
    """Every ``trade`` event of the run's log (folder or ``events.jsonl``), in log order."""
    return [event for event in LogReader(run_dir) if isinstance(event, TradeClosed)]


def trade_returns(trades: Sequence[TradeClosed]) -> F64:
    """Each trade's return on its notional, ``pnl / (size * entry_price)`` (NaN for 0 notional)."""
    pnl = _pnl(trades)
    notional = np.array([t.size * t.entry_price for t in trades], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(notional != 0, pnl / np.where(notional != 0, notional, 1.0), math.nan)


def capital_returns(trades: Sequence[TradeClosed], capital: float = DEFAULT_CAPITAL) -> F64:
    """Each trade's P&L as a return on the account's capital, ``pnl / capital``."""
    return _pnl(trades) / capital


def run_capital(config: Mapping[str, Any]) -> float:
    """The account's capital of a run by its config (``erl.sim.initial_capital``, else the
    simulator's default)."""
    sim = config.get("erl", {}).get("sim", {}) if isinstance(config.get("erl"), dict) else {}
    value = sim.get("initial_capital") if isinstance(sim, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_CAPITAL


def cumulative_pnl(trades: Sequence[TradeClosed]) -> F64:
    """Realised P&L after each trade, with the 0 before the first: ``n + 1`` values."""
    return np.concatenate(([0.0], np.cumsum(_pnl(trades))))


def drawdown(trades: Sequence[TradeClosed]) -> F64:
    """Cumulative P&L minus its running peak (<= 0), aligned with ``cumulative_pnl``."""
    curve = cumulative_pnl(trades)
    return curve - np.maximum.accumulate(curve)


def trade_views(trades: Sequence[TradeClosed], *, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """The JSON-ready data of the trade views (plain lists, finite numbers or ``None``)."""
    pnl = _pnl(trades)
    returns = trade_returns(trades)
    index = list(range(len(trades) + 1))
    views: dict[str, Any] = {
        "count": len(trades),
        "cumulative_pnl": {"x": index, "y": cumulative_pnl(trades).tolist()},
        "drawdown": {"x": index, "y": drawdown(trades).tolist()},
        "distribution": _distribution(pnl, bins),
        "duration_vs_return": {
            "duration": [t.holding_duration for t in trades],
            "return": returns.tolist(),
            "pnl": pnl.tolist(),
            "win": [bool(p > 0) for p in pnl],
        },
        "by_hour": _by_hour(trades),
        "long_short": {
            side: _group([t for t in trades if t.direction == sign])
            for side, sign in (("long", 1), ("short", -1))
        },
        "by_step": _by_step(trades),
    }
    finite: dict[str, Any] = _finite(views)
    return finite


def trade_statistics(
    trades: Sequence[TradeClosed], capital: float = DEFAULT_CAPITAL
) -> dict[str, float]:
    """Risk ratios (empyrical, on ``capital_returns``) and trade-level statistics of the trades.

    Keys: trades, total_pnl, sharpe, sortino, max_drawdown (currency, >= 0),
    max_drawdown_duration (trades), win_rate, profit_factor (gross profit over
    gross loss; ``inf`` without losses), average_win, average_loss (< 0),
    expectancy (mean P&L per trade), largest_win, largest_loss, mean_return (mean
    ``pnl / capital``), mean_trade_return (mean ``pnl / (size * entry_price)``).
    A statistic without the trades to define it is NaN.
    """
    # empyrical imports pandas and scipy (seconds): only the statistics need it, not the views.
    import empyrical  # type: ignore[import-untyped]  # empyrical ships no stubs

    pnl = _pnl(trades)
    returns = capital_returns(trades, capital)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gross_loss = -float(losses.sum())
    depth, duration = max_drawdown(trades)
    return {
        "trades": float(len(trades)),
        "total_pnl": float(pnl.sum()),
        "sharpe": float(empyrical.sharpe_ratio(returns, annualization=1)),
        "sortino": float(empyrical.sortino_ratio(returns, annualization=1)),
        "max_drawdown": depth,
        "max_drawdown_duration": duration,
        "win_rate": _ratio(len(wins), len(pnl)),
        "profit_factor": _profit_factor(float(wins.sum()), gross_loss, len(pnl)),
        "average_win": _mean(wins),
        "average_loss": _mean(losses),
        "expectancy": _mean(pnl),
        "largest_win": float(wins.max()) if len(wins) else math.nan,
        "largest_loss": float(losses.min()) if len(losses) else math.nan,
        "mean_return": _mean(returns),
        "mean_trade_return": _mean(trade_returns(trades)),
    }


def max_drawdown(trades: Sequence[TradeClosed]) -> tuple[float, float]:
    """The deepest fall of the cumulative P&L from a peak (>= 0) and its duration in trades.

    The duration runs from that peak to the first trade back at the peak, or to
    the last trade when the P&L never recovered; NaN, NaN without trades.
    """
    if not trades:
        return math.nan, math.nan
    curve = cumulative_pnl(trades)
    falls = np.maximum.accumulate(curve) - curve
    trough = int(np.argmax(falls))
    depth = float(falls[trough])
    if depth == 0.0:
        return 0.0, 0.0
    peak = int(np.argmax(curve[: trough + 1]))
    back = np.nonzero(curve[trough:] >= curve[peak])[0]
    end = trough + int(back[0]) if len(back) else len(curve) - 1
    return depth, float(end - peak)


def session_hour_labels() -> list[str]:
    """The clock start of each hour bucket of the session: 09:30, 10:30, ... 15:30."""
    count = math.ceil(SESSION_HOURS)
    starts = (SESSION_OPEN_HOUR + k for k in range(count))
    return [f"{int(h):02d}:{round((h % 1) * 60):02d}" for h in starts]


def hour_bucket(time_of_day: float) -> int:
    """The session hour bucket of a fraction of the trading day."""
    last = math.ceil(SESSION_HOURS) - 1
    return min(last, max(0, math.floor(time_of_day * SESSION_HOURS)))


def _pnl(trades: Sequence[TradeClosed]) -> F64:
    return np.array([t.pnl for t in trades], dtype=np.float64)


def _distribution(pnl: F64, bins: int) -> dict[str, Any]:
    """Histogram of P&L on about ``bins`` equal bins with an edge at 0, so that no bin holds
    both wins and losses (but a trade at exactly 0, counted with the losses)."""
    if not len(pnl):
        return {"edges": [], "wins": [], "losses": []}
    low, high = float(pnl.min()), float(pnl.max())
    width = (high - low) / bins if high > low else max(abs(high), 1.0)
    first, last = math.floor(low / width), math.floor(high / width) + 1
    edges = np.arange(first, last + 1, dtype=np.float64) * width
    wins, _ = np.histogram(pnl[pnl > 0], bins=edges)
    rest, _ = np.histogram(pnl[pnl <= 0], bins=edges)
    return {"edges": edges.tolist(), "wins": wins.tolist(), "losses": rest.tolist()}


def _group(trades: Sequence[TradeClosed]) -> dict[str, float]:
    pnl = _pnl(trades)
    return {
        "trades": len(trades),
        "win_rate": _ratio(int((pnl > 0).sum()), len(pnl)),
        "pnl": float(pnl.sum()),
    }


def _by_hour(trades: Sequence[TradeClosed]) -> dict[str, Any]:
    labels = session_hour_labels()
    buckets: list[list[TradeClosed]] = [[] for _ in labels]
    for trade in trades:
        buckets[hour_bucket(trade.time_of_day)].append(trade)
    groups = [_group(bucket) for bucket in buckets]
    return {"hour": labels, **_columns(groups)}


def _by_step(trades: Sequence[TradeClosed]) -> dict[str, Any]:
    steps = sorted({t.step for t in trades})
    groups = [_group([t for t in trades if t.step == step]) for step in steps]
    axis = trades[0].axis if trades else "step"
    return {
        "axis": axis,
        "step": steps,
        **_columns(groups),
    }


def _columns(groups: Sequence[dict[str, float]]) -> dict[str, list[float]]:
    """Rows of ``_group`` results as one list per statistic."""
    return {key: [g[key] for g in groups] for key in ("trades", "win_rate", "pnl")}


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def _mean(values: F64) -> float:
    return float(values.mean()) if len(values) else math.nan


def _profit_factor(gross_profit: float, gross_loss: float, count: int) -> float:
    if not count:
        return math.nan
    if gross_loss == 0:
        return math.inf if gross_profit > 0 else math.nan
    return gross_profit / gross_loss


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float as ``None`` (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
