"""``telemetry.log`` against ``wandb.log`` (offline) and ``trackio.log``: 8 scalars per call.

Interleaved rounds in one process, each library's run open throughout; prints the
median µs per call of each and the ratios. ``python benchmarks/compat_log.py``.
"""

from __future__ import annotations

import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROWS = 2_000
ROUNDS = 7


def _rows(n: int) -> list[dict[str, float]]:
    return [{f"train/m{k}": float(i * 8 + k) for k in range(8)} for i in range(n)]


def _time(log: Callable[[dict[str, float]], Any], rows: list[dict[str, float]]) -> float:
    started = time.perf_counter()
    for row in rows:
        log(row)
    return (time.perf_counter() - started) / len(rows) * 1e6


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="compat-log-"))
    os.environ.update(WANDB_MODE="offline", WANDB_DIR=str(folder), WANDB_SILENT="true")
    os.environ.pop("WANDB_API_KEY", None)
    import telemetry as ours

    ours_run = ours.init(
        project="bench", settings={"out": str(folder / "runs"), "sinks": ["jsonl"]}
    )
    loggers: dict[str, Callable[[dict[str, float]], Any]] = {"telemetry": ours_run.log}
    import wandb

    wandb_run = wandb.init(project="bench", dir=str(folder), reinit="create_new")
    loggers["wandb"] = wandb_run.log
    trackio: Any = None
    try:
        trackio = importlib.import_module("trackio")
        os.environ.setdefault("TRACKIO_DIR", str(folder / "trackio"))
        trackio.init(project="bench")
        loggers["trackio"] = trackio.log
    except Exception as exc:  # not installed, or it cannot start here: say so
        print(f"trackio: skipped ({type(exc).__name__}: {exc})")
    times: dict[str, list[float]] = {name: [] for name in loggers}
    for log in loggers.values():  # warm-up
        _time(log, _rows(200))
    for round_ in range(ROUNDS):
        order = list(loggers) if round_ % 2 == 0 else list(reversed(loggers))
        for name in order:
            times[name].append(_time(loggers[name], _rows(ROWS)))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:>10}: {value:8.2f} µs per log call (8 scalars, median of {ROUNDS})")
    base = medians["telemetry"]
    for name in ("wandb", "trackio"):
        if name in medians:
            print(f"telemetry / {name}: 1/{medians[name] / base:.0f}")
    ours_run.finish()
    wandb_run.finish()
    if trackio is not None and "trackio" in loggers:
        trackio.finish()


if __name__ == "__main__":
    main()
