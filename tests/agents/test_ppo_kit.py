"""The PPO pieces PPO and AMP share (agents.ppo_kit)."""

from __future__ import annotations

import pytest
import torch

from agents.ppo_kit import (
    Heads,
    clipped_surrogate,
    explained_variance,
    gae,
    minibatches,
    value_loss,
)


def test_gae_with_dones_treats_each_episode_on_its_own() -> None:
    """Two episodes in one (T,) rollout cut at ``dones`` match GAE over each episode alone."""
    rewards = torch.tensor([1.0, 0.5, -1.0, 2.0, 0.25])
    values = torch.tensor([0.2, 0.1, 0.3, -0.2, 0.4])
    dones = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0])
    adv, ret = gae(rewards, values, 0.9, 0.8, dones=dones, last_value=torch.tensor(7.0))
    first, _ = gae(rewards[:2], values[:2], 0.9, 0.8)
    second, _ = gae(rewards[2:], values[2:], 0.9, 0.8)
    assert torch.allclose(adv, torch.cat([first, second]))
    assert torch.allclose(ret, adv + values)


def test_gae_bootstraps_a_rollout_that_did_not_end() -> None:
    """Without a done the step after the rollout is valued ``last_value``, per env."""
    rewards = torch.zeros((1, 2))
    values = torch.zeros((1, 2))
    adv, _ = gae(rewards, values, 0.5, 1.0, dones=torch.zeros((1, 2)), last_value=torch.ones(2))
    assert torch.allclose(adv, torch.tensor([[0.5, 0.5]]))


def test_an_unchanged_policy_has_no_kl_no_clipping_and_zero_loss() -> None:
    """Ratio 1: approx KL 0, clip fraction 0, and normalised advantages average to a zero loss."""
    logp = torch.log(torch.tensor([0.2, 0.5, 0.3, 0.9]))
    out = clipped_surrogate(logp, logp.clone(), torch.tensor([1.0, -2.0, 3.0, 0.5]), 0.2)
    assert out.approx_kl == 0.0
    assert out.clip_frac == 0.0
    assert float(out.loss) == pytest.approx(0.0, abs=1e-6)


def test_a_ratio_beyond_the_clip_counts_and_stops_the_gain() -> None:
    """A ratio of 2 with a positive advantage is clipped to 1 + clip_coef in the loss."""
    new, old = torch.log(torch.tensor([0.8])), torch.log(torch.tensor([0.4]))
    out = clipped_surrogate(new, old, torch.tensor([1.5]), 0.2)
    assert out.clip_frac == 1.0
    assert float(out.loss) == pytest.approx(-1.5 * 1.2)  # a single advantage is not normalised
    assert out.approx_kl == pytest.approx(1.0 - float(torch.log(torch.tensor(2.0))))


def test_minibatches_cover_a_shuffled_pass() -> None:
    """All indices once, size at a time; drop_last leaves out the short remainder."""
    gen = torch.Generator().manual_seed(0)
    batches = list(minibatches(10, 4, gen, drop_last=False))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert [len(b) for b in minibatches(10, 4, gen, drop_last=True)] == [4, 4]
    assert [len(b) for b in minibatches(3, 8, gen, drop_last=True)] == [3]


def test_value_loss_clipped_around_the_rollout_values_is_pessimistic() -> None:
    """A value that moved past clip_coef is charged the larger of the two errors."""
    values, returns, old = torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([0.0])
    assert float(value_loss(values, returns)) == 0.0
    clipped = value_loss(values, returns, clip_around=old, clip_coef=0.2)
    assert float(clipped) == pytest.approx(0.8**2)


def test_explained_variance() -> None:
    """1 for a perfect critic, 0 for one that predicts the mean, 0 when returns do not vary."""
    returns = torch.tensor([1.0, 2.0, 3.0])
    assert explained_variance(returns, returns) == pytest.approx(1.0)
    assert explained_variance(returns, torch.full((3,), 2.0)) == pytest.approx(0.0)
    assert explained_variance(torch.ones(3), torch.zeros(3)) == 0.0


def test_heads_start_with_a_near_uniform_actor() -> None:
    """The actor's output layer is scaled by 0.01, the critic's by 1 (CleanRL's init)."""
    torch.manual_seed(0)
    heads = Heads(4, 3, 16)
    obs = torch.randn(32, 4)
    with torch.no_grad():
        assert heads.head(obs).shape == (32, 3)
        assert heads.value(obs).shape == (32,)
        assert float(heads.head(obs).abs().max()) < 0.1
