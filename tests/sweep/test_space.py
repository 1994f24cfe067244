"""Sweep parameters on Optuna: each distribution's support and mean, the grid, nesting."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special  # type: ignore[import-untyped]

from telemetry.errors import ConfigError
from telemetry.sweep.space import grid_points, nest, suggest
from telemetry.sweep.spec import Param, parse_sweep

optuna.logging.set_verbosity(optuna.logging.WARNING)

N = 1500
E = math.e


def _param(entry: dict[str, Any], method: str = "random") -> Param:
    return parse_sweep({"method": method, "parameters": {"x": entry}}).params[0]


def _draws(params: list[Param], n: int = N, seed: int = 0) -> list[dict[str, Any]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [suggest(study.ask(), params) for _ in range(n)]


def _samples(entry: dict[str, Any], n: int = N, seed: int = 0) -> list[Any]:
    return [d["x"] for d in _draws([_param(entry)], n, seed)]


def _assert_mean(xs: list[Any], mean: float, variance: float) -> None:
    """The sample mean lies within 5 standard errors of the analytic mean."""
    error = math.sqrt(variance / len(xs))
    assert abs(statistics.fmean(xs) - mean) <= 5 * error, (statistics.fmean(xs), mean, error)


def _log_uniform_moments(low: float, high: float) -> tuple[float, float]:
    """Mean and variance of exp(U(low, high))."""
    mean = (math.exp(high) - math.exp(low)) / (high - low)
    square = (math.exp(2 * high) - math.exp(2 * low)) / (2 * (high - low))
    return mean, square - mean**2


LU = _log_uniform_moments(-1.0, 2.0)
LUV = _log_uniform_moments(math.log(0.01), 0.0)
# X = e^-U with U ~ U(1, 3) is exp(U(-3, -1)).
ILU = _log_uniform_moments(-3.0, -1.0)
LN_VAR = (math.exp(0.25) - 1) * math.exp(0.25)

CONTINUOUS: list[tuple[dict[str, Any], float, float, float, float]] = [
    # entry, mean, variance, support low, support high
    ({"min": -2.0, "max": 3.0}, 0.5, 25 / 12, -2.0, 3.0),
    ({"distribution": "log_uniform", "min": -1, "max": 2}, *LU, E**-1, E**2),
    ({"distribution": "log_uniform_values", "min": 0.01, "max": 1.0}, *LUV, 0.01, 1.0),
    ({"distribution": "inv_log_uniform", "min": 1, "max": 3}, *ILU, E**-3, E**-1),
    ({"distribution": "inv_log_uniform_values", "min": 0.01, "max": 1.0}, *LUV, 0.01, 1.0),
    ({"distribution": "normal", "mu": 1, "sigma": 2}, 1.0, 4.0, -math.inf, math.inf),
    ({"distribution": "log_normal", "sigma": 0.5}, math.exp(0.125), LN_VAR, 0.0, math.inf),
    ({"distribution": "beta", "a": 2, "b": 5}, 2 / 7, 10 / (49 * 8), 0.0, 1.0),
]


@pytest.mark.parametrize(
    ("entry", "mean", "variance", "low", "high"),
    CONTINUOUS,
    ids=[c[0].get("distribution", "uniform") for c in CONTINUOUS],
)
def test_continuous_distribution_support_and_mean(
    entry: dict[str, Any], mean: float, variance: float, low: float, high: float
) -> None:
    """Every draw is a float inside the support and the sample mean matches the analytic one."""
    xs = _samples(entry)
    assert all(type(x) is float for x in xs)
    assert all(low <= x <= high for x in xs)
    _assert_mean(xs, mean, variance)


def _uniform_cdf(low: float, high: float) -> Callable[[float], float]:
    return lambda x: min(max((x - low) / (high - low), 0.0), 1.0)


def _log_cdf(cdf: Callable[[float], float]) -> Callable[[float], float]:
    return lambda x: cdf(math.log(x)) if x > 0 else 0.0


def _beta_cdf(a: float, b: float) -> Callable[[float], float]:
    return lambda x: float(special.betainc(a, b, min(max(x, 0.0), 1.0)))


def _rounded_moments(
    cdf: Callable[[float], float], q: float, low: float, high: float
) -> tuple[float, float]:
    """Mean and variance of round(X / q) * q, from X's CDF, over multiples of q in [low, high]."""
    ks = range(math.floor(low / q) - 1, math.ceil(high / q) + 2)
    pmf = [(k * q, cdf((k + 0.5) * q) - cdf((k - 0.5) * q)) for k in ks]
    mean = math.fsum(v * p for v, p in pmf)
    return mean, math.fsum(p * (v - mean) ** 2 for v, p in pmf)


NORMAL = statistics.NormalDist(0, 3)
LOG_NORMAL = statistics.NormalDist(1, 0.5)

QUANTISED: list[tuple[dict[str, Any], Callable[[float], float], float, float, type]] = [
    # entry, X's CDF, X's support low and high (before rounding), the draws' type
    ({"distribution": "q_uniform", "min": 0, "max": 10, "q": 2}, _uniform_cdf(0, 10), 0, 10, int),
    (
        {"distribution": "q_uniform", "min": -1.0, "max": 1.3, "q": 0.25},
        _uniform_cdf(-1.0, 1.3),
        -1.0,
        1.3,
        float,
    ),
    (
        {"distribution": "q_log_uniform", "min": 0, "max": 3},
        _log_cdf(_uniform_cdf(0, 3)),
        1.0,
        E**3,
        int,
    ),
    (
        {"distribution": "q_log_uniform_values", "min": 1, "max": 100, "q": 5},
        _log_cdf(_uniform_cdf(0, math.log(100))),
        1,
        100,
        int,
    ),
    (
        {"distribution": "q_normal", "sigma": 3, "q": 0.5},
        NORMAL.cdf,
        NORMAL.inv_cdf(1e-12),
        NORMAL.inv_cdf(1 - 1e-12),
        float,
    ),
    (
        {"distribution": "q_log_normal", "mu": 1, "sigma": 0.5},
        _log_cdf(LOG_NORMAL.cdf),
        0.0,
        math.exp(LOG_NORMAL.inv_cdf(1 - 1e-12)),
        int,
    ),
    ({"distribution": "q_beta", "a": 2, "b": 2, "q": 0.1}, _beta_cdf(2, 2), 0.0, 1.0, float),
]


@pytest.mark.parametrize(
    ("entry", "cdf", "low", "high", "kind"),
    QUANTISED,
    ids=[f"{c[0]['distribution']}-{c[4].__name__}" for c in QUANTISED],
)
def test_quantised_distribution_support_and_mean(
    entry: dict[str, Any], cdf: Callable[[float], float], low: float, high: float, kind: type
) -> None:
    """Draws are multiples of q (ints when q is one), in range, with the rounded mean."""
    q = entry.get("q", 1)
    xs = _samples(entry)
    assert all(type(x) is kind for x in xs)
    assert all(math.isclose(x / q, round(x / q), abs_tol=1e-9) for x in xs)
    assert all(round(low / q) * q - 1e-9 <= x <= round(high / q) * q + 1e-9 for x in xs)
    _assert_mean(xs, *_rounded_moments(cdf, q, low, high))


def test_int_uniform_covers_min_to_max_included() -> None:
    """int_uniform draws ints in [min, max], max included, uniformly."""
    xs = _samples({"min": 1, "max": 4})
    assert all(type(x) is int for x in xs)
    assert set(xs) == {1, 2, 3, 4}
    _assert_mean(xs, 2.5, 15 / 12)


def _assert_frequencies(xs: list[Any], values: list[Any], probabilities: list[float]) -> None:
    """Each value's frequency is within 5 standard errors of its probability."""
    counts = Counter(values.index(x) for x in xs)
    for i, p in enumerate(probabilities):
        error = math.sqrt(p * (1 - p) / len(xs))
        assert abs(counts[i] / len(xs) - p) <= 5 * error, (values[i], counts[i], p)


@pytest.mark.parametrize(
    "values",
    [["adam", "sgd", "rmsprop"], [None, True, 0, 2.5], [[1, 2], {"depth": 3}, "plain"], [1, 1.0]],
    ids=["strings", "mixed-plain", "lists-and-dicts", "equal-values"],
)
def test_categorical_draws_each_value_uniformly(values: list[Any]) -> None:
    """A categorical draws each listed value, as it is, with equal frequency."""
    xs = _samples({"values": values})
    assert all(any(x == v and type(x) is type(v) for v in values) for x in xs)
    if values == [1, 1.0]:
        # Equal values stay apart: their types tell them apart.
        counts = Counter(type(x) for x in xs)
        assert abs(counts[int] / N - 0.5) <= 5 * math.sqrt(0.25 / N)
        return
    _assert_frequencies(xs, values, [1 / len(values)] * len(values))


def test_categorical_probabilities_are_respected() -> None:
    """Frequencies follow the given probabilities; a zero probability is never drawn."""
    values, probabilities = ["relu", "tanh", "gelu", "silu"], [0.6, 0.3, 0.1, 0.0]
    xs = _samples({"values": values, "probabilities": probabilities})
    assert "silu" not in xs
    _assert_frequencies(xs, values, probabilities)


def test_constant_is_returned_and_not_suggested() -> None:
    """A constant comes back as it is and is no Optuna parameter."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    params = [_param({"value": {"layers": [64, 64]}})]
    assert suggest(trial, params) == {"x": {"layers": [64, 64]}}
    assert trial.params == {}


def test_optuna_sees_the_space() -> None:
    """Each swept parameter is one Optuna parameter under its full name; log forms log-scaled."""
    spec = parse_sweep(
        {
            "method": "random",
            "parameters": {
                "opt": {
                    "parameters": {"lr": {"distribution": "log_uniform", "min": -9, "max": -3}}
                },
                "width": {"values": [32, 64]},
                "noise": {"distribution": "normal"},
            },
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    trial = study.ask()
    suggest(trial, spec.params)
    distributions = trial.distributions
    assert set(distributions) == {"opt.lr", "width", "noise"}
    lr = distributions["opt.lr"]
    assert isinstance(lr, optuna.distributions.FloatDistribution)
    assert lr.log
    assert math.isclose(lr.low, math.exp(-9))
    assert math.isclose(lr.high, math.exp(-3))
    assert distributions["width"] == optuna.distributions.CategoricalDistribution([32, 64])
    assert distributions["noise"] == optuna.distributions.FloatDistribution(0.0, 1.0)


def test_a_seed_repeats_the_draws() -> None:
    """The same seed gives the same values."""
    params = list(
        parse_sweep({"method": "random", "parameters": {"a": {"min": 0.0, "max": 1.0}}}).params
    )
    assert _draws(params, 20, seed=7) == _draws(params, 20, seed=7)


GRID = parse_sweep(
    {
        "method": "grid",
        "parameters": {
            "b": {"values": ["x", "y"]},
            "a": {"min": 1, "max": 2},
            "c": {"value": 7},
            "d": {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.5},
        },
    }
).params

GRID_VALUES = [
    {"a": 1, "b": "x", "c": 7, "d": 0.0},
    {"a": 1, "b": "x", "c": 7, "d": 0.5},
    {"a": 1, "b": "y", "c": 7, "d": 0.0},
    {"a": 1, "b": "y", "c": 7, "d": 0.5},
    {"a": 2, "b": "x", "c": 7, "d": 0.0},
    {"a": 2, "b": "x", "c": 7, "d": 0.5},
    {"a": 2, "b": "y", "c": 7, "d": 0.0},
    {"a": 2, "b": "y", "c": 7, "d": 0.5},
]


def test_grid_points_run_in_w_and_b_order() -> None:
    """Sorted names, listed values, the last name fastest; int_uniform includes max, q_uniform
    excludes it; the constant is no fixed param."""
    assert grid_points(GRID) == [{k: v for k, v in p.items() if k != "c"} for p in GRID_VALUES]


def test_suggest_on_each_grid_point_returns_its_values() -> None:
    """suggest on a FixedTrial of each grid point gives that point's values."""
    points = grid_points(GRID)
    assert [suggest(optuna.trial.FixedTrial(p), GRID) for p in points] == GRID_VALUES


def test_enqueued_grid_points_come_back_from_a_study() -> None:
    """Grid points enqueued on a study come back, in order, from its asked trials."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for point in grid_points(GRID):
        study.enqueue_trial(point)
    assert [suggest(study.ask(), GRID) for _ in GRID_VALUES] == GRID_VALUES


def test_grid_of_unhashable_and_weighted_categoricals() -> None:
    """Categoricals of lists, and with probabilities, run each value once, in listed order."""
    params = parse_sweep(
        {
            "method": "grid",
            "parameters": {
                "net": {"values": [[64, 64], [256]]},
                "act": {"values": ["relu", "tanh", "gelu"], "probabilities": [0.7, 0.2, 0.1]},
            },
        }
    ).params
    values = [suggest(optuna.trial.FixedTrial(p), params) for p in grid_points(params)]
    assert values == [
        {"act": a, "net": n} for a in ["relu", "tanh", "gelu"] for n in [[64, 64], [256]]
    ]


def test_grid_refuses_a_distribution_without_a_grid() -> None:
    """grid_points of a uniform parameter raises a ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"parameters\.x: uniform has no grid"):
        grid_points([_param({"min": 0.0, "max": 1.0})])


@settings(max_examples=60, deadline=None)
@given(
    low=st.integers(-50, 50).map(lambda k: k / 8) | st.integers(-5, 5),
    steps=st.integers(1, 12),
    q=st.sampled_from([1, 2, 0.1, 0.25, 0.3, 1.5]),
    slack=st.sampled_from([0.0, 0.4]),
)
def test_q_uniform_grid_is_numpy_arange_and_round_trips(
    low: float, steps: int, q: float, slack: float
) -> None:
    """A q_uniform grid is np.arange(min, max, q), and each point comes back from suggest."""
    high = low + steps * q + slack * q
    param = _param({"distribution": "q_uniform", "min": low, "max": high, "q": q}, "grid")
    expected = np.arange(low, high, q).tolist()
    points = grid_points([param])
    assert [p["x"] for p in points] == expected
    assert [suggest(optuna.trial.FixedTrial(p), [param])["x"] for p in points] == expected


@settings(max_examples=25, deadline=None)
@given(
    low=st.floats(-1e3, 1e3),
    width=st.floats(1e-3, 1e3),
    integer=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_uniform_and_int_uniform_stay_in_bounds(
    low: float, width: float, integer: bool, seed: int
) -> None:
    """For any bounds, uniform draws stay in [min, max] and int_uniform draws in the integers."""
    lo: float
    hi: float
    if integer:
        lo, hi = math.floor(low), math.floor(low) + max(1, math.floor(width))
    else:
        lo, hi = low, low + width
    xs = _samples({"min": lo, "max": hi}, n=40, seed=seed)
    assert all(lo <= x <= hi for x in xs)
    assert all(type(x) is (int if integer else float) for x in xs)


def test_nest_builds_nested_mappings() -> None:
    """Dotted names become nested mappings; plain names stay at the top."""
    assert nest({"a.b": 1, "a.c.d": 2, "e": 3}) == {"a": {"b": 1, "c": {"d": 2}}, "e": 3}
    assert nest({}) == {}


def test_nest_refuses_a_name_with_a_value_and_nested_keys() -> None:
    """A name that is both a value and a parent raises a ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"parameters\.a\.b"):
        nest({"a": 1, "a.b": 2})
    with pytest.raises(ConfigError, match=r"parameters\.a"):
        nest({"a.b": 2, "a": 1})
