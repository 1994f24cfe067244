"""Sweep parameters on Optuna: sampling a trial's values, the grid's points, nested configs.

Every parameter but a constant is one Optuna parameter under its full dotted name, so
the sampler (TPE, random) sees the space. Distributions Optuna lacks (normal, log-normal,
beta, categorical with probabilities) are a uniform ``u`` in [0, 1] pushed through the
inverse CDF, as W&B's engine samples them.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.trial import BaseTrial
from scipy import special  # type: ignore[import-untyped]

from telemetry.errors import ConfigError
from telemetry.sweep.spec import GRID_DISTRIBUTIONS, Param

_beta_ppf: Callable[[float, float, float], float] = special.betaincinv
"""The inverse of the regularised incomplete beta function: Beta(a, b)'s inverse CDF."""
_U_EDGE = 1e-12
"""How far ``u`` is kept from 0 and 1, where the inverse CDFs of normal forms are infinite."""
_PLAIN = (type(None), bool, int, float, str)
"""The choice types Optuna's categorical distribution stores as they are."""


def suggest(trial: BaseTrial, params: Sequence[Param]) -> dict[str, Any]:
    """The trial's values, by full dotted name (constants included), sampled through Optuna."""
    return {p.name: _suggest(trial, p) for p in params}


def grid_points(params: Sequence[Param]) -> list[dict[str, Any]]:
    """Every grid point in W&B's order, as the fixed params Optuna's enqueue_trial takes
    (so that `suggest` on a trial with those fixed params returns the point's values).

    Parameters run in sorted name order, the last varying fastest; a categorical with
    probabilities runs each value with a probability above 0 once (a zero-probability value
    has no ``u`` that draws it).
    """
    axes = [_axis(p) for p in sorted(params, key=lambda p: p.name)]
    return [
        {k: v for fixed in point for k, v in fixed.items()} for point in itertools.product(*axes)
    ]


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"a.b": 1, "c": 2} as {"a": {"b": 1}, "c": 2}."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        *heads, last = name.split(".")
        node = nested
        for head in heads:
            node = node.setdefault(head, {})
            if not isinstance(node, dict):
                raise ConfigError(f"parameters.{name}: nests under {head}, which has a value")
        if last in node:
            raise ConfigError(f"parameters.{name}: holds nested parameters and a value")
        node[last] = value
    return nested


def _suggest(trial: BaseTrial, p: Param) -> Any:
    dist, name = p.distribution, p.name
    if dist == "constant":
        return p.value
    if dist == "categorical":
        if p.probabilities is not None:
            return p.values[_pick(_cdf(p.probabilities), trial.suggest_float(name, 0.0, 1.0))]
        if _plain(p.values):
            return trial.suggest_categorical(name, list(p.values))
        return p.values[trial.suggest_categorical(name, list(range(len(p.values))))]
    if dist == "int_uniform":
        low, high = _bounds(p)
        return trial.suggest_int(name, int(low), int(high))
    if dist in ("uniform", "q_uniform"):
        low, high = _bounds(p)
        if dist == "uniform":
            return trial.suggest_float(name, low, high)
        count = _q_count(low, high, p.q)
        # numpy's arange can end a rounding error past max (1.0 to 1.3 by 0.1 ends at
        # 1.3000000000000003): the range takes that grid point in.
        x = trial.suggest_float(name, low, max(high, _q_value(low, p.q, count - 1)))
        # W&B's grid steps from min, its draws round to multiples of q: keep a grid point as is.
        k = round((x - low) / p.q)
        if 0 <= k < count and _q_value(low, p.q, k) == x:
            return _q_value(low, p.q, k)
        return _quantize(x, p.q)
    if dist in _LOG_FORMS:
        x = trial.suggest_float(name, *_log_interval(dist, *_bounds(p)), log=True)
        return _quantize(x, p.q) if dist.startswith("q_") else x
    u = _u(trial, name)
    base = dist.removeprefix("q_")
    if base == "beta":
        x = float(_beta_ppf(p.a, p.b, u))
    else:
        x = _normal(p.mu, p.sigma, u)
        if base == "log_normal":
            x = math.exp(x)
    return _quantize(x, p.q) if dist.startswith("q_") else x


_LOG_FORMS = (
    "log_uniform",
    "q_log_uniform",
    "inv_log_uniform",
    "log_uniform_values",
    "q_log_uniform_values",
    "inv_log_uniform_values",
)


def _log_interval(dist: str, low: float, high: float) -> tuple[float, float]:
    """The interval Optuna's log-uniform float is drawn on, from a log form's min and max."""
    if dist in ("log_uniform", "q_log_uniform"):
        return math.exp(low), math.exp(high)
    if dist == "inv_log_uniform":
        # log(1/X) ~ U(min, max) is X = e^-U: log-uniform on [e^-max, e^-min].
        return math.exp(-high), math.exp(-low)
    # The value forms; log(1/X) ~ U(ln 1/max, ln 1/min) is log-uniform on [min, max] again.
    return low, high


def _bounds(p: Param) -> tuple[float | int, float | int]:
    if p.min is None or p.max is None:
        raise ConfigError(f"parameters.{p.name}: {p.distribution} needs min and max")
    return p.min, p.max


def _u(trial: BaseTrial, name: str) -> float:
    """A uniform draw for an inverse CDF that is infinite at 0 and 1."""
    u = trial.suggest_float(name, 0.0, 1.0)
    return min(max(u, _U_EDGE), 1.0 - _U_EDGE)


def _normal(mu: float, sigma: float, u: float) -> float:
    if sigma == 0:  # W&B's schema allows it: every draw is mu
        return float(mu)
    return statistics.NormalDist(mu, sigma).inv_cdf(u)


def _quantize(x: float, q: float | int) -> float | int:
    """x rounded to a multiple of q: an int when q is one, as W&B returns it."""
    steps = round(x / q)
    return steps * q if isinstance(q, int) else float(steps * q)


def _plain(values: tuple[Any, ...]) -> bool:
    """Whether Optuna can take the values themselves as choices and give each back as it is."""
    if not all(type(v) in _PLAIN for v in values):
        return False
    if any(isinstance(v, float) and math.isnan(v) for v in values):
        return False
    # 1, 1.0 and True are equal: Optuna would hand back the first of them for each.
    return all(values.index(v) == i for i, v in enumerate(values))


def _cdf(probabilities: tuple[float, ...]) -> list[float]:
    total = math.fsum(probabilities)
    cdf = [c / total for c in itertools.accumulate(probabilities)]
    cdf[-1] = 1.0
    return cdf


def _pick(cdf: list[float], u: float) -> int:
    """The value's index that u falls on: the first whose cumulative probability exceeds u."""
    i = bisect.bisect_right(cdf, u)
    if i < len(cdf):
        return i
    # u == 1: the last value with a probability above 0.
    return bisect.bisect_left(cdf, cdf[-1])


def _q_count(low: float | int, high: float | int, q: float | int) -> int:
    """How many values numpy's ``arange(min, max, q)`` has (max excluded), as W&B's grid."""
    return max(0, math.ceil((high - low) / q))


def _q_value(low: float | int, q: float | int, k: int) -> float | int:
    """The k-th value of ``arange(min, max, q)`` without building it: numpy fills its
    array as ``min + k * ((min + q) - min)`` past the first two, which differs from
    ``min + k * q`` in the last bit for some floats."""
    if k == 0:
        return low
    if k == 1:
        return low + q
    return low + k * ((low + q) - low)


def _axis(p: Param) -> list[dict[str, Any]]:
    """The fixed params of each of the parameter's grid values, in listed order."""
    if p.distribution == "constant":
        return [{}]
    if p.distribution == "categorical":
        if p.probabilities is not None:
            cdf = _cdf(p.probabilities)
            lows = [0.0, *cdf[:-1]]
            return [{p.name: (lo + hi) / 2} for lo, hi in zip(lows, cdf, strict=True) if hi > lo]
        if _plain(p.values):
            return [{p.name: v} for v in p.values]
        return [{p.name: i} for i in range(len(p.values))]
    if p.distribution == "int_uniform":
        low, high = _bounds(p)
        return [{p.name: v} for v in range(int(low), int(high) + 1)]
    if p.distribution == "q_uniform":
        low, high = _bounds(p)
        values: list[float | int] = np.arange(low, high, p.q).tolist()
        return [{p.name: v} for v in values]
    raise ConfigError(
        f"parameters.{p.name}: {p.distribution} has no grid; "
        f"method grid takes {', '.join(GRID_DISTRIBUTIONS)}"
    )
