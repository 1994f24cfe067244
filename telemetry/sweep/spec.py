"""A W&B sweep file, checked and parsed into frozen dataclasses (semantics: shared/SWEEPS.md).

Everything W&B's schema would flag is refused with a ``ConfigError`` naming the key path
(``parameters.actor_lr.min``) and what is allowed: W&B's CLI only warns, and a sweep that
runs hundreds of trials on a mistyped key wastes more than an early refusal costs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, cast

import structlog
import yaml

from telemetry.checks import NON_NEGATIVE, POSITIVE, Interval, at_least
from telemetry.errors import ConfigError

logger = structlog.get_logger("rltelemetry")

Goal = Literal["minimize", "maximize"]
Method = Literal["grid", "random", "bayes"]

DISTRIBUTIONS: tuple[str, ...] = (
    "constant",
    "categorical",
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform",
    "log_uniform_values",
    "q_log_uniform",
    "q_log_uniform_values",
    "inv_log_uniform",
    "inv_log_uniform_values",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
    "beta",
    "q_beta",
)
GRID_DISTRIBUTIONS: tuple[str, ...] = ("constant", "categorical", "int_uniform", "q_uniform")

TOP_LEVEL_KEYS: tuple[str, ...] = (
    "program",
    "method",
    "metric",
    "parameters",
    "early_terminate",
    "command",
    "run_cap",
    "name",
    "description",
    "project",
    "entity",
)
METHODS: tuple[str, ...] = ("grid", "random", "bayes")
GOALS: tuple[str, ...] = ("minimize", "maximize")
_METRIC_KEYS = ("name", "goal", "target")
_HYPERBAND_KEYS = ("type", "min_iter", "max_iter", "s", "eta", "strict")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

_BOUNDED = ("min", "max")
_KEYS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "categorical": ("values", "probabilities"),
    "int_uniform": _BOUNDED,
    "uniform": _BOUNDED,
    "q_uniform": (*_BOUNDED, "q"),
    "log_uniform": _BOUNDED,
    "log_uniform_values": _BOUNDED,
    "q_log_uniform": (*_BOUNDED, "q"),
    "q_log_uniform_values": (*_BOUNDED, "q"),
    "inv_log_uniform": _BOUNDED,
    "inv_log_uniform_values": _BOUNDED,
    "normal": ("mu", "sigma"),
    "q_normal": ("mu", "sigma", "q"),
    "log_normal": ("mu", "sigma"),
    "q_log_normal": ("mu", "sigma", "q"),
    "beta": ("a", "b"),
    "q_beta": ("a", "b", "q"),
}
"""The keys each distribution takes besides ``distribution`` (W&B's schema, one per form)."""
_VALUE_FORMS = ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values")
_EXPONENT_FORMS = ("log_uniform", "q_log_uniform", "inv_log_uniform")
# e**710 overflows a float and e**-746 is 0: neither can bound Optuna's log-uniform interval.
_EXPONENT = Interval(-745.0, 709.0, text="an exponent in [-745, 709] (e^x must be a finite float)")
_NUMBER = Interval()
_INTEGER = Interval(integer=True, text="an integer")
_COUNT = at_least(1)
_VALUE = Interval(0.0, low_open=True, text="> 0 (this form takes values, not exponents)")
_MIN_ITER_BANDS = 100
"""Bands W&B's engine derives from ``min_iter``; bands past any run's length never apply."""


@dataclass(frozen=True, slots=True)
class Metric:
    """The metric a sweep optimises and when it is good enough to stop."""

    name: str
    goal: Goal = "minimize"
    target: float | None = None
    """Stop creating runs once a run reaches this value."""


@dataclass(frozen=True, slots=True)
class Hyperband:
    """W&B's hyperband early stopping: the iteration counts at which runs are compared."""

    bands: tuple[int, ...]
    """Sorted ascending; an iteration is the n-th logged value of the metric."""
    eta: int = 3
    strict: bool = True
    """Compare a run's value at the band (true) or its best value so far (false)."""


@dataclass(frozen=True, slots=True)
class Param:
    """One swept parameter: its distribution and that distribution's arguments."""

    name: str
    """Full dotted name; nested parameters read ``a.b``."""
    distribution: str
    """One of ``DISTRIBUTIONS``, inferred when the file leaves it out."""
    value: Any = None
    values: tuple[Any, ...] = ()
    probabilities: tuple[float, ...] | None = None
    min: float | int | None = None
    max: float | int | None = None
    q: float | int = 1
    mu: float = 0.0
    sigma: float = 1.0
    a: float = 1.0
    b: float = 1.0


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A whole sweep file, checked: what to sample, how, what to optimise and what to run."""

    method: Method
    params: tuple[Param, ...]
    """Flattened, sorted by name."""
    metric: Metric | None = None
    early_terminate: Hyperband | None = None
    run_cap: int | None = None
    program: str | None = None
    command: tuple[str, ...] | None = None
    name: str | None = None
    description: str | None = None
    project: str | None = None
    entity: str | None = None


def load_sweep(path: Path) -> SweepSpec:
    """The sweep in the YAML file at ``path``; a ``ConfigError`` names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such sweep file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{path}: cannot read the sweep file ({reason})") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise ConfigError(f"{path}: not valid YAML{where} ({problem})") from exc
    try:
        return parse_sweep(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def parse_sweep(raw: object) -> SweepSpec:
    """The sweep a loaded YAML mapping describes; raises ``ConfigError`` naming the bad key."""
    if not isinstance(raw, Mapping):
        _fail("sweep", "the file must be a mapping of sweep keys, e.g. method: and parameters:")
    _only(raw, "", TOP_LEVEL_KEYS)
    if "method" not in raw:
        _fail("method", f"required; one of {', '.join(METHODS)}")
    method = raw["method"]
    if method not in METHODS:
        _fail("method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    metric = _metric(raw["metric"]) if "metric" in raw else None
    if method == "bayes" and metric is None:
        _fail("metric", "required by method bayes: the metric it optimises")
    early_terminate = None
    if "early_terminate" in raw:
        if metric is None:
            _fail("early_terminate", "needs a metric: the metric runs are compared on")
        early_terminate = _hyperband(raw["early_terminate"])
    if "parameters" not in raw:
        _fail("parameters", "required: a mapping of parameter names to their distributions")
    params = sorted(_params(raw["parameters"], "parameters", "", method), key=lambda p: p.name)
    _distinct(params)
    run_cap = raw.get("run_cap")
    if run_cap is not None:
        _COUNT.check("run_cap", run_cap)
    return SweepSpec(
        method=cast(Method, method),
        params=tuple(params),
        metric=metric,
        early_terminate=early_terminate,
        run_cap=run_cap,
        program=_text(raw, "program"),
        command=_command(raw.get("command")),
        name=_text(raw, "name"),
        description=_text(raw, "description"),
        project=_text(raw, "project"),
        entity=_text(raw, "entity"),
    )


def _fail(path: str, problem: str) -> NoReturn:
    raise ConfigError(f"{path}: {problem}")


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _mapping(raw: object, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        _fail(path, f"must be a mapping, got {type(raw).__name__}")
    return raw


def _only(raw: Mapping[str, Any], path: str, allowed: tuple[str, ...], what: str = "") -> None:
    for key in raw:
        if key not in allowed:
            kind = f" for {what}" if what else ""
            _fail(_join(path, key), f"unknown key{kind}; allowed: {', '.join(allowed)}")


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        _fail(key, f"must be a string, got {value!r}")
    return value


def _command(raw: object) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list | tuple) or not raw or not all(isinstance(t, str) for t in raw):
        _fail(
            "command", f"must be a non-empty list of strings, e.g. [python, train.py], got {raw!r}"
        )
    return tuple(raw)


def _metric(raw: object) -> Metric:
    metric = _mapping(raw, "metric")
    _only(metric, "metric", _METRIC_KEYS)
    name = metric.get("name")
    if not isinstance(name, str) or not name:
        _fail("metric.name", f"required: the name of a logged metric, got {name!r}")
    goal = metric.get("goal", "minimize")
    if goal not in GOALS:
        _fail("metric.goal", f"must be one of {', '.join(GOALS)}, got {goal!r}")
    target = metric.get("target")
    if target is not None:
        _NUMBER.check("metric.target", target)
    return Metric(
        name=name, goal=cast(Goal, goal), target=None if target is None else float(target)
    )


def _hyperband(raw: object) -> Hyperband:
    et = _mapping(raw, "early_terminate")
    _only(et, "early_terminate", _HYPERBAND_KEYS)
    if et.get("type") != "hyperband":
        _fail("early_terminate.type", f"must be hyperband, got {et.get('type')!r}")
    eta = et.get("eta", 3)
    # W&B's schema takes any eta > 1; bands are integer iteration counts, so ours is an integer.
    at_least(2).check("early_terminate.eta", eta)
    strict = et.get("strict", True)
    if not isinstance(strict, bool):
        _fail("early_terminate.strict", f"must be true or false, got {strict!r}")
    if "max_iter" in et and "min_iter" in et:
        _fail("early_terminate", "give either min_iter, or max_iter with s, not both")
    if "max_iter" in et:
        _COUNT.check("early_terminate.max_iter", et["max_iter"])
        if "s" not in et:
            _fail("early_terminate.s", "required with max_iter: how many bands below max_iter")
        _COUNT.check("early_terminate.s", et["s"])
        bands = _bands_below(et["max_iter"], et["s"], eta)
        if not bands:
            _fail("early_terminate.max_iter", f"must be at least eta ({eta}) to give a band")
    elif "min_iter" in et:
        _COUNT.check("early_terminate.min_iter", et["min_iter"])
        bands = [et["min_iter"] * eta**k for k in range(_MIN_ITER_BANDS)]
    else:
        _fail("early_terminate", "give min_iter, or max_iter with s")
    return Hyperband(bands=tuple(bands), eta=eta, strict=strict)


def _bands_below(max_iter: int, s: int, eta: int) -> list[int]:
    """max_iter divided by eta up to s times, integer parts >= 1, ascending (W&B's rule)."""
    bands, band = [], float(max_iter)
    for _ in range(s):
        band /= eta
        if band < 1:
            break
        bands.append(int(band))
    return sorted(bands)


def _params(raw: object, path: str, prefix: str, method: str) -> list[Param]:
    entries = _mapping(raw, path)
    if not entries:
        _fail(path, "must name at least one parameter")
    params: list[Param] = []
    for key, entry in entries.items():
        key_path = _join(path, key)
        if not isinstance(key, str) or not _NAME.match(key):
            _fail(key_path, "a parameter name must match ^[A-Za-z_][A-Za-z0-9_.-]*$")
        name = f"{prefix}{key}"
        spec = _mapping(entry, key_path)
        if "parameters" in spec:
            _only(spec, key_path, ("parameters",), "nested parameters")
            params.extend(_params(spec["parameters"], f"{key_path}.parameters", f"{name}.", method))
        else:
            params.append(_param(name, spec, key_path, method))
    return params


def _distinct(params: list[Param]) -> None:
    """Refuse two parameters that would land on one config key (``a.b`` nested and dotted)."""
    names = {p.name for p in params}
    for p in params:
        parts = p.name.split(".")
        for i in range(1, len(parts) + 1):
            head = ".".join(parts[:i])
            if head in names and head != p.name:
                _fail(f"parameters.{p.name}", f"nests under {head}, which is a parameter itself")
    if len(names) < len(params):
        twice = sorted(n for n in names if sum(p.name == n for p in params) > 1)[0]
        _fail(f"parameters.{twice}", "given twice (once nested, once as a dotted name)")


def _distribution(spec: Mapping[str, Any], path: str) -> str:
    """The distribution named, or the one W&B infers from the keys given."""
    named = spec.get("distribution")
    if named is None:
        if "values" in spec:
            return "categorical"
        if "value" in spec:
            return "constant"
        if "min" in spec or "max" in spec:
            for key in _BOUNDED:
                if key not in spec:
                    _fail(_join(path, key), "required with the other bound")
                _NUMBER.check(_join(path, key), spec[key])
            ints = all(isinstance(spec[key], int) for key in _BOUNDED)
            return "int_uniform" if ints else "uniform"
        _fail(
            path,
            "no recognisable form: give values, value, min and max, parameters, "
            f"or a distribution (one of {', '.join(DISTRIBUTIONS)})",
        )
    if named == "categorical_w_probabilities":  # W&B's schema spells it so; one form here
        return "categorical"
    if named not in DISTRIBUTIONS:
        _fail(
            _join(path, "distribution"), f"must be one of {', '.join(DISTRIBUTIONS)}, got {named!r}"
        )
    return str(named)


def _param(name: str, spec: Mapping[str, Any], path: str, method: str) -> Param:
    dist = _distribution(spec, path)
    allowed = (*_KEYS[dist], "distribution")
    _only(spec, path, allowed, dist)
    if method == "grid" and dist not in GRID_DISTRIBUTIONS:
        _fail(
            path,
            f"{dist} has no grid; method grid takes {', '.join(GRID_DISTRIBUTIONS)}",
        )
    for key in _KEYS[dist]:
        if key in ("min", "max", "value", "values") and key not in spec:
            _fail(_join(path, key), f"required by {dist}")
    if dist == "constant":
        return Param(name=name, distribution=dist, value=spec["value"])
    if dist == "categorical":
        return _categorical(name, spec, path)
    fields: dict[str, Any] = {}
    for key in _KEYS[dist]:
        if key in spec:
            _check_field(dist, _join(path, key), key, spec[key])
            # mu, sigma, a and b are floats; min, max and q keep their type (an int q gives ints).
            fields[key] = float(spec[key]) if key in ("mu", "sigma", "a", "b") else spec[key]
    if "min" in fields and fields["min"] >= fields["max"]:
        _fail(
            _join(path, "min"), f"must be less than max ({fields['max']!r}), got {fields['min']!r}"
        )
    param = Param(name=name, distribution=dist, **fields)
    if dist in _EXPONENT_FORMS and fields["min"] > 0 and fields["max"] < 1:
        logger.warning(
            "sweep_log_uniform_exponents",
            parameter=name,
            note=(
                f"{dist} takes natural-log exponents: this samples "
                f"e^{fields['min']!r}..e^{fields['max']!r}, values near 1; "
                f"for {fields['min']!r}..{fields['max']!r} use {dist}_values"
            ),
        )
    return param


def _check_field(dist: str, path: str, key: str, value: object) -> None:
    if key in ("min", "max"):
        if dist == "int_uniform":
            _INTEGER.check(path, value)
        elif dist in _VALUE_FORMS:
            # ln(min) bounds the interval.
            (_VALUE if key == "min" else _NUMBER).check(path, value)
        elif dist in _EXPONENT_FORMS:
            _EXPONENT.check(path, value)
        else:
            _NUMBER.check(path, value)
    elif key == "q":
        POSITIVE.check(path, value)
    elif key == "sigma":
        NON_NEGATIVE.check(path, value)
    elif key in ("a", "b"):
        # W&B's schema allows 0, where the beta density is not defined.
        POSITIVE.check(path, value)
    else:
        _NUMBER.check(path, value)


def _categorical(name: str, spec: Mapping[str, Any], path: str) -> Param:
    values = spec["values"]
    if not isinstance(values, list | tuple) or not values:
        _fail(_join(path, "values"), f"must be a non-empty list, got {values!r}")
    raw = spec.get("probabilities")
    if raw is None:
        return Param(name=name, distribution="categorical", values=tuple(values))
    key = _join(path, "probabilities")
    if not isinstance(raw, list | tuple) or len(raw) != len(values):
        _fail(key, f"must be a list of {len(values)} numbers, one per value, got {raw!r}")
    for i, p in enumerate(raw):
        NON_NEGATIVE.check(f"{key}[{i}]", p)
    if not math.isclose(math.fsum(raw), 1.0, rel_tol=0.0, abs_tol=1e-6):
        _fail(key, f"must sum to 1, got {math.fsum(raw)!r}")
    return Param(
        name=name,
        distribution="categorical",
        values=tuple(values),
        probabilities=tuple(float(p) for p in raw),
    )
