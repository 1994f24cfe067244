"""Tests for the planar AMP character simulation in sims.motion."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from sims.motion import (
    ACTION_DIM,
    AMP_FRAME_DIM,
    AMP_FRAME_FIELDS,
    AMP_TRANSITION_DIM,
    OBS_DIM,
    OBS_FIELDS,
    GaitController,
    MotionConfig,
    MotionEnv,
    amp_observation,
    evaluate,
    make_reference_clips,
    sample_reference_transitions,
)

Policy = Any


def _random_policy(seed: int) -> Policy:
    """Return a uniformly random policy over the action box, seeded."""
    rng = np.random.default_rng(seed)

    def policy(obs: NDArray[np.float32]) -> NDArray[np.float32]:
        return rng.uniform(-1.0, 1.0, size=(obs.shape[0], ACTION_DIM)).astype(np.float32)

    return policy


def _zero_policy(obs: NDArray[np.float32]) -> NDArray[np.float32]:
    """Hold every joint at the middle of its target range (no balance feedback)."""
    return np.zeros((obs.shape[0], ACTION_DIM), dtype=np.float32)


def _rollout(seed: int, steps: int, action_seed: int = 0) -> list[NDArray[Any]]:
    """Run random actions from a seeded reset and return every returned array."""
    env = MotionEnv(MotionConfig(num_envs=8))
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(action_seed)
    out: list[NDArray[Any]] = [obs]
    for _ in range(steps):
        action = rng.uniform(-1.0, 1.0, size=env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        out += [obs, reward, terminated, truncated, info["amp_obs"], info["final_obs"]]
    return out


def test_reset_and_step_are_deterministic_under_seed() -> None:
    """The same seed and actions give bit-identical observations, rewards and flags."""
    first = _rollout(seed=3, steps=80)
    second = _rollout(seed=3, steps=80)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_different_seeds_differ() -> None:
    """Different reset seeds give different initial states and trajectories."""
    first = _rollout(seed=1, steps=20)
    second = _rollout(seed=2, steps=20)
    assert not np.array_equal(first[0], second[0])
    assert not np.array_equal(first[-6], second[-6])


def test_actions_causally_determine_motion() -> None:
    """From the same seeded reset, different action sequences lead to different motion."""
    first = _rollout(seed=5, steps=10, action_seed=0)
    second = _rollout(seed=5, steps=10, action_seed=1)
    np.testing.assert_array_equal(first[0], second[0])
    assert not np.allclose(first[-6][:, :AMP_FRAME_DIM], second[-6][:, :AMP_FRAME_DIM])


def test_spaces_contain_observations_and_step_shapes() -> None:
    """Batched and per-env spaces contain the observations; step arrays have (num_envs,)."""
    cfg = MotionConfig(num_envs=6)
    env = MotionEnv(cfg)
    assert env.observation_space.shape == (6, OBS_DIM)
    assert env.single_observation_space.shape == (OBS_DIM,) == (len(OBS_FIELDS),)
    assert env.action_space.shape == (6, ACTION_DIM)
    assert env.single_action_space.shape == (ACTION_DIM,)
    obs, info = env.reset(seed=0)
    assert info == {}
    assert env.observation_space.contains(obs)
    env.action_space.seed(0)
    for _ in range(60):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert env.single_observation_space.contains(obs[0])
        assert reward.shape == terminated.shape == truncated.shape == (6,)
        assert reward.dtype == np.float32
        assert terminated.dtype == truncated.dtype == np.bool_
        assert np.all((reward > 0.0) & (reward <= 1.0))
        assert not np.any(terminated & truncated)


def test_reference_clips_share_the_policy_amp_layout() -> None:
    """Clip frames, sampled reference transitions and info["amp_obs"] share one AMP layout."""
    clips = make_reference_clips(seed=0, n_clips=6, num_frames=50)
    assert len(clips) == 6
    assert {clip.name for clip in clips} >= {"walk", "trot", "turn_left", "turn_right"}
    for clip in clips:
        assert clip.frames.shape == (50, AMP_FRAME_DIM) == (50, len(AMP_FRAME_FIELDS))
        assert clip.frames.dtype == np.float32
        assert np.isfinite(clip.frames).all()
        assert clip.speed > 0.0
    again = make_reference_clips(seed=0, n_clips=6, num_frames=50)
    for clip, other in zip(clips, again, strict=True):
        np.testing.assert_array_equal(clip.frames, other.frames)

    batch = sample_reference_transitions(clips, 256, np.random.default_rng(0))
    assert batch.shape == (256, AMP_TRANSITION_DIM) == (256, 2 * AMP_FRAME_DIM)
    frames = np.concatenate([clip.frames for clip in clips])
    for row in batch[:16]:
        k = int(np.flatnonzero((frames == row[:AMP_FRAME_DIM]).all(axis=1))[0])
        np.testing.assert_array_equal(frames[k + 1], row[AMP_FRAME_DIM:])

    env = MotionEnv(MotionConfig(num_envs=4))
    obs, _ = env.reset(seed=0)
    before = amp_observation(env.state)
    np.testing.assert_array_equal(before, obs[:, :AMP_FRAME_DIM])
    obs, _, terminated, truncated, info = env.step(np.zeros((4, ACTION_DIM), np.float32))
    assert not (terminated | truncated).any()
    assert info["amp_obs"].shape == (4, batch.shape[1])
    np.testing.assert_array_equal(info["amp_obs"][:, :AMP_FRAME_DIM], before)
    np.testing.assert_array_equal(info["amp_obs"][:, AMP_FRAME_DIM:], amp_observation(env.state))


def test_falls_terminate_and_autoreset() -> None:
    """A policy without balance falls, which terminates the episode and resets it in place."""
    cfg = MotionConfig(num_envs=8)
    env = MotionEnv(cfg)
    obs, _ = env.reset(seed=0)
    fell_any = False
    for _ in range(cfg.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(_zero_policy(obs))
        assert not truncated.any()
        if terminated.any():
            idx = np.flatnonzero(terminated)
            np.testing.assert_array_equal(info["fell"], terminated)
            assert info["_final_obs"][idx].all()
            assert (np.abs(info["final_obs"][idx, 8]) > cfg.fall_angle).all()
            assert (info["episode_length"][idx] > 0).all()
            assert (info["episode_length"][idx] < cfg.max_episode_steps).all()
            assert (obs[idx, 21] == 0.0).all()
            assert (np.abs(obs[idx, 8]) <= cfg.init_noise).all()
            fell_any = True
            break
    assert fell_any
    obs, *_ = env.step(_zero_policy(obs))
    assert env.observation_space.contains(obs)


def test_truncation_at_max_episode_steps() -> None:
    """A balanced gait survives until max_episode_steps, where episodes truncate and reset."""
    cfg = MotionConfig(num_envs=8, max_episode_steps=40)
    env = MotionEnv(cfg)
    controller = GaitController(cfg)
    obs, _ = env.reset(seed=0)
    for step in range(1, cfg.max_episode_steps + 1):
        obs, _, terminated, truncated, info = env.step(controller(obs))
        assert not terminated.any()
        assert truncated.all() == (step == cfg.max_episode_steps)
    np.testing.assert_array_equal(info["episode_length"], cfg.max_episode_steps)
    assert (obs[:, 21] == 0.0).all()


@pytest.mark.parametrize("name", ["random", "gait"])
def test_evaluation_counts_add_up(name: str) -> None:
    """Success and failure counts partition the trials and the rates match them."""
    cfg = MotionConfig(max_episode_steps=60)
    policy = _random_policy(0) if name == "random" else GaitController(cfg)
    result = evaluate(policy, seed=4, n_trials=20, config=cfg)
    assert result["num_trials"] == 20
    assert result["success_trials"] + result["fail_trials"] == result["num_trials"]
    assert result["success_rate"] == result["success_trials"] / result["num_trials"]
    assert 0.0 <= result["success_precision"] <= 1.0
    assert 0 <= result["fall_trials"] <= result["fail_trials"]
    assert 0.0 < result["mean_episode_length"] <= cfg.max_episode_steps


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_envs", 0),
        ("max_episode_steps", -1),
        ("dt", 0.0),
        ("hip_range", 2.0),
        ("joint_stiffness", -1.0),
        ("fall_angle", 1.6),
        ("contact_band", 0.0),
        ("torso_gravity", -0.1),
        ("target_speed_max", 0.1),
        ("reward_distance_scale", float("nan")),
    ],
)
def test_config_validation_names_the_field(field: str, value: float) -> None:
    """An out-of-range MotionConfig field raises ValueError naming that field."""
    overrides: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=rf"MotionConfig\.{field}\b"):
        replace(MotionConfig(), **overrides)


def test_gait_controller_beats_random_policy() -> None:
    """Averaged over seeds, the gait controller beats random on return, length and success."""
    gait: dict[str, list[float]] = {"ret": [], "len": [], "succ": [], "step": []}
    rand: dict[str, list[float]] = {"ret": [], "len": [], "succ": [], "step": []}
    cfg = MotionConfig()
    for seed in range(3):
        for store, policy in ((gait, GaitController(cfg)), (rand, _random_policy(seed))):
            result = evaluate(policy, seed=seed, n_trials=32, config=cfg)
            store["ret"].append(result["mean_episode_return"])
            store["len"].append(result["mean_episode_length"])
            store["succ"].append(result["success_rate"])
            store["step"].append(result["mean_task_reward"])
    assert np.mean(gait["ret"]) > 4.0 * np.mean(rand["ret"])
    assert np.mean(gait["len"]) > 4.0 * np.mean(rand["len"])
    assert np.mean(gait["succ"]) > np.mean(rand["succ"]) + 0.5
    assert np.mean(gait["step"]) > np.mean(rand["step"])


def test_gait_controller_motion_resembles_reference_clips() -> None:
    """The gait controller's AMP transitions lie far closer to the clips than random ones."""
    cfg = MotionConfig(num_envs=8)
    clips = make_reference_clips(seed=0)
    ref = sample_reference_transitions(clips, 1000, np.random.default_rng(0)).astype(float)
    mean, std = ref.mean(axis=0), ref.std(axis=0) + 1e-3

    def distance(policy: Policy) -> float:
        env = MotionEnv(cfg)
        obs, _ = env.reset(seed=0)
        rows = []
        for _ in range(60):
            obs, *_, info = env.step(policy(obs))
            rows.append(info["amp_obs"])
        x = (np.concatenate(rows)[::3].astype(float) - mean) / std
        r = (ref - mean) / std
        d2 = (x * x).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2.0 * x @ r.T
        return float(np.sqrt(np.maximum(d2.min(axis=1), 0.0)).mean())

    assert 3.0 * distance(GaitController(cfg)) < distance(_random_policy(0))


def test_invalid_actions_are_rejected() -> None:
    """Steps with a wrong action shape or non-finite actions raise ValueError."""
    env = MotionEnv(MotionConfig(num_envs=2))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((3, ACTION_DIM), np.float32))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.full((2, ACTION_DIM), np.nan, np.float32))
