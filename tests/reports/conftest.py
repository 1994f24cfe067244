"""The report tests' runs folder: two runs written by the real bus and log, and a real sweep."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.reports.logs import random_trades, write_run
from tests.stats.test_sweeps import shared_sweep


def _config(seed: int, actor_lr: float) -> dict[str, object]:
    return {
        "trainer": "erl",
        "seed": seed,
        "episodes": 12,
        "erl": {"actor_lr": actor_lr, "population_size": 4, "sim": {"initial_capital": 50_000.0}},
    }


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two ERL-like runs (the older with 150 trades, the newer without) and a real sweep."""
    root = tmp_path_factory.mktemp("runs")
    # The sweep first, so that the two runs below are the latest under root.
    shutil.copytree(shared_sweep(tmp_path_factory), root / "sweeps" / "grid")
    metrics = [
        (
            g,
            {
                "fitness/max": 1.5 * g - (g % 3),
                "train/critic_loss": 5.0 / (g + 1),
                "buffer/size": g,
            },
        )
        for g in range(12)
    ]
    later = [(g, {k: v * 0.5 for k, v in values.items()}) for g, values in metrics[:8]]
    runs = [
        ("20261201-100000-erl-aaaa1111", _config(1, 1e-3), metrics, random_trades(11, 150)),
        ("20261201-110000-erl-bbbb2222", _config(2, 3e-4), later, []),
    ]
    for folder, config, series, trades in runs:
        run_id = folder.rsplit("-", 1)[1]
        write_run(
            root / folder,
            run_id,
            name=f"erl-{run_id}",
            config=config,
            metrics=series,
            trades=trades,
        )
    return root
