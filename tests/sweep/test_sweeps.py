"""Sweeps end to end: real agents, real trial processes, the storage read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from main import OwnTrain, cli, run_config
from telemetry.reader import LogReader
from telemetry.sweep import cli as sweep_cli
from telemetry.sweep.folder import SweepFolder, find_sweep
from telemetry.sweep.show import rows
from telemetry.sweep.space import grid_points
from tests.fakes.wandb_file import config as wandb_config
from tests.fakes.wandb_file import history, records, run_file

ROOT = Path(__file__).resolve().parents[2]
OBJECTIVE = Path(__file__).with_name("objective.py")
TINY_ERL = [
    "episodes=6",
    "erl.population_size=3",
    "erl.gradient_steps_per_generation=5",
    "erl.episode_length=30",
    "erl.validation_episodes=1",
    "erl.log_frequency=6",
    "sinks=[jsonl]",
]


def write_sweep(tmp_path: Path, config: dict[str, Any], name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def objective_sweep(method: str = "grid", **extra: Any) -> dict[str, Any]:
    parameters = {
        "x": {"values": [0.0, 0.1, 0.3]},
        "y": {"values": [-0.2, 0.5]},
        "steps": {"value": 3},
    }
    if method != "grid":
        parameters = {"x": {"min": -1.0, "max": 1.0}, "y": {"min": -1.0, "max": 1.0}}
    return {
        "method": method,
        "program": str(OBJECTIVE),
        "metric": {"name": "loss"},
        "parameters": parameters,
        **extra,
    }


def run_sweep(tmp_path: Path, sweep_file: Path, *args: str, timeout: float = 180) -> SweepFolder:
    """``main.py sweep`` in its own process; the sweep folder it made."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "sweep", str(sweep_file), "--out", str(out), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (done.stdout + done.stderr).splitlines()
    created = [json.loads(line) for line in lines if "sweep_created" in line]
    assert len(created) == 1, done.stderr[-2000:]
    return find_sweep(created[0]["sweep"], out, None)


def results(folder: SweepFolder) -> list[dict[str, Any]]:
    return [json.loads(line) for line in folder.results.read_text().splitlines()]


def test_grid_with_three_agents_runs_every_point_once_in_wandbs_order(tmp_path: Path) -> None:
    """Three agents at once share a grid: each point runs exactly once, numbered in W&B's order."""
    config = objective_sweep()
    folder = run_sweep(tmp_path, write_sweep(tmp_path, config), "--agents", "3")
    spec = folder.spec
    expected = [dict(sorted(p.items())) for p in grid_points(spec.params)]
    trials = rows(folder.engine())
    assert [t.state for t in trials] == ["finished"] * 6
    ran = [{k: v for k, v in t.params.items() if k != "steps"} for t in trials]
    assert ran == [{k: v for k, v in p.items() if k != "steps"} for p in expected]
    assert Counter(json.dumps(r["params"], sort_keys=True) for r in results(folder)) == Counter(
        {json.dumps({**p, "steps": 3}, sort_keys=True): 1 for p in expected}
    )


def test_a_program_gets_its_parameters_as_key_value_arguments(tmp_path: Path) -> None:
    """``program:`` with the default command gets ``--key=value`` arguments, as wandb agent does."""
    folder = run_sweep(tmp_path, write_sweep(tmp_path, objective_sweep()), "--count", "1")
    given = json.loads((folder.trial_folder(0) / "args.json").read_text())
    assert given["argv"] == ["--steps=3", "--x=0.0", "--y=-0.2"]
    (row,) = results(folder)
    assert row["outcome"] == "finished"
    assert row["best"] == pytest.approx(0.09 + 1 / 3)
    assert row["values"] == 3


def test_random_with_a_seed_suggests_the_same_trials_twice(tmp_path: Path) -> None:
    """Two sweeps with the same seed and file get the same parameters, trial by trial."""
    sweep_file = write_sweep(tmp_path, objective_sweep("random", run_cap=4))
    first = run_sweep(tmp_path, sweep_file, "--seed", "7")
    second = run_sweep(tmp_path, sweep_file, "--seed", "7")
    other = run_sweep(tmp_path, sweep_file, "--seed", "8")
    params = [[t.params for t in rows(f.engine())] for f in (first, second, other)]
    assert params[0] == params[1]
    assert params[0] != params[2]
    assert len({json.dumps(p) for p in params[0]}) == 4  # trials differ from one another


def test_run_cap_is_exact_with_three_agents(tmp_path: Path) -> None:
    """``run_cap: 7`` with three agents at once: exactly seven trials, none more."""
    folder = run_sweep(
        tmp_path, write_sweep(tmp_path, objective_sweep("bayes", run_cap=7)), "--agents", "3"
    )
    assert len(rows(folder.engine())) == 7
    assert sorted(r["trial"] for r in results(folder)) == list(range(7))


def test_metric_target_stops_new_trials(tmp_path: Path) -> None:
    """Once a trial reaches ``metric.target``, no new trial starts."""
    config = objective_sweep(metric={"name": "loss", "target": 0.5})
    folder = run_sweep(tmp_path, write_sweep(tmp_path, config))
    trials = rows(folder.engine())
    # (0.0, -0.2) ends at 0.09 + 1/3 = 0.42 <= 0.5: the first trial reaches the target.
    assert [t.state for t in trials if t.state != "waiting"] == ["finished"]
    assert folder.engine().ended_reason() == "trial 0 reached the target 0.5"


def test_a_program_that_never_logs_the_metric_fails_saying_so(tmp_path: Path) -> None:
    """A trial whose run never logs the metric ends failed, with a line naming the metric."""
    config = objective_sweep(metric={"name": "accuracy"})
    folder = run_sweep(tmp_path, write_sweep(tmp_path, config), "--count", "1")
    (row,) = results(folder)
    assert row["outcome"] == "failed"
    assert row["error"] == "the run never logged the metric 'accuracy'"


def test_hyperband_stops_trials_of_a_real_erl_sweep(tmp_path: Path) -> None:
    """Eight ERL trials under hyperband: some stop early, and their logs end ``stopped``."""
    config = {
        "method": "grid",
        "metric": {"name": "fitness/best_ever", "goal": "maximize"},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
        "parameters": {"trainer": {"value": "erl"}, "seed": {"values": list(range(8))}},
    }
    # Slower generations than TINY_ERL's, so that a stop lands before the run's end.
    overrides = [*TINY_ERL, "erl.gradient_steps_per_generation=40"]
    folder = run_sweep(tmp_path, write_sweep(tmp_path, config), "--agents", "2", *overrides)
    ended = results(folder)
    assert len(ended) == 8
    stopped = [r for r in ended if r["outcome"] == "stopped"]
    assert stopped, [(r["outcome"], r["values"]) for r in ended]
    assert {r["outcome"] for r in ended} <= {"finished", "stopped"}
    for row in stopped:
        events = list(LogReader(Path(row["run_dir"])))
        assert events[-1].type == "run_finished"
        assert events[-1].status == "stopped"  # type: ignore[union-attr]
    assert any(row["values"] < 6 for row in stopped)  # fewer generations than were asked
    for row in ended:
        config_file = yaml.safe_load((Path(row["run_dir"]) / "config.yaml").read_text())
        assert config_file["group"] == folder.id
        assert config_file["wandb"]["job_type"] == "sweep"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "anneal"}, "method"),
        ({"colour": "red"}, "colour"),
        ({"parameters": {"actor_lrr": {"min": 0.1, "max": 0.2}}}, "parameters.actor_lrr"),
        ({"parameters": {"gamma": {"min": 0.9, "max": 0.5}}}, "parameters.gamma"),
    ],
)
def test_a_bad_sweep_file_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], message: str
) -> None:
    """Unknown keys, values and parameter names exit 2 with one line naming them."""
    config = {
        "method": "random",
        "metric": {"name": "fitness/best_ever", "goal": "maximize"},
        "parameters": {"trainer": {"value": "erl"}, "actor_lr": {"min": 1e-4, "max": 1e-3}},
    }
    config.update(change)
    if "parameters" in change:
        config["parameters"] = {"trainer": {"value": "erl"}, **change["parameters"]}
    code = cli(["sweep", str(write_sweep(tmp_path, config)), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(error) == 1, error
    assert error[0].startswith("error: ")
    assert message in error[0]
    assert not (tmp_path / "out" / "sweeps").exists()  # nothing created


def test_parameter_names_reach_the_trainers_config() -> None:
    """Bare names resolve to the trainer's section, its simulator or the run; dotted ones stay."""
    train = OwnTrain(run_config())
    names = ["actor_lr", "inaction_penalty", "num_generations", "buffer_size", "seed"]
    keys = train.keys([*names, "aggregate.every"], [], {"trainer": "erl"})
    assert keys == {
        "actor_lr": "erl.actor_lr",
        "inaction_penalty": "erl.sim.inaction_penalty",
        "num_generations": "episodes",
        "buffer_size": "erl.buffer_capacity",
        "seed": "seed",
        "aggregate.every": "aggregate.every",
    }
    assert train.keys(["lr"], ["trainer=ppo"], {}) == {"lr": "ppo.lr"}


@pytest.mark.parametrize("name", ["erl", "ppo", "amp"])
def test_the_shipped_sweep_files_parse_and_reach_their_trainer(name: str) -> None:
    """configs/sweeps/<trainer>.yaml is a valid sweep whose every name is a config key."""
    spec = sweep_cli.load(ROOT / "configs" / "sweeps" / f"{name}.yaml")
    sweep_cli.check_sweep(spec, [], OwnTrain(run_config()))
    assert sweep_cli.constants(spec)["trainer"] == name
    assert spec.early_terminate is not None
    assert spec.metric is not None


def test_show_and_best_read_the_sweep_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sweep show`` prints every trial and the best; ``sweep best`` its override line."""
    folder = run_sweep(tmp_path, write_sweep(tmp_path, objective_sweep()))
    capsys.readouterr()
    assert cli(["sweep", "show", str(folder.path)]) == 0
    shown = capsys.readouterr().out
    assert shown.count("finished") == 6
    assert "best trial: 4" in shown  # (0.3, -0.2): the optimum, fifth in W&B's order
    assert cli(["sweep", "best", str(folder.path)]) == 0
    assert capsys.readouterr().out.strip() == "--steps=3 --x=0.3 --y=-0.2"


def test_a_trial_is_a_wandb_run_grouped_by_its_sweep(tmp_path: Path) -> None:
    """With wandb among the sinks (offline), a trial's run has the sweep as group, job type
    ``sweep``, and its parameters in the config."""
    config = {
        "method": "grid",
        "metric": {"name": "fitness/best_ever", "goal": "maximize"},
        "parameters": {"trainer": {"value": "erl"}, "actor_lr": {"values": [0.0005]}},
    }
    overrides = [*TINY_ERL[:-1], "sinks=[jsonl,wandb]", "wandb.mode=offline"]
    folder = run_sweep(tmp_path, write_sweep(tmp_path, config), *overrides)
    (row,) = results(folder)
    assert row["outcome"] == "finished"
    path = run_file(Path(row["run_dir"]))
    run = next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")
    assert run.run_group == folder.id
    assert run.job_type == "sweep"
    assert wandb_config(path)["erl"]["actor_lr"] == 0.0005
    assert any("fitness/best_ever" in r for r in history(path))
