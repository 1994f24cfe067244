"""Gymnasium wrappers that publish each episode's return and length, CleanRL style.

``EpisodeStatistics`` (one ``gymnasium.Env``) and ``VectorEpisodeStatistics`` (a
``gymnasium.vector.VectorEnv``) are gymnasium's own ``RecordEpisodeStatistics``
wrappers, so the numbers are theirs and ``info["episode"]`` is filled as
usual; on top, every finished episode is published once as
``charts/episodic_return`` and ``charts/episodic_length`` at the global step:
the sub-environment steps taken through the wrapper so far, ``num_envs`` per
vector step as CleanRL counts ``global_step``. Use them in place of
``RecordEpisodeStatistics``, not on top of it (gymnasium refuses a second set
of statistics under the same ``info`` key). ``publish_episodes`` picks the
right one.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import numpy as np

from telemetry.integrations import Publisher, check_publisher, missing

try:
    import gymnasium as gym
    from gymnasium.core import ActType, ObsType
    from gymnasium.vector import VectorEnv
    from gymnasium.wrappers import RecordEpisodeStatistics
    from gymnasium.wrappers.vector import RecordEpisodeStatistics as VectorRecordEpisodeStatistics
except ImportError as exc:
    raise missing("gymnasium", "pip install 'gymnasium>=1.0'") from exc

__all__ = ["EpisodeStatistics", "VectorEpisodeStatistics", "publish_episodes"]

AXIS = "global_step"
"""The default step axis of the published episodes (CleanRL's ``global_step``)."""
PREFIX = "charts/"
"""The default key prefix: ``charts/episodic_return``, ``charts/episodic_length``."""


class EpisodeStatistics(RecordEpisodeStatistics[ObsType, ActType]):
    """``RecordEpisodeStatistics`` on one environment, publishing each episode on ``bus``."""

    def __init__(
        self,
        env: gym.Env[ObsType, ActType],
        bus: Publisher,
        *,
        axis: str = AXIS,
        prefix: str = PREFIX,
        start_step: int = 0,
        buffer_length: int = 100,
        stats_key: str = "episode",
    ) -> None:
        if not isinstance(env, gym.Env):
            raise TypeError(_not_an_env(env, "EpisodeStatistics", "a gymnasium.Env"))
        self.bus = check_publisher(bus, "EpisodeStatistics")
        self.axis, self.keys = _check_names(axis, prefix)
        self.global_step = _check_start(start_step)
        """Steps taken through this wrapper (plus ``start_step``): the step episodes are
        published at."""
        super().__init__(env, buffer_length=buffer_length, stats_key=stats_key)

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        self.global_step += 1
        if terminated or truncated:
            stats = info[self._stats_key]
            self._publish(float(stats["r"]), int(stats["l"]))
        return obs, reward, terminated, truncated, info

    def _publish(self, episode_return: float, length: int) -> None:
        returns, lengths = self.keys
        self.bus.log(
            {returns: episode_return, lengths: length}, step=self.global_step, axis=self.axis
        )


class VectorEpisodeStatistics(VectorRecordEpisodeStatistics[ObsType, ActType]):
    """The vector ``RecordEpisodeStatistics``, publishing each sub-environment's episodes."""

    def __init__(
        self,
        env: VectorEnv[ObsType, ActType, Any],
        bus: Publisher,
        *,
        axis: str = AXIS,
        prefix: str = PREFIX,
        start_step: int = 0,
        buffer_length: int = 100,
        stats_key: str = "episode",
    ) -> None:
        if not isinstance(env, VectorEnv):
            raise TypeError(
                _not_an_env(env, "VectorEpisodeStatistics", "a gymnasium.vector.VectorEnv")
            )
        self.bus = check_publisher(bus, "VectorEpisodeStatistics")
        self.axis, self.keys = _check_names(axis, prefix)
        self.global_step = _check_start(start_step)
        """Sub-environment steps taken through this wrapper (``num_envs`` per ``step``, plus
        ``start_step``): the step episodes are published at."""
        super().__init__(env, buffer_length=buffer_length, stats_key=stats_key)

    def step(self, actions: ActType) -> tuple[ObsType, Any, Any, Any, dict[str, Any]]:
        obs, rewards, terminations, truncations, infos = super().step(actions)
        self.global_step += self.num_envs
        done = infos.get(f"_{self._stats_key}")
        if done is not None:
            stats = infos[self._stats_key]
            returns, lengths = self.keys
            # Several sub-environments may end at one step: one event per episode, in
            # sub-environment order, as CleanRL writes them.
            for i in np.flatnonzero(done):
                self.bus.log(
                    {returns: float(stats["r"][i]), lengths: int(stats["l"][i])},
                    step=self.global_step,
                    axis=self.axis,
                )
        return obs, rewards, terminations, truncations, infos


def publish_episodes(
    env: gym.Env[Any, Any] | VectorEnv[Any, Any, Any],
    bus: Publisher,
    *,
    axis: str = AXIS,
    prefix: str = PREFIX,
    start_step: int = 0,
) -> EpisodeStatistics[Any, Any] | VectorEpisodeStatistics[Any, Any]:
    """``env`` wrapped to publish its episodes: ``VectorEpisodeStatistics`` for a vector env."""
    if isinstance(env, VectorEnv):
        return VectorEpisodeStatistics(env, bus, axis=axis, prefix=prefix, start_step=start_step)
    if isinstance(env, gym.Env):
        return EpisodeStatistics(env, bus, axis=axis, prefix=prefix, start_step=start_step)
    raise TypeError(
        _not_an_env(env, "publish_episodes", "a gymnasium.Env or gymnasium.vector.VectorEnv")
    )


def _check_names(axis: object, prefix: object) -> tuple[str, tuple[str, str]]:
    if not isinstance(axis, str) or not axis:
        raise ValueError(f"axis must be a non-empty string such as {AXIS!r}, got {axis!r}")
    if not isinstance(prefix, str):
        raise ValueError(f"prefix must be a string such as {PREFIX!r}, got {prefix!r}")
    return axis, (f"{prefix}episodic_return", f"{prefix}episodic_length")


def _check_start(start_step: object) -> int:
    if type(start_step) is not int or start_step < 0:
        raise ValueError(f"start_step must be an integer >= 0, got {start_step!r}")
    return start_step


def _not_an_env(env: object, who: str, allowed: str) -> str:
    kind = type(env)
    if isinstance(env, str):
        hint = f"; make the environment first, e.g. gymnasium.make({env!r})"
    elif isinstance(env, VectorEnv):
        hint = "; for a vector env use VectorEpisodeStatistics (or publish_episodes)"
    elif isinstance(env, gym.Env):
        hint = "; for a single env use EpisodeStatistics (or publish_episodes)"
    elif kind.__module__.startswith("stable_baselines3"):
        hint = (
            "; an SB3 VecEnv: wrap each environment before SB3 vectorises it "
            "(make_vec_env(..., wrapper_class=...)), or use telemetry.integrations.sb3"
        )
    else:
        hint = ""
    return f"{who} wraps {allowed}, got {kind.__module__}.{kind.__qualname__}{hint}"
