"""SB3 on the bus: its own keys at its own steps, hyperparameters, checkpoints, bad input."""

from __future__ import annotations

import csv
import importlib
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.logger import (
    CSVOutputFormat,
    HParam,
    Logger,
    Video,
)

from sinks.jsonl import JsonlSink
from sinks.memory import MemorySink
from telemetry.bus import Bus
from telemetry.events import ArtifactSaved, Hyperparameters, Metrics
from telemetry.integrations.sb3 import (
    TelemetryCallback,
    TelemetryOutputFormat,
    hyperparameters,
)
from telemetry.reader import LogReader

RUN = "sb3-test"


def _ppo(n_steps: int = 512, n_epochs: int = 2) -> PPO:
    return PPO("MlpPolicy", "CartPole-v1", n_steps=n_steps, n_epochs=n_epochs, seed=0, device="cpu")


def _text(value: float) -> set[str]:
    """How SB3's CSV may have written a value we hold: as it was, or as a float32."""
    return {str(value), str(np.float32(value))}


async def test_every_csv_key_and_value_is_in_the_log_at_the_same_step(tmp_path: Path) -> None:
    """SB3's own CSV and our format, configured together, hold the same keys and values per step."""
    log_path = tmp_path / "events.jsonl"
    checkpoints = tmp_path / "checkpoints"
    async with Bus(RUN, [JsonlSink(log_path, RUN)], health_interval=None) as bus:
        model = _ppo()
        csv_format = CSVOutputFormat(str(tmp_path / "progress.csv"))
        model.set_logger(Logger(str(tmp_path), [csv_format, TelemetryOutputFormat(bus)]))
        callback = TelemetryCallback(bus, save_every=1024, save_path=checkpoints)
        with anyio.fail_after(60):
            await anyio.to_thread.run_sync(
                lambda: model.learn(2048, callback=callback), abandon_on_cancel=True
            )
        formats = model.logger.output_formats
        assert sum(isinstance(f, TelemetryOutputFormat) for f in formats) == 1
    model.logger.close()

    events = list(LogReader(log_path))
    metrics = {e.step: e for e in events if isinstance(e, Metrics)}
    with (tmp_path / "progress.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["time/total_timesteps"]) for r in rows] == [512, 1024, 1536, 2048]
    assert sorted(metrics) == [512, 1024, 1536, 2048]
    assert {e.axis for e in metrics.values()} == {"timestep"}
    for row in rows:
        ours = metrics[int(row["time/total_timesteps"])].values
        written = {key: text for key, text in row.items() if text != ""}
        assert set(ours) == set(written)
        for key, text in written.items():
            assert text in _text(ours[key]), key
    assert "rollout/ep_rew_mean" in metrics[2048].values
    assert "train/value_loss" in metrics[2048].values

    (hparams,) = [e for e in events if isinstance(e, Hyperparameters)]
    assert hparams.values["algo"] == "PPO"
    assert hparams.values["env"] == "CartPole-v1"
    assert hparams.values["n_steps"] == 512
    assert hparams.values["total_timesteps"] == 2048
    assert hparams.values["clip_range"] == 0.2

    artifacts = [e for e in events if isinstance(e, ArtifactSaved)]
    assert [(a.step, a.axis, a.kind) for a in artifacts] == [
        (1024, "timestep", "checkpoint"),
        (2048, "timestep", "checkpoint"),
    ]
    assert artifacts[-1].path == str(checkpoints / "rl_model_2048_steps.zip")
    loaded = PPO.load(artifacts[-1].path, device="cpu")
    assert (loaded.n_steps, loaded.num_timesteps) == (512, 2048)
    assert loaded.predict(np.zeros(4, dtype=np.float32), deterministic=True)[0] in (0, 1)


async def test_the_callback_attaches_the_format_to_the_default_logger() -> None:
    """Without a logger of ours, the callback adds the format and SB3's keys reach the bus."""
    memory = MemorySink()
    async with Bus(RUN, [memory], health_interval=None) as bus:
        model = _ppo(n_steps=256, n_epochs=1)
        with anyio.fail_after(60):
            await anyio.to_thread.run_sync(
                lambda: model.learn(512, callback=TelemetryCallback(bus)), abandon_on_cancel=True
            )
    steps = [e.step for e in memory.of_type(Metrics) if isinstance(e, Metrics)]
    assert steps == [256, 512]
    assert [step for step, _ in memory.values("time/fps")] == [256, 512]
    assert len(memory.of_type(Hyperparameters)) == 1


async def test_non_numbers_are_skipped_as_sb3s_formats_do() -> None:
    """Numbers published; excluded keys, text and media skipped; an HParam is hyperparameters."""
    memory = MemorySink()
    async with Bus(RUN, [memory], health_interval=None) as bus:
        output = TelemetryOutputFormat(bus)
        sb3_logger = Logger(None, [output])
        media = ("stdout", "log", "json", "csv")
        sb3_logger.record("a/float", 1.5)
        sb3_logger.record("a/int", 3)
        sb3_logger.record("a/numpy", np.float32(0.25))
        sb3_logger.record("a/one_element", np.array([2.0]))
        sb3_logger.record("a/tensor", th.tensor(4.0))
        sb3_logger.record("a/flag", True)
        sb3_logger.record("a/excluded", 9.0, exclude="telemetry")
        sb3_logger.record("a/not_for_tensorboard", 5, exclude="tensorboard")
        sb3_logger.record("a/text", "hello")
        sb3_logger.record("a/histogram", np.arange(3.0))
        sb3_logger.record("a/video", Video(th.zeros(1, 1, 3, 2, 2), fps=1), exclude=media)
        sb3_logger.record("hparams", HParam({"lr": 0.1, "algo": "PPO"}, {"a/float": 0}), media)
        sb3_logger.dump(step=7)
        sb3_logger.record("a/text", "again")
        sb3_logger.dump(step=8)
    (metrics,) = memory.of_type(Metrics)
    assert isinstance(metrics, Metrics)
    assert (metrics.step, metrics.axis) == (7, "timestep")
    assert metrics.values == {
        "a/float": 1.5,
        "a/int": 3,
        "a/numpy": 0.25,
        "a/one_element": 2.0,
        "a/tensor": 4.0,
        "a/flag": 1,
        "a/not_for_tensorboard": 5,
    }
    assert sorted(output.skipped) == ["a/histogram", "a/text", "a/video"]
    assert "histogram" in output.skipped["a/histogram"]
    (hparams,) = memory.of_type(Hyperparameters)
    assert isinstance(hparams, Hyperparameters)
    assert hparams.values == {"lr": 0.1, "algo": "PPO"}


def test_hyperparameters_are_the_constructor_arguments() -> None:
    """The model's constructor arguments, flat: schedules as values, mappings as outer/inner."""
    model = PPO(
        "MlpPolicy", "CartPole-v1", n_steps=128, policy_kwargs={"net_arch": [16]}, device="cpu"
    )
    values = hyperparameters(model)
    assert values["policy"] == "ActorCriticPolicy"
    assert values["policy_kwargs/net_arch"] == "[16]"
    assert values["learning_rate"] == 3e-4
    assert values["n_envs"] == 1
    assert values["env"] == "CartPole-v1"
    assert "verbose" not in values


async def test_bad_input_is_refused_with_what_is_allowed() -> None:
    """Not a bus, a negative interval, or an interval without a folder raise, naming the problem."""
    with pytest.raises(TypeError, match="telemetry Bus"):
        TelemetryOutputFormat(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="telemetry Bus"):
        TelemetryCallback("bus")  # type: ignore[arg-type]
    async with Bus(RUN, [MemorySink()], health_interval=None) as bus:
        with pytest.raises(ValueError, match="save_path"):
            TelemetryCallback(bus, save_every=100)
        with pytest.raises(ValueError, match="save_every"):
            TelemetryCallback(bus, save_every=-1, save_path="x")
        with pytest.raises(ValueError, match="save_every"):
            TelemetryCallback(bus, save_path="x")
        with pytest.raises(ValueError, match="axis"):
            TelemetryOutputFormat(bus, axis="")


def test_a_missing_sb3_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SB3 the module's import fails with the pip command, --no-deps included."""
    for name in [m for m in sys.modules if m.split(".")[0] == "stable_baselines3"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "telemetry.integrations.sb3")
    with pytest.raises(ImportError, match=r"needs stable-baselines3.*pip install --no-deps"):
        importlib.import_module("telemetry.integrations.sb3")
