"""Parsing W&B sweep files: W&B's documented examples, inference, refusals, hyperband bands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from telemetry.errors import ConfigError
from telemetry.sweep.spec import (
    DISTRIBUTIONS,
    GRID_DISTRIBUTIONS,
    Hyperband,
    Metric,
    Param,
    SweepSpec,
    load_sweep,
    parse_sweep,
)

RANDOM = """
program: train.py
method: random
name: sweep
metric:
  goal: minimize
  name: loss
parameters:
  batch_size:
    values: [16, 32, 64]
  epochs:
    value: 5
  lr:
    min: 0.0001
    max: 0.1
  optimizer:
    values: ["adam", "sgd"]
  dropout:
    distribution: uniform
    min: 0
    max: 0.5
  weight_decay:
    distribution: log_uniform_values
    min: 1.0e-6
    max: 1.0e-2
  momentum:
    distribution: normal
    mu: 0.9
    sigma: 0.02
"""

BAYES_HYPERBAND = """
program: train.py
method: bayes
metric:
  name: val_loss
  goal: minimize
  target: 0.1
early_terminate:
  type: hyperband
  min_iter: 3
parameters:
  learning_rate:
    distribution: q_log_uniform_values
    min: 0.0001
    max: 0.1
    q: 0.0001
  layers:
    distribution: int_uniform
    min: 1
    max: 4
"""

GRID = """
method: grid
metric:
  name: accuracy
  goal: maximize
parameters:
  optimizer:
    values: [adam, sgd]
  fc_layer_size:
    values: [128, 256, 512]
  dropout:
    values: [0.3, 0.4, 0.5]
  epochs:
    value: 1
  seeds:
    min: 0
    max: 2
  width:
    distribution: q_uniform
    min: 32
    max: 128
    q: 32
"""

NESTED = """
method: random
parameters:
  optimizer:
    parameters:
      lr:
        values: [0.01, 0.001]
      betas:
        parameters:
          beta1:
            value: 0.9
  epochs:
    value: 3
"""

COMMAND = """
program: train.py
method: random
run_cap: 20
project: my-project
entity: my-team
description: lr and batch size
command:
  - ${env}
  - ${interpreter}
  - ${program}
  - "--config"
  - ${args_no_hyphens}
parameters:
  lr:
    values: [0.1, 0.01]
"""

PROBABILITIES = """
method: random
parameters:
  activation:
    values: [relu, tanh, gelu]
    probabilities: [0.5, 0.3, 0.2]
"""


def _parse(text: str) -> SweepSpec:
    return parse_sweep(yaml.safe_load(text))


def _by_name(spec: SweepSpec) -> dict[str, Param]:
    return {p.name: p for p in spec.params}


def test_random_example_parses_with_inferred_and_named_distributions() -> None:
    """W&B's random example: values, a constant, a float range and named distributions."""
    spec = _parse(RANDOM)
    params = _by_name(spec)
    assert spec.method == "random"
    assert spec.program == "train.py"
    assert spec.name == "sweep"
    assert spec.metric == Metric(name="loss", goal="minimize")
    assert [p.name for p in spec.params] == sorted(params)
    assert params["batch_size"] == Param("batch_size", "categorical", values=(16, 32, 64))
    assert params["epochs"] == Param("epochs", "constant", value=5)
    assert params["lr"] == Param("lr", "uniform", min=0.0001, max=0.1)
    assert params["dropout"].distribution == "uniform"
    assert params["weight_decay"] == Param(
        "weight_decay", "log_uniform_values", min=1.0e-6, max=1.0e-2
    )
    assert params["momentum"] == Param("momentum", "normal", mu=0.9, sigma=0.02)


def test_bayes_example_with_hyperband_parses() -> None:
    """W&B's bayes example with a target and hyperband from min_iter."""
    spec = _parse(BAYES_HYPERBAND)
    assert spec.metric == Metric(name="val_loss", goal="minimize", target=0.1)
    assert spec.early_terminate is not None
    assert spec.early_terminate.bands[:4] == (3, 9, 27, 81)
    assert spec.early_terminate.eta == 3
    assert spec.early_terminate.strict is True
    assert _by_name(spec)["learning_rate"].q == 0.0001
    assert _by_name(spec)["layers"] == Param("layers", "int_uniform", min=1, max=4)


def test_grid_example_parses() -> None:
    """W&B's grid example with int_uniform and q_uniform axes."""
    spec = _parse(GRID)
    params = _by_name(spec)
    assert spec.method == "grid"
    assert spec.metric == Metric(name="accuracy", goal="maximize")
    assert params["seeds"].distribution == "int_uniform"
    assert params["width"] == Param("width", "q_uniform", min=32, max=128, q=32)
    assert all(p.distribution in GRID_DISTRIBUTIONS for p in spec.params)


def test_nested_parameters_are_flattened_with_dotted_names() -> None:
    """Nested parameters get dotted names, sorted with the others."""
    spec = _parse(NESTED)
    assert [p.name for p in spec.params] == [
        "epochs",
        "optimizer.betas.beta1",
        "optimizer.lr",
    ]
    assert _by_name(spec)["optimizer.betas.beta1"].value == 0.9


def test_command_with_macros_and_run_settings_parse() -> None:
    """The command list keeps W&B's macros as they are; run_cap, project, entity parse."""
    spec = _parse(COMMAND)
    assert spec.command == (
        "${env}",
        "${interpreter}",
        "${program}",
        "--config",
        "${args_no_hyphens}",
    )
    assert spec.run_cap == 20
    assert (spec.project, spec.entity) == ("my-project", "my-team")
    assert spec.description == "lr and batch size"


def test_probabilities_parse() -> None:
    """A categorical with probabilities keeps them in order."""
    param = _parse(PROBABILITIES).params[0]
    assert param.values == ("relu", "tanh", "gelu")
    assert param.probabilities == (0.5, 0.3, 0.2)


def test_w_and_b_spelling_of_categorical_with_probabilities_is_categorical() -> None:
    """W&B's schema name categorical_w_probabilities reads as categorical."""
    spec = parse_sweep(
        {
            "method": "random",
            "parameters": {
                "x": {
                    "distribution": "categorical_w_probabilities",
                    "values": [1, 2],
                    "probabilities": [0.5, 0.5],
                }
            },
        }
    )
    assert spec.params[0].distribution == "categorical"


@pytest.mark.parametrize(
    ("entry", "distribution"),
    [
        ({"values": [1, 2]}, "categorical"),
        ({"min": 1, "max": 5}, "int_uniform"),
        ({"min": 1, "max": 5.0}, "uniform"),
        ({"min": 0.5, "max": 5}, "uniform"),
        ({"value": "adam"}, "constant"),
    ],
)
def test_distribution_is_inferred_as_w_and_b_does(entry: dict[str, Any], distribution: str) -> None:
    """Without a distribution key, W&B's inference rules pick one."""
    spec = parse_sweep({"method": "random", "parameters": {"x": entry}})
    assert spec.params[0].distribution == distribution


def test_defaults_of_named_distributions() -> None:
    """q, mu, sigma, a and b default as W&B's schema says."""
    spec = parse_sweep(
        {
            "method": "random",
            "parameters": {
                "n": {"distribution": "q_normal"},
                "b": {"distribution": "beta"},
            },
        }
    )
    n, b = _by_name(spec)["n"], _by_name(spec)["b"]
    assert (n.mu, n.sigma, n.q) == (0.0, 1.0, 1)
    assert (b.a, b.b) == (1.0, 1.0)


def test_every_distribution_parses() -> None:
    """Each name in DISTRIBUTIONS is accepted with its own keys."""
    entries: dict[str, dict[str, Any]] = {
        "constant": {"value": 1},
        "categorical": {"values": [1]},
        "normal": {},
        "q_normal": {"q": 2},
        "log_normal": {"sigma": 0.5},
        "q_log_normal": {"q": 0.5},
        "beta": {"a": 2, "b": 3},
        "q_beta": {"q": 0.1},
    }
    for dist in DISTRIBUTIONS:
        entry = {"distribution": dist, **entries.get(dist, {"min": 1, "max": 2})}
        spec = parse_sweep({"method": "random", "parameters": {"x": entry}})
        assert spec.params[0].distribution == dist


def _sweep(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"method": "random", "parameters": {"x": {"values": [1, 2]}}}
    base.update(changes)
    return base


def _params(**entries: Any) -> dict[str, Any]:
    return _sweep(parameters=entries)


METRIC = {"name": "loss"}

REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown top-level key", _sweep(methd="grid"), "methd"),
    ("missing method", {"parameters": {"x": {"value": 1}}}, "method"),
    ("unknown method", _sweep(method="hyperopt"), "method"),
    ("custom method", _sweep(method="custom"), "method"),
    ("unknown metric key", _sweep(metric={"name": "loss", "gaol": "max"}), "metric.gaol"),
    ("metric without name", _sweep(metric={"goal": "minimize"}), "metric.name"),
    ("bad goal", _sweep(metric={"name": "loss", "goal": "max"}), "metric.goal"),
    ("bad target", _sweep(metric={"name": "loss", "target": "high"}), "metric.target"),
    ("missing parameters", {"method": "random"}, "parameters"),
    ("empty parameters", _sweep(parameters={}), "parameters"),
    ("unknown parameter key", _params(x={"values": [1], "default": 1}), "parameters.x.default"),
    ("no recognisable form", _params(x={"q": 2}), "parameters.x"),
    ("unknown distribution", _params(x={"distribution": "gamma"}), "parameters.x.distribution"),
    ("key of another form", _params(x={"min": 1, "max": 4, "q": 2}), "parameters.x.q"),
    ("min without max", _params(x={"min": 1}), "parameters.x.max"),
    ("min equal to max", _params(x={"min": 1, "max": 1}), "parameters.x.min"),
    ("min above max", _params(x={"min": 0.5, "max": 0.1}), "parameters.x.min"),
    (
        "values form at min 0",
        _params(x={"distribution": "log_uniform_values", "min": 0, "max": 1}),
        "parameters.x.min",
    ),
    (
        "inv values form below 0",
        _params(x={"distribution": "inv_log_uniform_values", "min": -1, "max": 1}),
        "parameters.x.min",
    ),
    (
        "q values form at min 0",
        _params(x={"distribution": "q_log_uniform_values", "min": 0, "max": 9}),
        "parameters.x.min",
    ),
    (
        "exponent that overflows",
        _params(x={"distribution": "log_uniform", "min": 1, "max": 1000}),
        "parameters.x.max",
    ),
    (
        "probabilities of the wrong length",
        _params(x={"values": [1, 2, 3], "probabilities": [0.5, 0.5]}),
        "parameters.x.probabilities",
    ),
    (
        "probabilities not summing to 1",
        _params(x={"values": [1, 2], "probabilities": [0.5, 0.4]}),
        "parameters.x.probabilities",
    ),
    (
        "negative probability",
        _params(x={"values": [1, 2], "probabilities": [1.5, -0.5]}),
        "parameters.x.probabilities[1]",
    ),
    ("empty values", _params(x={"values": []}), "parameters.x.values"),
    (
        "uniform in a grid",
        _sweep(method="grid", parameters={"x": {"min": 0.1, "max": 1.0}}),
        "parameters.x",
    ),
    (
        "normal in a grid",
        _sweep(method="grid", parameters={"x": {"distribution": "normal"}}),
        "parameters.x",
    ),
    ("bayes without a metric", _sweep(method="bayes"), "metric"),
    (
        "early_terminate without a metric",
        _sweep(early_terminate={"type": "hyperband", "min_iter": 3}),
        "early_terminate",
    ),
    (
        "early_terminate of another type",
        _sweep(metric=METRIC, early_terminate={"type": "median", "min_iter": 3}),
        "early_terminate.type",
    ),
    (
        "unknown early_terminate key",
        _sweep(metric=METRIC, early_terminate={"type": "hyperband", "min_iter": 3, "x": 1}),
        "early_terminate.x",
    ),
    (
        "hyperband without iterations",
        _sweep(metric=METRIC, early_terminate={"type": "hyperband"}),
        "early_terminate",
    ),
    (
        "max_iter without s",
        _sweep(metric=METRIC, early_terminate={"type": "hyperband", "max_iter": 27}),
        "early_terminate.s",
    ),
    (
        "eta below 2",
        _sweep(metric=METRIC, early_terminate={"type": "hyperband", "min_iter": 3, "eta": 1}),
        "early_terminate.eta",
    ),
    (
        "max_iter below eta",
        _sweep(metric=METRIC, early_terminate={"type": "hyperband", "max_iter": 2, "s": 2}),
        "early_terminate.max_iter",
    ),
    (
        "min_iter of 0",
        _sweep(metric=METRIC, early_terminate={"type": "hyperband", "min_iter": 0}),
        "early_terminate.min_iter",
    ),
    ("run_cap of 0", _sweep(run_cap=0), "run_cap"),
    ("run_cap not an integer", _sweep(run_cap=2.5), "run_cap"),
    (
        "int_uniform with float bounds",
        _params(x={"distribution": "int_uniform", "min": 1.0, "max": 4}),
        "parameters.x.min",
    ),
    ("bad parameter name", _params(**{"1x": {"value": 1}}), "parameters.1x"),
    ("name with a space", _params(**{"a b": {"value": 1}}), "parameters.a b"),
    (
        "bad nested name",
        _params(opt={"parameters": {"$lr": {"value": 1}}}),
        "parameters.opt.parameters.$lr",
    ),
    (
        "nested entry with other keys",
        _params(opt={"parameters": {"lr": {"value": 1}}, "value": 2}),
        "parameters.opt.value",
    ),
    (
        "dotted name under a parameter",
        _params(a={"value": 1}, **{"a.b": {"value": 2}}),
        "parameters.a.b",
    ),
    ("command not a list", _sweep(command="python train.py"), "command"),
    ("command with a number", _sweep(command=["python", 3]), "command"),
    ("program not a string", _sweep(program=["train.py"]), "program"),
    ("negative sigma", _params(x={"distribution": "normal", "sigma": -1}), "parameters.x.sigma"),
    (
        "q of 0",
        _params(x={"distribution": "q_uniform", "min": 0, "max": 1, "q": 0}),
        "parameters.x.q",
    ),
    ("beta a of 0", _params(x={"distribution": "beta", "a": 0}), "parameters.x.a"),
    ("boolean bound", _params(x={"min": True, "max": 3}), "parameters.x.min"),
    ("not a mapping", ["method", "grid"], "sweep"),  # type: ignore[list-item]
]


@pytest.mark.parametrize(
    ("raw", "key"), [(raw, key) for _, raw, key in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusal_names_the_key(raw: Any, key: str) -> None:
    """Each refused sweep raises one ConfigError line that starts with the bad key path."""
    with pytest.raises(ConfigError) as info:
        parse_sweep(raw)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{key}:") or message.startswith(f"{key} must"), message


def test_unknown_top_level_key_lists_the_allowed_ones() -> None:
    """The refusal of an unknown top-level key lists every allowed key."""
    with pytest.raises(ConfigError, match="allowed: program, method, metric, parameters"):
        parse_sweep(_sweep(controller={"type": "local"}))


def test_probabilities_within_tolerance_are_accepted() -> None:
    """Probabilities summing to 1 within 1e-6 are accepted."""
    spec = parse_sweep(_params(x={"values": [1, 2, 3], "probabilities": [0.3333333] * 3}))
    assert spec.params[0].probabilities == (0.3333333,) * 3


@pytest.mark.parametrize(
    ("early_terminate", "bands"),
    [
        ({"max_iter": 27, "s": 2}, (3, 9)),
        ({"max_iter": 27, "s": 3}, (1, 3, 9)),
        ({"max_iter": 27, "s": 5}, (1, 3, 9)),
        ({"max_iter": 100, "s": 3, "eta": 2}, (12, 25, 50)),
        ({"max_iter": 5, "s": 2, "eta": 2}, (1, 2)),
    ],
)
def test_hyperband_bands_from_max_iter(early_terminate: dict[str, Any], bands: tuple[int]) -> None:
    """max_iter divided by eta s times, integer parts at least 1, ascending, max_iter left out."""
    spec = parse_sweep(
        _sweep(metric=METRIC, early_terminate={"type": "hyperband", **early_terminate})
    )
    assert spec.early_terminate is not None
    assert spec.early_terminate.bands == bands


def test_hyperband_bands_from_min_iter() -> None:
    """min_iter times eta to the k, for W&B's 100 values of k, with eta and strict given."""
    et = {"type": "hyperband", "min_iter": 2, "eta": 2, "strict": False}
    hyperband = parse_sweep(_sweep(metric=METRIC, early_terminate=et)).early_terminate
    assert hyperband == Hyperband(bands=tuple(2 * 2**k for k in range(100)), eta=2, strict=False)


def test_log_uniform_with_values_for_exponents_warns() -> None:
    """log_uniform with min 1e-5 and max 5e-4 warns that these are exponents."""
    with capture_logs() as logs:
        spec = parse_sweep(_params(lr={"distribution": "log_uniform", "min": 1e-5, "max": 5e-4}))
    assert spec.params[0].distribution == "log_uniform"
    warnings = [e for e in logs if e["event"] == "sweep_log_uniform_exponents"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["parameter"] == "lr"
    assert "log_uniform_values" in warnings[0]["note"]


def test_log_uniform_with_exponents_does_not_warn() -> None:
    """log_uniform with exponents such as -9..-3 does not warn."""
    with capture_logs() as logs:
        parse_sweep(_params(lr={"distribution": "log_uniform", "min": -9, "max": -3}))
    assert logs == []


def test_load_sweep_reads_a_file(tmp_path: Path) -> None:
    """A sweep file on disk parses as its mapping does."""
    path = tmp_path / "sweep.yaml"
    path.write_text(GRID)
    assert load_sweep(path) == _parse(GRID)


def test_load_sweep_names_a_missing_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming its path."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such sweep file"):
        load_sweep(path)


def test_load_sweep_names_a_file_of_bad_yaml(tmp_path: Path) -> None:
    """Unparseable YAML is a ConfigError naming the path and the line."""
    path = tmp_path / "bad.yaml"
    path.write_text("method: grid\nparameters: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML at line"):
        load_sweep(path)


def test_load_sweep_names_the_file_and_the_key(tmp_path: Path) -> None:
    """A refused key in a file names both the file and the key."""
    path = tmp_path / "sweep.yaml"
    path.write_text("method: grid\nparameters:\n  x:\n    min: 0.1\n    max: 1.0\n")
    with pytest.raises(ConfigError, match=r"sweep\.yaml: parameters\.x: uniform has no grid"):
        load_sweep(path)
