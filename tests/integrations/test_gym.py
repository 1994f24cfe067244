"""Gymnasium wrappers: gymnasium's own episode statistics, each episode published once."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import SyncVectorEnv
from gymnasium.wrappers import RecordEpisodeStatistics
from gymnasium.wrappers.vector import RecordEpisodeStatistics as VectorRecordEpisodeStatistics

from sinks.jsonl import JsonlSink
from sinks.memory import MemorySink
from telemetry.bus import Bus
from telemetry.events import Metrics
from telemetry.integrations.gym import (
    EpisodeStatistics,
    VectorEpisodeStatistics,
    publish_episodes,
)
from telemetry.reader import LogReader

RUN = "gym-test"
Episode = tuple[int, float, int]
"""(global step at its end, return, length)."""


def _single_episodes(env: gym.Env[Any, Any], count: int) -> list[Episode]:
    """Seeded random actions for ``count`` episodes; each episode's stats from ``info``."""
    env.reset(seed=3)
    env.action_space.seed(3)
    episodes: list[Episode] = []
    steps = 0
    while len(episodes) < count:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            episodes.append((steps, float(info["episode"]["r"]), int(info["episode"]["l"])))
            env.reset()
    env.close()
    return episodes


def _vector_episodes(envs: gym.vector.VectorEnv[Any, Any, Any], steps: int) -> list[Episode]:
    """Seeded random actions for ``steps`` vector steps; every sub-environment's episodes."""
    envs.reset(seed=5)
    envs.action_space.seed(5)
    episodes: list[Episode] = []
    for t in range(1, steps + 1):
        _, _, _, _, infos = envs.step(envs.action_space.sample())
        if "_episode" in infos:
            for i in np.flatnonzero(infos["_episode"]):
                stats = infos["episode"]
                episodes.append((t * envs.num_envs, float(stats["r"][i]), int(stats["l"][i])))
    envs.close()
    return episodes


def _published(path: Path) -> list[Episode]:
    return [
        (e.step, e.values["charts/episodic_return"], int(e.values["charts/episodic_length"]))
        for e in LogReader(path)
        if isinstance(e, Metrics) and e.axis == "global_step"
    ]


async def test_single_env_episodes_match_record_episode_statistics(tmp_path: Path) -> None:
    """Returns and lengths equal RecordEpisodeStatistics's, each published once at its last step."""
    expected = _single_episodes(RecordEpisodeStatistics(gym.make("CartPole-v1")), 12)
    log_path = tmp_path / "events.jsonl"
    async with Bus(RUN, [JsonlSink(log_path, RUN)], health_interval=None) as bus:
        env = EpisodeStatistics(gym.make("CartPole-v1"), bus)
        assert _single_episodes(env, 12) == expected
        assert env.global_step == expected[-1][0]
    assert _published(log_path) == expected
    assert [step for step, _, _ in expected] == list(np.cumsum([n for _, _, n in expected]))


async def test_vector_env_episodes_match_the_vector_wrapper(tmp_path: Path) -> None:
    """Three CartPoles in a SyncVectorEnv: every episode of each, once, counting num_envs a step."""

    def make() -> SyncVectorEnv:
        return SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(3)])

    expected = _vector_episodes(VectorRecordEpisodeStatistics(make()), 200)
    assert len(expected) > 10
    assert len({step for step, _, _ in expected}) < len(expected)  # some end together
    log_path = tmp_path / "events.jsonl"
    async with Bus(RUN, [JsonlSink(log_path, RUN)], health_interval=None) as bus:
        envs = publish_episodes(make(), bus, start_step=0)
        assert isinstance(envs, VectorEpisodeStatistics)
        assert _vector_episodes(envs, 200) == expected
        assert envs.global_step == 600
    assert _published(log_path) == expected


async def test_axis_prefix_and_start_step_are_configurable() -> None:
    """A chosen axis, key prefix and starting step (a resumed run) shape what is published."""
    memory = MemorySink()
    async with Bus(RUN, [memory], health_interval=None) as bus:
        env = publish_episodes(
            gym.make("CartPole-v1"), bus, axis="env_step", prefix="episode/", start_step=1000
        )
        assert isinstance(env, EpisodeStatistics)
        episodes = _single_episodes(env, 2)
    (first, second) = memory.of_type(Metrics)
    assert isinstance(first, Metrics)
    assert isinstance(second, Metrics)
    assert (first.axis, first.step) == ("env_step", 1000 + episodes[0][0])
    assert first.values == {
        "episode/episodic_return": episodes[0][1],
        "episode/episodic_length": episodes[0][2],
    }
    assert second.step == 1000 + episodes[1][0]


async def test_bad_input_is_refused_with_what_is_allowed() -> None:
    """An id instead of an env, the wrong kind of env, or no bus raise, saying what fits."""
    async with Bus(RUN, [MemorySink()], health_interval=None) as bus:
        with pytest.raises(TypeError, match=r"gymnasium\.make\('CartPole-v1'\)"):
            publish_episodes("CartPole-v1", bus)  # type: ignore[arg-type]
        vector = SyncVectorEnv([lambda: gym.make("CartPole-v1")])
        with pytest.raises(TypeError, match="for a vector env use VectorEpisodeStatistics"):
            EpisodeStatistics(vector, bus)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="for a single env use EpisodeStatistics"):
            VectorEpisodeStatistics(gym.make("CartPole-v1"), bus)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="telemetry Bus"):
            EpisodeStatistics(gym.make("CartPole-v1"), object())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="axis"):
            EpisodeStatistics(gym.make("CartPole-v1"), bus, axis="")
        with pytest.raises(ValueError, match="start_step"):
            VectorEpisodeStatistics(vector, bus, start_step=-1)
        vector.close()


def test_a_missing_gymnasium_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without gymnasium the module's import fails with the pip command."""
    for name in [m for m in sys.modules if m.split(".")[0] == "gymnasium"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "telemetry.integrations.gym")
    with pytest.raises(ImportError, match=r"needs gymnasium.*pip install"):
        importlib.import_module("telemetry.integrations.gym")
