"""The four model-analysis views on replays built by hand from small torch policies."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA  # type: ignore[import-untyped]  # sklearn ships no stubs
from torch import nn

from agents.analysis.replay import F32, Replay
from agents.analysis.views import VIEWS, ViewResult
from agents.analysis.views.action import action_view
from agents.analysis.views.feature import feature_view
from agents.analysis.views.latent import latent_view
from agents.analysis.views.sensitivity import sensitivity_view

N, F, A, H = 600, 10, 2, 16
KEY = 4
"""The one feature the one-feature policy reads."""


class _Mlp(nn.Module):
    """A small tanh MLP whose last hidden layer the replay exposes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.l1 = nn.Linear(F, H)
        self.l2 = nn.Linear(H, A)

    def hidden(self, obs: torch.Tensor) -> torch.Tensor:
        """The hidden activations."""
        return torch.tanh(self.l1(obs))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions in [-1, 1]."""
        return torch.tanh(self.l2(self.hidden(obs)))


def _one_feature(obs: torch.Tensor) -> torch.Tensor:
    """Both action components are tanh(3 x[:, KEY])."""
    return torch.tanh(3 * obs[:, KEY : KEY + 1]).repeat(1, A)


def _observations() -> F32:
    """Seeded random observations."""
    return np.random.default_rng(1).normal(size=(N, F)).astype(np.float32)


def _replay(
    policy: Callable[[torch.Tensor], torch.Tensor],
    hidden: Callable[[torch.Tensor], torch.Tensor],
    *,
    context: dict[str, Any] | None = None,
    evaluate: Callable[[Callable[[F32], F32]], float] | None = None,
) -> Replay:
    """A replay of ``policy`` on seeded random observations, five episodes of equal length."""
    obs = _observations()
    with torch.no_grad():
        actions = policy(torch.as_tensor(obs)).numpy()
    rng = np.random.default_rng(2)
    return Replay(
        trainer="erl",
        observations=obs,
        actions=actions,
        feature_names=[f"f{i}" for i in range(F)],
        action_names=[f"a{i}" for i in range(A)],
        policy=policy,
        hidden=hidden,
        returns_to_go=rng.normal(size=N).astype(np.float32),
        episode=np.repeat(np.arange(5), N // 5).astype(np.int64),
        context={} if context is None else context,
        episode_returns=rng.normal(size=5).astype(np.float32),
        price_features=list(range(6)),
        evaluate=evaluate,
    )


def _full_context() -> dict[str, Any]:
    """Every label the action view knows."""
    rng = np.random.default_rng(3)
    return {
        "regime": rng.choice(np.array(["bull", "bear", "sideways"]), size=N),
        "hour": rng.integers(0, 7, size=N),
        "position": rng.uniform(-1, 1, size=N).round(1),
        "trading": rng.integers(0, 2, size=N),
    }


def _mlp_replay() -> Replay:
    """A replay of a random MLP with every context label."""
    model = _Mlp()
    return _replay(model, model.hidden, context=_full_context())


def _one_feature_replay(evaluate: Callable[[Callable[[F32], F32]], float] | None = None) -> Replay:
    """A replay of the policy that reads feature KEY only."""
    return _replay(_one_feature, lambda obs: torch.tanh(obs @ torch.ones(F, 3)), evaluate=evaluate)


class TestFeature:
    def test_integrated_gradients_are_complete(self) -> None:
        """Attributions sum to model(x) - model(baseline) at every state of the batch."""
        replay = _mlp_replay()
        result = feature_view(replay)
        completeness = result.numbers["ig"]["completeness"]
        obs = torch.as_tensor(replay.observations)
        with torch.no_grad():
            diff = replay.policy(obs) - replay.policy(obs.mean(dim=0, keepdim=True))
        assert completeness["mean_abs_output_change"] == pytest.approx(
            float(diff.abs().mean()), rel=0.2
        )
        assert completeness["max_rel_error"] < 1e-3
        assert completeness["max_abs_error"] < 1e-3 * float(diff.abs().max())

    def test_captum_attributions_sum_to_the_output_difference(self) -> None:
        """Captum's attributions, as the view computes them, match an independent difference."""
        from agents.analysis.views.feature import _integrated_gradients

        replay = _mlp_replay()
        x = torch.as_tensor(replay.observations[:50])
        baseline = torch.as_tensor(replay.observations.mean(axis=0, keepdims=True))
        attributions, _ = _integrated_gradients(replay, x, baseline)
        with torch.no_grad():
            expected = (replay.policy(x) - replay.policy(baseline)).numpy()
        np.testing.assert_allclose(attributions.sum(axis=2).T, expected, atol=1e-4)

    def test_one_feature_policy_ranks_that_feature_first(self) -> None:
        """IG, action permutation and return permutation all put the read feature first."""

        def evaluate(act: Callable[[F32], F32]) -> float:
            # Return rewards tracking tanh(3 x_KEY): shuffling KEY hurts, the others do not.
            obs = _observations()[:200]
            target = np.tanh(3 * obs[:, KEY])
            steps = [act(o)[0] for o in obs]  # one observation at a time, as an env loop
            return float(-np.mean((np.asarray(steps) - target) ** 2))

        result = feature_view(_one_feature_replay(evaluate))
        ranking = result.numbers["ranking"]
        assert ranking["integrated_gradients"][0] == f"f{KEY}"
        assert ranking["permutation_action"][0] == f"f{KEY}"
        assert ranking["permutation_return"][0] == f"f{KEY}"
        drops = result.numbers["permutation"]["return_drop"]
        assert drops[KEY] > 0.1
        assert max(abs(d) for i, d in enumerate(drops) if i != KEY) == 0.0
        assert result.numbers["batch_size"] == 512

    def test_without_evaluate_the_return_drop_is_absent(self) -> None:
        """No evaluate callable means no return ranking, and no error."""
        result = feature_view(_one_feature_replay())
        assert result.numbers["permutation"]["return_drop"] is None
        assert "permutation_return" not in result.numbers["ranking"]


class TestAction:
    def test_per_regime_means_match_a_groupby(self) -> None:
        """Mean action per regime and per hour equal a groupby done here."""
        replay = _mlp_replay()
        result = action_view(replay)
        for label in ("regime", "hour"):
            values = np.asarray(replay.context[label]).astype(str)
            groups = result.numbers["by_label"][label]
            assert set(groups) == set(values.tolist())
            for key, group in groups.items():
                mask = values == key
                assert group["count"] == int(mask.sum())
                np.testing.assert_allclose(
                    group["mean_action"], replay.actions[mask].mean(axis=0), rtol=1e-5
                )
        trading = np.asarray(replay.context["trading"])
        assert result.numbers["trade_frequency"] == pytest.approx(float(np.mean(trading == 1)))
        assert sum(result.numbers["by_position"]["counts"]) == N
        assert result.numbers["skipped"] == []

    def test_missing_labels_are_skipped(self) -> None:
        """A replay with no context still gives the distribution and lists what it skipped."""
        result = action_view(_one_feature_replay())
        assert result.numbers["by_label"] == {}
        assert "by_position" not in result.numbers
        assert set(result.numbers["skipped"]) == {
            "categorical labels",
            "position",
            "trading",
            "holding_time",
        }
        assert sum(result.numbers["distribution"]["components"][0]["counts"]) == N

    def test_holding_time_comes_from_position_runs(self) -> None:
        """Runs of a same-signed position within an episode are the holding times."""
        position = np.zeros(N)
        position[10:13] = 0.5  # held 3 steps
        position[13:20] = -0.2  # flipped, held 7 steps
        result = action_view(_replay(_one_feature, _one_feature, context={"position": position}))
        holding = result.numbers["holding_time"]
        assert holding["count"] == 2
        assert holding["mean"] == pytest.approx(5.0)


class TestLatent:
    def test_variance_ratios_equal_sklearn(self) -> None:
        """The explained variance ratios equal scikit-learn's PCA on the same activations."""
        replay = _mlp_replay()
        result = latent_view(replay)
        with torch.no_grad():
            activations = replay.hidden(torch.as_tensor(replay.observations)).numpy()
        expected = PCA(n_components=2).fit(activations).explained_variance_ratio_
        np.testing.assert_allclose(result.numbers["explained_variance_ratio"], expected, rtol=1e-4)
        assert result.numbers["colour_label"] == "regime"
        assert len(result.numbers["points"]) == N


class TestSensitivity:
    def test_one_feature_policy_is_flat_elsewhere_and_tanh_on_its_feature(self) -> None:
        """Curves are flat for the other features and follow mean tanh(3 (x + shock)) for KEY."""
        replay = _one_feature_replay()
        result = sensitivity_view(replay)
        curves = result.numbers["curves"]
        assert f"f{KEY}" in curves
        assert len(curves) == 6
        column = replay.observations[:, KEY].astype(np.float64)
        for name, curve in curves.items():
            mean = np.asarray(curve["mean_action"])
            if name == f"f{KEY}":
                shocks = np.asarray(curve["shocks"])
                expected = np.tanh(3 * (column[None] + shocks[:, None])).mean(axis=1)
                np.testing.assert_allclose(mean[:, 0], expected, atol=1e-5)
                np.testing.assert_allclose(mean[:, 1], expected, atol=1e-5)
            else:
                np.testing.assert_allclose(mean, mean[:1].repeat(len(mean), axis=0), atol=1e-6)

    def test_local_gradients_equal_the_analytic_derivative(self) -> None:
        """d action / d x at each typical state is 3 (1 - tanh^2(3 x_KEY)) on KEY, 0 elsewhere."""
        result = sensitivity_view(_one_feature_replay())
        states = np.asarray(result.numbers["local"]["states"])
        gradients = np.asarray(result.numbers["local"]["gradients"])  # (Q, A, F)
        expected = np.zeros_like(gradients)
        expected[:, :, KEY] = (3 * (1 - np.tanh(3 * states[:, KEY]) ** 2))[:, None]
        np.testing.assert_allclose(gradients, expected, atol=1e-5)
        np.testing.assert_allclose(states[2], np.median(_observations(), axis=0), atol=1e-6)


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_every_view_saves_a_png_and_json_numbers(name: str, tmp_path: Path) -> None:
    """Each view's figure saves as a PNG and its numbers survive strict json.dumps."""
    result = VIEWS[name](_mlp_replay(), seed=1)
    assert isinstance(result, ViewResult)
    assert result.name == name
    path = tmp_path / f"{name}.png"
    result.figure.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.loads(json.dumps(result.numbers, allow_nan=False))
    assert 2 <= len(result.summary.splitlines()) <= 4
