"""Users' callbacks on the real trainers (agents.callbacks through agents.loop)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
import torch

from agents import amp, erl, ppo
from agents.base import TrainResult
from agents.callbacks import (
    ERRORS_KEY,
    Callback,
    CallbackContext,
    TrainerState,
    attach,
    load_callbacks,
)
from agents.loop import Saved, StepRecord, TrainerLoop
from sinks.jsonl import JsonlSink
from telemetry.bus import Bus
from telemetry.errors import ConfigError
from telemetry.events import Alert, Metrics
from telemetry.reader import LogReader

torch.set_num_threads(1)

TINY: dict[str, tuple[Callable[..., Any], Any]] = {
    "erl": (
        erl.build,
        erl.ERLConfig(
            population_size=4,
            episode_length=20,
            episodes_per_generation=1,
            gradient_steps_per_generation=5,
            batch_size=16,
            buffer_capacity=1000,
            hidden_size=16,
            validation_episodes=2,
            log_frequency=2,
            sync_period=2,
            checkpoint_frequency=2,
        ),
    ),
    "ppo": (
        ppo.build,
        ppo.PPOConfig(
            steps_per_episode=8,
            impressions_per_step=30,
            daily_budget=100.0,
            minibatch_size=8,
            update_epochs=2,
            hidden_size=16,
            calibration_size=300,
            ctr_steps=5,
            eval_frequency=3,
            save_freq=2,
        ),
    ),
    "amp": (
        amp.build,
        amp.AMPConfig(
            num_envs=8,
            horizon=8,
            max_episode_steps=6,
            mini_epochs=2,
            minibatch_size=32,
            hidden_size=32,
            eval_frequency=2,
            eval_trials=4,
            save_freq=2,
        ),
    ),
}
AXES = {"erl": erl.AXIS, "ppo": ppo.AXIS, "amp": amp.AXIS}


class Recorder(Callback):
    """Records every hook call and logs one metric of its own per step."""

    def __init__(self, key: str = "user/double") -> None:
        self.key = key
        self.calls: list[tuple[str, TrainerState]] = []
        self.threads: set[int] = set()

    def _note(self, hook: str, state: TrainerState) -> None:
        self.calls.append((hook, state))
        self.threads.add(threading.get_ident())

    def on_train_start(self, state: TrainerState, ctx: CallbackContext) -> None:
        self._note("on_train_start", state)

    def on_step(self, state: TrainerState, ctx: CallbackContext) -> None:
        self._note("on_step", state)
        ctx.log({self.key: 2.0 * state.step})

    def on_episode_end(self, state: TrainerState, ctx: CallbackContext) -> None:
        self._note("on_episode_end", state)

    def on_checkpoint(self, state: TrainerState, ctx: CallbackContext) -> None:
        self._note("on_checkpoint", state)

    def on_train_end(self, state: TrainerState, ctx: CallbackContext) -> None:
        self._note("on_train_end", state)

    def hooks(self, name: str) -> list[TrainerState]:
        """The states passed to hook ``name``."""
        return [state for hook, state in self.calls if hook == name]


class Raising(Callback):
    """Raises on its second step."""

    def __init__(self) -> None:
        self.steps = 0

    def on_step(self, state: TrainerState, ctx: CallbackContext) -> None:
        self.steps += 1
        if self.steps == 2:
            raise RuntimeError("user bug")


async def train(name: str, run_dir: Path, steps: int, *callbacks: Callback) -> TrainResult:
    """Train trainer ``name`` at its tiny size for ``steps`` steps into a real log."""
    build, config = TINY[name]
    with anyio.fail_after(60):
        sink = JsonlSink(run_dir / "events.jsonl", "cb")
        async with Bus("cb", [sink], health_interval=None) as bus:
            trainer = build(config, bus, run_dir, 0, callbacks=callbacks[:1])
            trainer.callbacks.extend(callbacks[1:])
            result: TrainResult = await trainer.train(steps)
    return result


def metrics(run_dir: Path) -> list[Metrics]:
    """The metrics events of the run's log."""
    return [e for e in LogReader(run_dir / "events.jsonl") if isinstance(e, Metrics)]


@pytest.mark.parametrize("name", ["erl", "ppo", "amp"])
async def test_callbacks_see_every_step_of_a_real_run(name: str, tmp_path: Path) -> None:
    """Two callbacks see every hook of a short run in order, and their metrics reach the log."""
    first, second = Recorder("user/first"), Recorder("user/second")
    result = await train(name, tmp_path, 4, first, second)
    axis = AXES[name]
    for recorder in (first, second):
        assert [s.step for s in recorder.hooks("on_step")] == [0, 1, 2, 3]
        assert [s.step for s in recorder.hooks("on_episode_end")] == [0, 1, 2, 3]
        (start,) = recorder.hooks("on_train_start")
        assert (start.step, start.num_steps, start.trainer, start.axis) == (0, 4, name, axis)
        (end,) = recorder.hooks("on_train_end")
        assert end.result == result
        assert [s.step for s in recorder.hooks("on_checkpoint")] == [1, 3]
        assert all(s.checkpoint and s.checkpoint.exists() for s in recorder.hooks("on_checkpoint"))
        assert recorder.calls[0][0] == "on_train_start"
        assert recorder.calls[-1][0] == "on_train_end"
        assert threading.get_ident() not in recorder.threads
    trainer_steps = [e for e in metrics(tmp_path) if "user/first" not in e.values]
    step_states = first.hooks("on_step")
    for state in step_states:
        assert state.run_dir == tmp_path
        logged = next(e for e in trainer_steps if e.step == state.step and e.axis == axis)
        assert dict(state.metrics) == pytest.approx(logged.values)
        assert dict(first.hooks("on_episode_end")[state.step].episode) == dict(state.metrics)
    with pytest.raises(TypeError):
        step_states[0].metrics["x"] = 1.0  # type: ignore[index]
    for key in ("user/first", "user/second"):
        mine = [(e.step, e.axis, e.values[key]) for e in metrics(tmp_path) if key in e.values]
        assert mine == [(s, axis, 2.0 * s) for s in range(4)]


async def test_a_raising_callback_is_reported_once_counted_and_disabled(tmp_path: Path) -> None:
    """A callback that raises is warned about once, counted in the log, and never called again."""
    raising, recorder = Raising(), Recorder()
    with structlog.testing.capture_logs() as logs:
        result = await train("ppo", tmp_path, 5, raising, recorder)
    assert result.episodes == 5
    assert raising.steps == 2
    assert len(recorder.hooks("on_step")) == 5
    (warning,) = [line for line in logs if line["event"] == "callback_failed"]
    assert warning["hook"] == "on_step"
    assert warning["callback"].endswith("Raising")
    assert "user bug" in warning["error"]
    counted = [(e.step, e.values[ERRORS_KEY]) for e in metrics(tmp_path) if ERRORS_KEY in e.values]
    assert counted == [(1, 1)]


class Episodes:
    """A counting trainer whose every step reports two episodes."""

    def __init__(self, bus: Bus, run_dir: Path) -> None:
        self.config = {"n": 1}
        self.done = 0
        self.run_dir = run_dir
        self.loop = TrainerLoop(bus, "round", name="toy", run_dir=run_dir)

    def begin(self) -> None:
        return None

    def step(self, last: bool) -> StepRecord:
        step, self.done = self.done, self.done + 1
        episodes = ({"ep/return": 1.0}, {"ep/return": 2.0})
        return StepRecord(step, {"x": float(step)}, episodes=episodes)

    def save(self) -> Saved:
        path = self.run_dir / f"toy-{self.done}.pt"
        path.write_bytes(b"x")
        return Saved(path)

    def result(self) -> TrainResult:
        return TrainResult(self.run_dir, self.done)


async def test_episodes_a_step_reports_each_get_on_episode_end(tmp_path: Path) -> None:
    """A step that reports its episodes calls ``on_episode_end`` once per episode, in order."""
    recorder = Recorder()
    with anyio.fail_after(20):
        async with Bus("toy", [JsonlSink(tmp_path / "events.jsonl", "toy")]) as bus:
            trainer = Episodes(bus, tmp_path)
            attach(trainer.loop, [recorder])
            await trainer.loop.run(trainer, 2)
    ends = recorder.hooks("on_episode_end")
    assert [(s.step, s.episode_index, s.episode["ep/return"]) for s in ends] == [
        (0, 0, 1.0),
        (0, 1, 2.0),
        (1, 0, 1.0),
        (1, 1, 2.0),
    ]
    assert [s.trainer for s in ends] == ["toy"] * 4


async def test_ctx_emit_fills_in_the_step_and_axis(tmp_path: Path) -> None:
    """``ctx.emit`` publishes any event; ``step`` and ``axis`` default to the current ones."""

    class Alerting(Callback):
        def on_step(self, state: TrainerState, ctx: CallbackContext) -> None:
            ctx.emit(Alert, title=f"step {state.step}")

    with anyio.fail_after(20):
        async with Bus("toy", [JsonlSink(tmp_path / "events.jsonl", "toy")]) as bus:
            trainer = Episodes(bus, tmp_path)
            trainer.loop.callbacks.append(Alerting())
            await trainer.loop.run(trainer, 2)
    alerts = [e for e in LogReader(tmp_path / "events.jsonl") if isinstance(e, Alert)]
    expected = [("step 0", 0, "round"), ("step 1", 1, "round")]
    assert [(a.title, a.step, a.axis) for a in alerts] == expected


def test_load_callbacks_resolves_import_paths_and_names_a_bad_one() -> None:
    """``"pkg.module:Class"`` paths load; a malformed or missing one is a ConfigError naming it."""
    (loaded,) = load_callbacks(["agents.callbacks:Callback"])
    assert type(loaded) is Callback
    for bad in ("agents.callbacks", "agents.nowhere:X", "agents.callbacks:Nope", "math:pi"):
        with pytest.raises(ConfigError, match="callbacks"):
            load_callbacks([bad])
    with pytest.raises(ConfigError, match="takes no callbacks"):
        attach(object(), [loaded])
