"""The benchmarks run end to end at tiny sizes and write every figure (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _figure_keys() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location(
        "bench_figures", ROOT / "benchmarks" / "figures.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    keys: tuple[str, ...] = module.FIGURE_KEYS
    return keys


HEADLINE = (
    "hot_path.bus_log_us",
    "hot_path.bus_log_delivered_us",
    "throughput.jsonl_events_per_s",
    "throughput.all_sinks_events_per_s",
    "efficiency.tensorboard_steps_per_s",
    "efficiency.wandb_steps_per_s",
    "training.erl.overhead_pct",
    "training.ppo.overhead_pct",
    "training.amp.overhead_pct",
    "scaling.sinks.8.hot_us",
    "scaling.metrics.1000.events_per_s",
    "scaling.threads.8.hot_us",
    "outage.rss_growth_mib",
    "outage.close_drain_s",
)


BENCH_EXTRA = ("stable_baselines3", "matplotlib", "pandas")
"""Modules of the ``bench`` extra (``make bench`` installs it) the benchmarks import."""


def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    """``benchmarks/run.py --quick`` exits 0 and its JSON holds every figure with its fields."""
    missing = [name for name in BENCH_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the bench extra is not installed ({', '.join(missing)}): run make bench")
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    record = json.loads(out.read_text())
    assert record["quick"] is True
    assert record["errors"] == {}
    figures = record["figures"]
    expected = set(_figure_keys()) | set(HEADLINE)
    assert not expected - set(figures), sorted(expected - set(figures))
    for key in expected:
        figure = figures[key]
        assert {"value", "unit", "anchor", "ratio", "goal", "passed", "samples"} <= set(figure), key
        assert isinstance(figure["value"], (int, float)), key
    assert (tmp_path / "scaling.png").stat().st_size > 0
    assert "goals:" in done.stdout
