"""Tests of the regime-switching stock-trading simulator in ``sims.trading``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sims.trading import (
    EpisodeResult,
    Trade,
    TradingConfig,
    TradingEnv,
    _simulate_regimes,
    evaluate_policies,
    evaluate_policy,
    evaluate_population,
    momentum_policy,
    observation_layout,
    random_policy,
)


def _rollout(
    env: TradingEnv, seed: int, action_seed: int = 0
) -> tuple[list[np.ndarray], list[float], list[dict[str, Any]]]:
    """Run one episode with reproducible random actions; return observations, rewards, infos."""
    rng = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed)
    observations, rewards, infos = [obs], [], [info]
    done = False
    while not done:
        action = rng.uniform(-1.0, 1.0, env.config.n_stocks).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        done = terminated or truncated
    return observations, rewards, infos


def _constant(value: float, n: int = 4) -> Any:
    """A policy holding the same target position in every stock."""
    action = np.full(n, value, dtype=np.float32)
    return lambda obs: action


def test_same_seed_gives_identical_trajectories() -> None:
    """Two environments reset with the same seed and fed the same actions agree exactly."""
    a, b = TradingEnv(), TradingEnv()
    obs_a, rew_a, info_a = _rollout(a, seed=7)
    obs_b, rew_b, info_b = _rollout(b, seed=7)
    assert np.array_equal(a.prices, b.prices)
    assert all(np.array_equal(x, y) for x, y in zip(obs_a, obs_b, strict=True))
    assert rew_a == rew_b
    assert [i["equity"] for i in info_a] == [i["equity"] for i in info_b]
    assert a.trades == b.trades


def test_reset_without_seed_continues_the_seeded_period_sequence() -> None:
    """After reset(seed=s), later resets walk periods 1, 2, ... and options can jump to one."""
    env = TradingEnv()
    env.reset(seed=3)
    first = env.prices.copy()
    env.reset()
    second = env.prices.copy()
    assert env.period == 1
    assert not np.array_equal(first, second)
    env.reset(seed=3, options={"period": 1})
    assert np.array_equal(env.prices, second)


def test_different_seeds_differ() -> None:
    """Different seeds give different price paths and observations."""
    env = TradingEnv()
    obs0, _ = env.reset(seed=0)
    prices0 = env.prices.copy()
    obs1, _ = env.reset(seed=1)
    assert not np.allclose(prices0, env.prices)
    assert not np.array_equal(obs0, obs1)


def test_validation_split_differs_from_train_and_is_deterministic() -> None:
    """The validation split draws other price paths than training, reproducibly."""
    train = TradingEnv(split="train")
    valid = TradingEnv(split="validation")
    valid2 = TradingEnv(split="validation")
    for seed in range(5):
        train.reset(seed=seed)
        valid.reset(seed=seed)
        valid2.reset(seed=seed)
        assert not np.allclose(train.prices, valid.prices)
        assert np.array_equal(valid.prices, valid2.prices)
    with pytest.raises(ValueError, match="split"):
        TradingEnv(split="holdout")  # type: ignore[arg-type]


def test_spaces_contain_observations_and_env_checker_passes() -> None:
    """Every observation is a float32 member of observation_space and gymnasium's checker passes."""
    env = TradingEnv()
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (env.config.observation_size,)
    assert env.action_space.shape == (env.config.n_stocks,)
    observations, rewards, _ = _rollout(env, seed=11)
    assert len(rewards) == env.config.episode_length
    for obs in observations:
        assert obs.dtype == np.float32
        assert env.observation_space.contains(obs)
    layout = observation_layout(env.config)
    assert observations[0][layout.time_of_day] == 0.0
    assert observations[-1][layout.progress] == 1.0
    assert all(math.isfinite(r) for r in rewards)


def test_step_after_episode_end_and_bad_actions_raise() -> None:
    """Stepping a finished episode, or with a mis-shaped or NaN action, raises."""
    env = TradingEnv(TradingConfig(episode_length=2))
    with pytest.raises(RuntimeError):
        env.step(np.zeros(4))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([0.0, np.nan, 0.0, 0.0]))
    env.reset(seed=0)
    env.step(np.zeros(4))
    _, _, terminated, truncated, _ = env.step(np.zeros(4))
    assert terminated
    assert not truncated
    with pytest.raises(RuntimeError):
        env.step(np.zeros(4))


def test_trades_are_recorded_with_consistent_pnl() -> None:
    """Each trade's pnl is direction*size*(exit-entry) minus costs, and trades sum to equity."""
    cfg = TradingConfig(max_holding_period=15)
    env = TradingEnv(cfg)
    _, _, infos = _rollout(env, seed=5)
    trades = env.trades
    assert len(trades) > 50
    assert [t for info in infos[1:] for t in info["closed_trades"]] == trades
    assert {t.direction for t in trades} == {-1, 1}
    assert any(t.exit_step < cfg.episode_length for t in trades)
    for t in trades:
        assert isinstance(t, Trade)
        gross = t.direction * t.size * (t.exit_price - t.entry_price)
        costs = cfg.transaction_cost * t.size * (t.entry_price + t.exit_price)
        assert t.pnl == pytest.approx(gross - costs, rel=1e-9, abs=1e-6)
        assert t.size > 0
        assert t.holding_duration == t.exit_step - t.entry_step >= 1
        assert 0.0 <= t.time_of_day < 1.0
        assert t.time_of_day == (t.exit_step % cfg.steps_per_day) / cfg.steps_per_day
    with pytest.raises(dataclasses.FrozenInstanceError):
        trades[0].pnl = 0.0  # type: ignore[misc]
    assert not hasattr(trades[0], "__dict__")
    assert np.all(env.positions == 0.0)
    total = math.fsum(t.pnl for t in trades)
    assert total == pytest.approx(env.equity - cfg.initial_capital, abs=1e-6)


def test_pnl_sign_matches_price_move_without_costs() -> None:
    """With zero transaction cost every trade's pnl has the sign of direction*(exit-entry)."""
    env = TradingEnv(TradingConfig(transaction_cost=0.0))
    _rollout(env, seed=8)
    for t in env.trades:
        assert np.sign(t.pnl) == np.sign(t.direction * (t.exit_price - t.entry_price))


def test_max_holding_period_forces_a_close_with_penalty() -> None:
    """Lots older than max_holding_period are force-closed, flagged, and penalised in the reward."""
    base = TradingConfig(max_holding_period=5, episode_length=30, inaction_penalty=0.0)
    free = dataclasses.replace(base, forced_close_penalty=0.0)
    penalised_env, free_env = TradingEnv(base), TradingEnv(free)
    penalised_env.reset(seed=2)
    free_env.reset(seed=2)
    action = np.ones(4, dtype=np.float32)
    forced_steps = 0
    for _ in range(base.episode_length):
        _, r_pen, _, _, info = penalised_env.step(action)
        _, r_free, _, _, _ = free_env.step(action)
        penalty = base.reward_scale * base.forced_close_penalty * info["forced_close_size"]
        assert r_pen == pytest.approx(r_free - penalty)
        if info["forced_close_size"] > 0:
            forced_steps += 1
            assert info["forced_close_size"] == pytest.approx(4.0, rel=0.2)
    trades = penalised_env.trades
    forced = [t for t in trades if t.forced]
    assert forced_steps == 5  # steps 5, 10, 15, 20, 25
    assert len(forced) == 4 * forced_steps
    assert all(t.holding_duration == 5 for t in forced)
    assert all(t.holding_duration <= 5 for t in trades)
    assert [t.pnl for t in trades] == [t.pnl for t in free_env.trades]


def test_loss_penalty_multiplier_scales_negative_rewards() -> None:
    """Doubling loss_penalty_multiplier doubles negative rewards and leaves positive ones."""
    base = TradingConfig(
        loss_penalty_multiplier=1.0, inaction_penalty=0.0, forced_close_penalty=0.0
    )
    _, plain, infos = _rollout(TradingEnv(base), seed=4)
    doubled_cfg = dataclasses.replace(base, loss_penalty_multiplier=2.0)
    _, doubled, _ = _rollout(TradingEnv(doubled_cfg), seed=4)
    negatives = 0
    for r1, r2, info in zip(plain, doubled, infos[1:], strict=True):
        assert r1 == pytest.approx(base.reward_scale * info["portfolio_return"])
        if r1 < 0:
            negatives += 1
            assert r2 == pytest.approx(2.0 * r1)
        else:
            assert r2 == r1
    assert negatives > 10


def test_inaction_penalty_applies_when_flat() -> None:
    """A flat step earns exactly -reward_scale * inaction_penalty."""
    cfg = TradingConfig(inaction_penalty=2e-4, episode_length=10)
    result = evaluate_policy(TradingEnv(cfg), _constant(0.0), seed=0)
    assert result.trades == ()
    assert result.total_pnl == 0.0
    assert result.total_reward == pytest.approx(-10 * cfg.reward_scale * 2e-4)


def test_partial_reduce_closes_oldest_lot_first() -> None:
    """Shrinking a position closes part of the oldest lot and keeps the rest open."""
    env = TradingEnv(TradingConfig(n_stocks=1, transaction_cost=0.0))
    env.reset(seed=0)
    env.step(np.array([1.0]))
    shares = env.positions[0]
    _, _, _, _, info = env.step(np.array([0.5]))
    (trade,) = info["closed_trades"]
    assert (trade.entry_step, trade.exit_step) == (0, 1)
    assert 0.3 * shares < trade.size < 0.7 * shares
    assert env.positions[0] == pytest.approx(shares - trade.size)


def test_no_short_mode_clips_negative_targets_to_flat() -> None:
    """With allow_short=False a negative action opens nothing."""
    env = TradingEnv(TradingConfig(allow_short=False, episode_length=20))
    result = evaluate_policy(env, _constant(-1.0), seed=0)
    assert result.trades == ()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_stocks", 0),
        ("n_stocks", 2.5),
        ("episode_length", 0),
        ("steps_per_day", -1),
        ("window", 0),
        ("transaction_cost", -0.01),
        ("loss_penalty_multiplier", 0.0),
        ("inaction_penalty", float("nan")),
        ("max_holding_period", 0),
        ("forced_close_penalty", 2.0),
        ("initial_capital", 0.0),
        ("reward_scale", float("inf")),
        ("rebalance_threshold", 1.0),
        ("allow_short", 1),
        ("regime_drifts", (0.5, -0.002, 0.0)),
        ("regime_vols", (0.01, 0.01)),
        ("regime_transition", ((0.5, 0.5, 0.1), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))),
        ("stock_dispersion", 1.0),
        ("market_correlation", -0.1),
        ("intraday_vol_amplitude", 3.0),
        ("initial_price_range", (10.0, 5.0)),
    ],
)
def test_config_validation_names_the_field(field: str, value: object) -> None:
    """An out-of-range field raises ValueError whose message names that field."""
    with pytest.raises(ValueError, match=rf"TradingConfig\.{field} must be"):
        TradingConfig(**{field: value})  # type: ignore[arg-type]


def test_two_regime_model_is_accepted() -> None:
    """A two-regime (bull/bear) model is a valid configuration and runs."""
    cfg = TradingConfig(
        regime_drifts=(0.003, -0.003),
        regime_vols=(0.008, 0.008),
        regime_transition=((0.95, 0.05), (0.05, 0.95)),
    )
    assert cfg.n_regimes == 2
    assert cfg.stationary_distribution == pytest.approx([0.5, 0.5])
    env = TradingEnv(cfg)
    evaluate_policy(env, _constant(0.5), seed=1)
    assert set(np.unique(env.regimes)) <= {0, 1}


def test_regime_scan_matches_a_step_by_step_markov_chain() -> None:
    """The vectorised prefix-scan regime simulation equals a naive sequential simulation."""
    cfg = TradingConfig()
    n_steps, n_stocks = 257, 3
    scanned = _simulate_regimes(
        np.random.default_rng(9), cfg._cum_transition, cfg._stationary, n_steps, n_stocks
    )
    rng = np.random.default_rng(9)
    k = cfg.n_regimes
    state = np.minimum((rng.random(n_stocks)[:, None] >= np.cumsum(cfg._stationary)).sum(-1), k - 1)
    u = rng.random((n_steps - 1, n_stocks))
    expected = [state.copy()]
    for t in range(n_steps - 1):
        state = np.array(
            [
                min(int((u[t, i] >= cfg._cum_transition[state[i]]).sum()), k - 1)
                for i in range(n_stocks)
            ]
        )
        expected.append(state)
    assert np.array_equal(scanned, np.array(expected))


def test_evaluation_helpers_agree() -> None:
    """evaluate_population's fitness table matches evaluate_policy run by run."""
    cfg = TradingConfig(episode_length=50)
    policies = [momentum_policy(cfg), _constant(0.0), _constant(1.0)]
    seeds = [0, 1, 2]
    table = evaluate_population(lambda: TradingEnv(cfg), policies, seeds)
    assert table.shape == (3, 3)
    env = TradingEnv(cfg)
    for p, policy in enumerate(policies):
        results = evaluate_policies(env, policy, seeds)
        assert all(isinstance(r, EpisodeResult) and r.n_steps == 50 for r in results)
        assert list(table[p]) == [r.total_reward for r in results]
    pnl = evaluate_population(env, policies, seeds, metric="pnl")
    assert np.all(pnl[1] == 0.0)


def test_momentum_beats_random_by_a_clear_margin() -> None:
    """Trend following earns clearly more than uniformly random trading over 20 seeds."""
    cfg = TradingConfig()
    env = TradingEnv(cfg)
    seeds = range(20)
    momentum = evaluate_policies(env, momentum_policy(cfg), seeds)
    rand = evaluate_policies(env, random_policy(cfg, seed=0), seeds)
    mom_reward = np.mean([r.total_reward for r in momentum])
    rand_reward = np.mean([r.total_reward for r in rand])
    assert mom_reward - rand_reward > 10.0  # measured: about 24
    assert mom_reward > 0.0 > rand_reward
    assert np.mean([r.total_pnl for r in momentum]) > 0.0
    wins = sum(m.total_reward > r.total_reward for m, r in zip(momentum, rand, strict=True))
    assert wins >= 17
