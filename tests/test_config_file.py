"""The shipped YAML config: it loads, and it says what the built-in defaults are."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from main import run_config
from telemetry.config import load_config

DEFAULT = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
RunConfig = run_config()  # the train schema of the registries as this module finds them


def test_default_yaml_equals_the_built_in_defaults() -> None:
    """configs/default.yaml loads into exactly the schema's defaults."""
    assert asdict(load_config(RunConfig, DEFAULT, [])) == asdict(RunConfig())


def test_overrides_apply_over_the_file() -> None:
    """KEY=VALUE overrides win over the file, nested keys included."""
    config = load_config(RunConfig, DEFAULT, ["trainer=erl", "erl.population_size=6"])
    assert config.trainer == "erl"
    assert config.erl.population_size == 6
