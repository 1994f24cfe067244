"""Run folders for the report tests, written by the real bus and durable log sink."""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio

from sinks.jsonl import JsonlSink
from telemetry.bus import Bus, RunInfo
from telemetry.events import TradeClosed


def write_run(
    run_dir: Path,
    run_id: str,
    *,
    name: str = "test",
    config: Mapping[str, Any] | None = None,
    group: str | None = None,
    metrics: Sequence[tuple[int, Mapping[str, float]]] = (),
    trades: Sequence[Mapping[str, Any]] = (),
    axis: str = "generation",
) -> Path:
    """A run folder whose log holds ``metrics`` (step, values), then ``trades``, as a run writes."""

    async def main() -> None:
        sink = JsonlSink(run_dir / "events.jsonl", run_id)
        info = RunInfo(name=name, config=config, group=group)
        async with Bus(run_id, [sink], run=info, health_interval=None) as bus:
            for step, values in metrics:
                bus.log(values, step=step, axis=axis)
            for trade in trades:
                bus.emit(TradeClosed, **trade)

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, main).result(timeout=60)
    return run_dir


def random_trades(seed: int, count: int, *, steps: Sequence[int] = (4, 9)) -> list[dict[str, Any]]:
    """``count`` trades with varied sides, sizes, durations and times, spread over ``steps``."""
    rng = random.Random(seed)
    trades = []
    for k in range(count):
        entry = rng.uniform(20, 200)
        direction = rng.choice((1, -1))
        size = rng.uniform(1, 500)
        exit_price = entry * (1 + rng.gauss(0.002 * direction, 0.03))
        entry_step = rng.randrange(0, 150)
        held = rng.randrange(1, 50)
        cost = 0.001 * size * (entry + exit_price)
        trades.append(
            {
                "step": steps[k * len(steps) // count],
                "axis": "generation",
                "stock": rng.randrange(4),
                "direction": direction,
                "size": size,
                "entry_price": entry,
                "exit_price": exit_price,
                "entry_step": entry_step,
                "exit_step": entry_step + held,
                "holding_duration": held,
                "pnl": direction * size * (exit_price - entry) - cost,
                "time_of_day": ((entry_step + held) % 50) / 50,
            }
        )
    return trades


def logged_trades(run_dir: Path) -> list[dict[str, Any]]:
    """The trade lines of the run's log, parsed with plain ``json`` (not our reader)."""
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [row for row in map(json.loads, lines) if row["type"] == "trade"]


def plain_statistics(rows: Sequence[Mapping[str, Any]], capital: float) -> dict[str, float]:
    """The trade-level figures of the trade lines ``rows``, by ``trade_statistics``'s keys,
    computed here with plain Python (risk ratios and drawdown apart)."""
    pnl = [float(r["pnl"]) for r in rows]
    wins = [p for p in pnl if p > 0]
    losses = [p for p in pnl if p < 0]
    return {
        "trades": len(pnl),
        "total_pnl": math.fsum(pnl),
        "win_rate": len(wins) / len(pnl),
        "profit_factor": sum(wins) / -sum(losses),
        "average_win": statistics.fmean(wins),
        "average_loss": statistics.fmean(losses),
        "expectancy": statistics.fmean(pnl),
        "largest_win": max(wins),
        "largest_loss": min(losses),
        "mean_return": statistics.fmean(pnl) / capital,
        "mean_trade_return": statistics.fmean(
            r["pnl"] / (r["size"] * r["entry_price"]) for r in rows
        ),
    }
