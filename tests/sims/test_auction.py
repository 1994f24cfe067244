"""Tests for the ad-auction simulator in sims.auction."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sims.auction import (
    CONTEXT_FIELDS,
    FEATURE_FIELDS,
    OBS_FIELDS,
    AuctionConfig,
    AuctionEnv,
    EpisodeAccumulator,
    EpisodeStats,
    ObsArray,
    click_probability,
    evaluate_predictions,
    features,
    heuristic_action,
    make_calibration_data,
    run_episode,
)


def _rollout(env: AuctionEnv, seed: int, actions: list[int]) -> list[tuple[Any, ...]]:
    """Reset with ``seed``, play ``actions`` cyclically for a full day, return every transition."""
    obs, _ = env.reset(seed=seed)
    out: list[tuple[Any, ...]] = [(obs.copy(),)]
    for t in range(env.config.steps_per_episode):
        obs, reward, terminated, truncated, info = env.step(actions[t % len(actions)])
        out.append((obs.copy(), float(reward), terminated, truncated, dict(info)))
    return out


def _same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    """Whether two rollouts are identical, observation arrays included."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if not np.array_equal(x[0], y[0]) or x[1:] != y[1:]:
            return False
    return True


def test_same_seed_gives_identical_episodes() -> None:
    """Two resets with the same seed replay the same observations, rewards and infos."""
    actions = [0, 3, 8, 5, 1, 7, 4]
    first = _rollout(AuctionEnv(), 7, actions)
    second_env = AuctionEnv()
    _rollout(second_env, 99, actions)  # a different episode in between must not matter
    assert _same(first, _rollout(second_env, 7, actions))


def test_different_seeds_give_different_episodes() -> None:
    """Different seeds draw different traffic and so different observations and rewards."""
    env = AuctionEnv()
    a = _rollout(env, 1, [6])
    b = _rollout(env, 2, [6])
    assert not np.array_equal(a[0][0], b[0][0])
    assert [t[1] for t in a[1:]] != [t[1] for t in b[1:]]


def test_spaces_contain_observations_and_pass_gymnasium_checker() -> None:
    """Every observation lies in observation_space and the env passes gymnasium's checker."""
    env = AuctionEnv()
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (len(OBS_FIELDS),)
    assert env.action_space.n == 9
    rng = np.random.default_rng(0)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        assert obs.dtype == np.float32
        assert env.observation_space.contains(obs)
        terminated = truncated = False
        steps = 0
        while not (terminated or truncated):
            action = int(rng.integers(env.config.n_bid_levels))
            assert env.action_space.contains(np.int64(action))
            obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            assert env.observation_space.contains(obs)
            assert np.isfinite(float(reward))
            for key in ("impressions", "clicks", "conversions", "cost", "revenue", "bids", "wins"):
                assert key in info
        assert terminated
        assert not truncated
        assert steps == env.config.steps_per_episode
    with pytest.raises(RuntimeError):
        env.step(0)


def test_info_counts_are_consistent() -> None:
    """Per-step counts nest (clicks <= wins <= bids <= batch) and level 0 enters no auction."""
    env = AuctionEnv()
    env.reset(seed=3)
    _, reward, _, _, info = env.step(0)
    assert info["bids"] == info["wins"] == 0
    assert info["cost"] == 0.0
    assert float(reward) == 0.0
    for _ in range(20):
        _, reward, _, _, info = env.step(8)
        assert 0 <= info["conversions"] <= info["clicks"] <= info["impressions"]
        assert info["impressions"] == info["wins"] <= info["bids"] <= 100
        expected = (info["revenue"] - info["cost"]) / env.config.reward_scale
        assert float(reward) == pytest.approx(expected)


def test_budget_is_never_exceeded_by_more_than_one_second_price() -> None:
    """Spend stays within the budget plus one price, and nothing is won once it is spent."""
    # A second price is below the agent's bid, which is at most this.
    max_bid = 2.5 * 1.0 * max(AuctionConfig().segment_base_value)
    for budget in (3.0, 50.0, 600.0):
        config = AuctionConfig(daily_budget=budget)
        env = AuctionEnv(config)
        for seed in range(5):
            env.reset(seed=seed)
            total = 0.0
            exhausted = False
            for _ in range(config.steps_per_episode):
                _, _, _, _, info = env.step(config.n_bid_levels - 1)
                if exhausted:
                    assert info["wins"] == 0
                    assert info["bids"] == 0
                    assert info["cost"] == 0.0
                total += info["cost"]
                exhausted = total >= budget
            assert total == pytest.approx(env.spent)
            assert total <= budget + max_bid
            assert exhausted  # top-level bidding all day spends every budget tried here


def test_episode_stats_derived_values() -> None:
    """Derived rates divide the right totals and are 0.0 (without warnings) on zero totals."""
    stats = EpisodeStats(
        total_reward=2.0,
        steps=4,
        impressions=200,
        clicks=20,
        conversions=5,
        total_cost=50.0,
        total_revenue=150.0,
    )
    assert stats.roas == pytest.approx(3.0)
    assert stats.ctr == pytest.approx(0.1)
    assert stats.conversion_rate == pytest.approx(0.25)
    assert stats.cost_per_conversion == pytest.approx(10.0)
    assert stats.revenue_per_step == pytest.approx(37.5)
    assert stats.reward_per_step == pytest.approx(0.5)
    assert stats.as_dict()["roas"] == pytest.approx(3.0)
    empty = EpisodeStats(0.0, 0, 0, 0, 0, 0.0, 0.0)
    for value in (
        empty.roas,
        empty.ctr,
        empty.conversion_rate,
        empty.cost_per_conversion,
        empty.revenue_per_step,
        empty.reward_per_step,
    ):
        assert value == 0.0
    no_conversions = EpisodeStats(-1.0, 2, 10, 3, 0, 100.0, 0.0)
    assert no_conversions.cost_per_conversion == 0.0
    assert no_conversions.roas == 0.0
    assert no_conversions.conversion_rate == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.steps = 5  # type: ignore[misc]


def test_accumulator_matches_step_infos() -> None:
    """EpisodeAccumulator totals equal the sums of the step rewards and infos."""
    env = AuctionEnv()
    obs, _ = env.reset(seed=11)
    acc = EpisodeAccumulator()
    rewards = 0.0
    costs = 0.0
    clicks = 0
    terminated = False
    while not terminated:
        obs, reward, terminated, _, info = env.step(heuristic_action(obs))
        acc.add(reward, info)
        rewards += float(reward)
        costs += info["cost"]
        clicks += info["clicks"]
    stats = acc.stats()
    assert stats.steps == env.config.steps_per_episode
    assert stats.total_reward == pytest.approx(rewards)
    assert stats.total_cost == pytest.approx(costs)
    assert stats.clicks == clicks
    assert stats == run_episode(AuctionEnv(), heuristic_action, seed=11)


def test_calibration_data_is_reproducible_and_plausible() -> None:
    """The same seed gives the same data, another seed other data, and the statistics are sane."""
    a = make_calibration_data(seed=0, n=2000)
    b = make_calibration_data(seed=0, n=2000)
    c = make_calibration_data(seed=1, n=2000)
    for name in ("contexts", "bids", "features", "true_ctr", "true_cvr", "clicks", "conversions"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.true_ctr, c.true_ctr)
    assert a.contexts.shape == (2000, len(CONTEXT_FIELDS))
    assert a.features.shape == (2000, len(FEATURE_FIELDS))
    assert np.array_equal(a.features, features(a.contexts, a.bids))
    assert np.allclose(a.true_ctr, click_probability(a.contexts, a.bids))
    assert np.all(a.conversions <= a.clicks)
    stats = a.statistics()
    assert stats == b.statistics()
    assert stats["n"] == 2000.0
    assert 0.05 < stats["mean_true_ctr"] < 0.5
    assert abs(stats["mean_ctr"] - stats["mean_true_ctr"]) < 0.03
    assert 0.05 < stats["mean_true_cvr"] < 0.6
    assert 0.0 < stats["mean_cvr"] < 1.0
    assert 0.1 < stats["mean_bid"] < 5.0
    assert 0.0 < stats["mean_intent"] < 1.0
    shares = [stats[f"segment_share_{s}"] for s in range(4)]
    assert sum(shares) == pytest.approx(1.0)
    assert shares[0] > shares[3]  # the default mix favours segment 0
    # Higher bids buy better positions and so higher CTR for the same context.
    assert np.all(click_probability(a.contexts, 2.0 * a.bids) > a.true_ctr)


def test_evaluate_predictions_perfect_and_constant() -> None:
    """Perfect predictions score zero error and correlation 1; a constant one has error and 0."""
    data = make_calibration_data(seed=3, n=500)
    perfect = evaluate_predictions(data, data.true_ctr.copy())
    assert perfect["mae"] == 0.0
    assert perfect["rmse"] == 0.0
    assert perfect["correlation"] == pytest.approx(1.0)
    constant = evaluate_predictions(data, np.full(data.n, float(data.true_ctr.mean())))
    assert constant["mae"] > 0.0
    assert constant["rmse"] >= constant["mae"]
    assert constant["correlation"] == 0.0
    assert constant["log_loss"] > perfect["log_loss"] > 0.0
    with pytest.raises(ValueError, match="shape"):
        evaluate_predictions(data, np.zeros(data.n + 1))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("impressions_per_step", 0),
        ("steps_per_episode", -1),
        ("daily_budget", 0.0),
        ("n_bid_levels", 1),
        ("max_bid_multiplier", -2.0),
        ("base_bid", float("nan")),
        ("reward_scale", 0.0),
        ("mobile_share", 1.5),
        ("recent_decay", 1.0),
        ("ctr_log_bid", -0.1),
        ("segment_mix", (0.5, 0.5, 0.5, 0.5)),
        ("segment_revenue", (1.0, 2.0, 3.0)),
        ("segment_base_value", (1.0, 0.0, 1.0, 1.0)),
    ],
)
def test_config_validation_names_the_field(field: str, value: object) -> None:
    """An out-of-range config value raises ValueError whose message names the field."""
    with pytest.raises(ValueError, match=field):
        AuctionConfig(**{field: value})  # type: ignore[arg-type]


def test_heuristic_beats_random_by_a_clear_margin() -> None:
    """Over 20 seeds the intent-and-pacing heuristic out-earns uniformly random bidding."""
    env = AuctionEnv()
    n_levels = env.config.n_bid_levels
    heuristic = []
    random = []
    for seed in range(20):
        heuristic.append(run_episode(env, heuristic_action, seed=seed).total_reward)
        rng = np.random.default_rng(10_000 + seed)

        def random_policy(_obs: ObsArray, rng: np.random.Generator = rng) -> int:
            """Pick a bid level uniformly at random."""
            return int(rng.integers(n_levels))

        random.append(run_episode(env, random_policy, seed=seed).total_reward)
    margin = float(np.mean(heuristic) - np.mean(random))
    assert margin > 3.0, margin  # measured ~7 (i.e. ~700 money per day)
    assert sum(h > r for h, r in zip(heuristic, random, strict=True)) >= 17
