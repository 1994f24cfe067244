"""The engine on its own: work handed out once, failures and interruptions, bayes vs random."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import optuna
import pytest

from telemetry.sweep.engine import Engine, open_storage
from telemetry.sweep.spec import SweepSpec, parse_sweep

OPTIMUM = {"a": 1.0, "b": -2.0, "c": 0.5, "d": 3.0}


def bowl_spec(method: str, **extra: Any) -> SweepSpec:
    params = {name: {"min": -5.0, "max": 5.0} for name in OPTIMUM}
    return parse_sweep(
        {"method": method, "metric": {"name": "loss"}, "parameters": params, **extra}
    )


def bowl(params: dict[str, Any]) -> float:
    return sum((params[name] - best) ** 2 for name, best in OPTIMUM.items())


def run(engine: Engine, trials: int) -> float:
    """``trials`` trials of the bowl, told as an agent tells them; the best loss found."""
    best = math.inf
    for _ in range(trials):
        claim = engine.claim()
        assert claim is not None
        value = bowl(claim.params)
        engine.report(claim.trial_id, 0, value)
        engine.finish(claim, "finished", value, {})
        best = min(best, value)
    return best


def test_bayes_finds_a_better_best_than_random_in_as_many_trials() -> None:
    """Over five seeds, TPE beats random search on a 4-D bowl within 40 trials each."""
    wins, bayes_total, random_total = 0, 0.0, 0.0
    for seed in range(5):
        found = {}
        for method in ("bayes", "random"):
            storage = optuna.storages.InMemoryStorage()
            engine = Engine.create(bowl_spec(method), storage, f"{method}-{seed}", seed, {})
            found[method] = run(engine, 40)
        wins += found["bayes"] < found["random"]
        bayes_total += found["bayes"]
        random_total += found["random"]
    assert wins >= 4, (wins, bayes_total, random_total)
    assert bayes_total < 0.6 * random_total


def test_agents_racing_on_one_journal_never_share_a_trial(tmp_path: Path) -> None:
    """Eight threads, each with its own handle on a journal file, take a run_cap of 40 once each."""
    spec = bowl_spec("random", run_cap=40)
    url = str(tmp_path / "optuna.journal")
    Engine.create(spec, open_storage(url), "race", 0, {})
    taken: list[int] = []
    lock = threading.Lock()

    def agent() -> None:
        engine = Engine.load(spec, open_storage(url), "race")
        while (claim := engine.claim()) is not None:
            with lock:
                taken.append(claim.number)
            engine.finish(claim, "finished", bowl(claim.params), {})

    threads = [threading.Thread(target=agent) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(taken) == list(range(40))


def test_a_failed_trial_counts_as_the_worst_value_so_far() -> None:
    """As W&B's bayes does: the engine sees a failed run at the worst value of the others."""
    engine = Engine.create(bowl_spec("bayes"), optuna.storages.InMemoryStorage(), "f", 0, {})
    first = engine.claim()
    assert first is not None
    engine.finish(first, "finished", 3.0, {})
    second = engine.claim()
    assert second is not None
    engine.finish(second, "failed", None, {})
    trials = engine.trials()
    assert [t.value for t in trials] == [3.0, 3.0]
    assert [t.user_attrs["outcome"] for t in trials] == ["finished", "failed"]


def test_an_interrupted_grid_point_is_put_back_once() -> None:
    """An interrupted trial's grid point runs again; a finished one never does."""
    spec = parse_sweep(
        {"method": "grid", "metric": {"name": "loss"}, "parameters": {"x": {"values": [1, 2]}}}
    )
    engine = Engine.create(spec, optuna.storages.InMemoryStorage(), "g", 0, {})
    first, second = engine.claim(), engine.claim()
    assert first is not None
    assert second is not None
    engine.finish(first, "finished", 1.0, {})
    engine.finish(second, "interrupted", None, {})
    again = engine.claim()
    assert again is not None
    assert again.params == second.params == {"x": 2}
    engine.finish(again, "finished", 2.0, {})
    assert engine.claim() is None
    assert engine.reenqueue_failed_grid_points() == 0


def test_a_trial_whose_agent_died_is_failed_by_the_next_agent() -> None:
    """A running trial whose agent's pid is gone (``kill -9``) is marked failed when others look."""
    storage = optuna.storages.InMemoryStorage()
    engine = Engine.create(bowl_spec("random"), storage, "dead", 0, {})
    claim = engine.claim()
    assert claim is not None
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    storage.set_trial_user_attr(claim.trial_id, "agent", {**engine.agent, "pid": dead})
    engine.fail_dead_trials()
    (trial,) = engine.trials()
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["outcome"] == "failed"


@pytest.mark.parametrize("url", ["mysql://x", "redis://localhost"])
def test_an_unknown_storage_is_refused(url: str) -> None:
    """Only a journal path or a PostgreSQL URL is a storage."""
    from telemetry.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^storage must be"):
        open_storage(url)
