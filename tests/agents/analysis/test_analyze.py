"""``main.py analyze``: the adapters' replays, the analysis folder, publishing, the refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import main
from agents.analysis.adapters import load
from agents.analysis.replay import Replay
from sims import auction, motion
from telemetry.config import load_config
from telemetry.reader import LogReader
from tests.fakes.wandb_file import history, run_file

ROOT = Path(__file__).resolve().parents[3]
NAMES = ("feature", "action", "latent", "sensitivity")
TINY = {
    "erl": [
        "episodes=2",
        "erl.population_size=3",
        "erl.gradient_steps_per_generation=5",
        "erl.episode_length=30",
        "erl.validation_episodes=1",
    ],
    "ppo": ["episodes=2", "ppo.steps_per_episode=12", "ppo.episodes_per_update=1"],
    "amp": ["episodes=1", "amp.num_envs=8", "amp.horizon=8", "amp.max_episode_steps=20"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny trained run per trainer, trained side by side."""
    out = tmp_path_factory.mktemp("runs")
    procs = {
        trainer: subprocess.Popen(
            [
                sys.executable,
                "main.py",
                "train",
                f"trainer={trainer}",
                *args,
                "sinks=[jsonl]",
                f"out={out / trainer}",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for trainer, args in TINY.items()
    }
    for proc in procs.values():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    return {trainer: next((out / trainer).iterdir()) for trainer in TINY}


@pytest.fixture
def erl_run(runs: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the ERL run, for a test that writes into it."""
    return Path(shutil.copytree(runs["erl"], tmp_path / "run"))


@pytest.fixture
def views() -> tuple[str, ...]:
    """The four views, as the command finds them."""
    from agents.analysis.views import VIEWS

    assert set(VIEWS) == set(NAMES)
    return NAMES


def _replay(run: Path, episodes: int = 3) -> Replay:
    config = load_config(main.run_config(), run / "config.yaml", [])
    return load(config.trainer, getattr(config, config.trainer), run, None, episodes, 0).replay


def _consistent(replay: Replay, episodes: int) -> None:
    n, f = replay.observations.shape
    assert replay.actions.shape == (n, len(replay.action_names))
    assert len(replay.feature_names) == f
    assert replay.returns_to_go.shape == replay.episode.shape == (n,)
    assert sorted(set(replay.episode.tolist())) == list(range(episodes))
    first = np.flatnonzero(np.diff(replay.episode, prepend=-1))
    np.testing.assert_allclose(replay.returns_to_go[first], replay.episode_returns, atol=1e-4)
    assert all(value.shape == (n,) for value in replay.context.values())
    x = torch.as_tensor(replay.observations)
    assert replay.policy(x).shape == replay.actions.shape
    assert replay.hidden(x).shape[0] == n


def test_erl_replay_matches_its_policy_and_simulator(runs: dict[str, Path]) -> None:
    """The ERL replay's actions are its policy's, its names the layout's, evaluate its return."""
    replay = _replay(runs["erl"])
    _consistent(replay, 3)
    out = replay.policy(torch.as_tensor(replay.observations)).numpy()
    np.testing.assert_allclose(out, replay.actions, atol=1e-5)
    assert replay.feature_names[0] == "return/stock0/t-9"
    assert replay.feature_names[-4:] == [
        "holding/stock2",
        "holding/stock3",
        "time_of_day",
        "progress",
    ]
    assert all(replay.feature_names[i].startswith("return/") for i in replay.price_features)
    assert set(replay.context) == {"regime", "hour", "position", "trading"}
    assert set(replay.context["regime"].tolist()) <= {"bull", "bear", "sideways"}
    assert replay.evaluate is not None

    def act(obs: np.ndarray) -> np.ndarray:
        return replay.policy(torch.as_tensor(obs[None]))[0].numpy()

    assert replay.evaluate(act) == pytest.approx(float(replay.episode_returns.mean()), abs=1e-4)


def test_ppo_replay_holds_greedy_levels_and_auction_fields(runs: dict[str, Path]) -> None:
    """PPO's actions are bid level indices; its policy is an expected level in their range."""
    replay = _replay(runs["ppo"])
    _consistent(replay, 3)
    assert replay.feature_names == list(auction.OBS_FIELDS)
    assert np.array_equal(replay.actions, np.rint(replay.actions))
    expected = replay.policy(torch.as_tensor(replay.observations)).numpy()
    assert expected.min() >= 0.0
    assert expected.max() <= auction.AuctionConfig().n_bid_levels - 1
    assert set(replay.context) == {"hour", "segment", "budget_left"}


def test_amp_replay_records_the_actor_means(runs: dict[str, Path]) -> None:
    """AMP's actions are its actor's means; features and actions carry the simulator's names."""
    replay = _replay(runs["amp"])
    _consistent(replay, 3)
    assert replay.feature_names == list(motion.OBS_FIELDS)
    assert replay.action_names == list(motion.JOINT_NAMES)
    out = replay.policy(torch.as_tensor(replay.observations)).numpy()
    np.testing.assert_allclose(out, replay.actions, atol=1e-5)


@pytest.mark.parametrize("trainer", list(TINY))
def test_analyze_all_writes_a_png_per_view_the_numbers_and_a_summary(
    runs: dict[str, Path], views: tuple[str, ...], trainer: str, tmp_path: Path
) -> None:
    """``analyze --type all`` on each trainer's run folder writes every view's outputs."""
    run = Path(shutil.copytree(runs[trainer], tmp_path / "run"))
    assert main.cli(["analyze", str(run), "--type", "all", "--episodes", "2"]) == 0
    folder = run / "analysis"
    assert {p.name for p in folder.glob("*.png")} == {f"{name}.png" for name in views}
    assert set(json.loads((folder / "analysis.json").read_text())) == set(views)
    summary = (folder / "summary.md").read_text()
    assert all(f"## {name} (" in summary for name in views)


def test_log_to_wandb_puts_the_images_in_the_resumed_run(
    erl_run: Path, views: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``--log-to wandb`` resumes the run: same id, seq after the log's, images in its run file."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    before = list(LogReader(erl_run))
    assert main.cli(["analyze", str(erl_run), "--episodes", "2", "--log-to", "wandb"]) == 0
    added = list(LogReader(erl_run))[len(before) :]
    assert added[0].seq == before[-1].seq + 1
    assert {e.run_id for e in added} == {before[0].run_id}
    file = run_file(erl_run)
    assert file.name == f"run-{before[0].run_id}.wandb"
    rows = history(file)
    for name in views:
        assert any(row.get(f"analysis/{name}/_type") == "image-file" for row in rows)


def test_log_to_tensorboard_writes_image_summaries(erl_run: Path, views: tuple[str, ...]) -> None:
    """``--log-to tensorboard`` writes one image summary per view under ``analysis/<view>``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main.cli(["analyze", str(erl_run), "--episodes", "2", "--log-to", "tensorboard"]) == 0
    events = EventAccumulator(str(erl_run / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["images"]) == {f"analysis/{name}" for name in views}
    assert events.Images(f"analysis/{views[0]}")[0].encoded_image_string[:4] == b"\x89PNG"


def _mismatched(run: Path) -> list[str]:
    config = OmegaConf.load(run / "config.yaml")
    config.erl.hidden_size = 8
    OmegaConf.save(config, run / "config.yaml")
    return [str(run / "checkpoints" / "erl-best.pt")]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing checkpoint", "does not exist"),
        (
            "mismatched checkpoint",
            "does not match the run's erl config: l1.weight is (64, 50) there, (8, 50)",
        ),
        ("no config", "no config.yaml"),
        ("unknown type", "--type must be one of"),
        ("unknown sink", "bogus"),
        ("no checkpoints", "no erl checkpoint"),
    ],
)
def test_refusals_exit_2_with_one_line_and_write_nothing(
    erl_run: Path, case: str, message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Each refusal is one ``error:`` line naming it, status 2, and no analysis folder."""
    args = {
        "missing checkpoint": [str(erl_run / "checkpoints" / "erl-gone.pt")],
        "no config": [str(tmp_path)],
        "unknown type": [str(erl_run), "--type", "salience"],
        "unknown sink": [str(erl_run), "--log-to", "wandb,bogus"],
    }.get(case, [str(erl_run)])
    if case == "mismatched checkpoint":
        args = _mismatched(erl_run)
    if case == "no checkpoints":
        shutil.rmtree(erl_run / "checkpoints")
    capsys.readouterr()
    assert main.cli(["analyze", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    assert message in err[0]
    assert not (erl_run / "analysis").exists()
