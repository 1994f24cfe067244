"""Long sweeps (``make test-long``): the engine through real trial processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from telemetry.sweep.show import best_row
from tests.sweep.test_sweeps import objective_sweep, run_sweep, write_sweep

pytestmark = pytest.mark.long


def test_bayes_beats_random_on_a_program_logging_a_known_function(tmp_path: Path) -> None:
    """Over three seeds, bayes finds a lower loss than random with the same 30 trials each."""
    found: dict[str, list[float]] = {"bayes": [], "random": []}
    for seed in range(3):
        for method in found:
            config = objective_sweep(method, run_cap=30)
            config["parameters"] = {
                "x": {"min": -5.0, "max": 5.0},
                "y": {"min": -5.0, "max": 5.0},
                "steps": {"value": 2},
            }
            sweep_file = write_sweep(tmp_path, config, f"{method}-{seed}.yaml")
            folder = run_sweep(tmp_path, sweep_file, "--agents", "2", "--seed", str(seed))
            best = best_row(folder.engine())
            assert best is not None
            assert best.best is not None
            found[method].append(best.best - 0.5)  # less the 1/i of the last of 2 iterations
    assert sum(found["bayes"]) < sum(found["random"]), found
    assert sum(b < r for b, r in zip(found["bayes"], found["random"], strict=True)) >= 2, found
