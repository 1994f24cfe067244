"""A trial's command line: the default command, every W&B macro, and the errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from telemetry.errors import ConfigError
from telemetry.sweep.command import DEFAULT_COMMAND, trial_command, write_params_file

JSON_FILE = Path("/tmp/sweep-x/config-run1.json")
PARAMS: dict[str, Any] = {"lr": 0.01, "batch_size": 32}


def run(command: list[str] | None, params: dict[str, Any] = PARAMS, **kwargs: Any) -> list[str]:
    """trial_command with the test's usual program, file and interpreter."""
    kwargs.setdefault("program", "train.py")
    kwargs.setdefault("interpreter", "python")
    kwargs.setdefault("environ", {})
    return trial_command(command, params=params, json_file=JSON_FILE, **kwargs)


def test_default_command_is_wandb_example() -> None:
    """No command gives W&B's ``${env} ${interpreter} ${program} ${args}``."""
    assert DEFAULT_COMMAND == ("${env}", "${interpreter}", "${program}", "${args}")
    expected = ["/usr/bin/env", "python", "train.py", "--lr=0.01", "--batch_size=32"]
    assert run(None) == expected
    assert run([]) == expected  # W&B: ``command or default``


def test_interpreter_defaults_to_this_python() -> None:
    """Without an interpreter, ${interpreter} is the agent's own sys.executable."""
    got = trial_command(["${interpreter}"], program=None, params={}, json_file=JSON_FILE)
    assert got == [sys.executable]


def test_literal_elements_are_kept() -> None:
    """Elements without macros pass through in place."""
    assert run(["torchrun", "--nproc=2", "${program}", "--", "${args}"]) == [
        "torchrun",
        "--nproc=2",
        "train.py",
        "--",
        "--lr=0.01",
        "--batch_size=32",
    ]


def test_args_forms() -> None:
    """${args}, ${args_no_hyphens} and ${args_no_boolean_flags} give one element per param."""
    params = {"lr": 1e-05, "use_amp": True, "compile": False, "tag": None, "name": "a b"}
    assert run(["${args}"], params) == [
        "--lr=1e-05",
        "--use_amp=True",
        "--compile=False",
        "--tag=None",
        "--name=a b",
    ]
    assert run(["${args_no_hyphens}"], params) == [
        "lr=1e-05",
        "use_amp=True",
        "compile=False",
        "tag=None",
        "name=a b",
    ]
    assert run(["${args_no_boolean_flags}"], params) == [
        "--lr=1e-05",
        "--use_amp",
        "--tag=None",
        "--name=a b",
    ]


def test_lists_and_nested_dicts_are_json() -> None:
    """A list or a nested parameter's dict is one JSON value after ``=``."""
    params = {"layers": [64, 32], "opt": {"name": "adam", "beta": 0.9, "fused": True}}
    assert run(["${args}"], params) == [
        "--layers=[64, 32]",
        '--opt={"name": "adam", "beta": 0.9, "fused": true}',
    ]


def test_args_json_is_one_element() -> None:
    """${args_json} is a single element holding the JSON object of all params."""
    params = {"lr": 0.01, "opt": {"name": "adam"}, "flag": True}
    got = run(["${args_json}"], params)
    assert len(got) == 1
    assert json.loads(got[0]) == params


def test_args_json_file_is_the_path(tmp_path: Path) -> None:
    """${args_json_file} is the path; write_params_file writes the params there as JSON."""
    path = tmp_path / "sweep" / "config-run1.json"
    got = trial_command(
        ["${program}", "${args_json_file}"],
        program="train.py",
        params=PARAMS,
        json_file=path,
        environ={},
    )
    assert got == ["train.py", str(path)]
    write_params_file(path, {"lr": 0.01, "opt": {"beta": 0.9}, "amp": False, "tag": None})
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "lr": 0.01,
        "opt": {"beta": 0.9},
        "amp": False,
        "tag": None,
    }


def test_envvar_inside_any_token() -> None:
    """${envvar:NAME} is replaced wherever it sits, several times in one element."""
    environ = {"DATA_DIR": "/data", "SPLIT": "train", "lower_ok": "x"}
    got = run(
        ["${envvar:DATA_DIR}", "--data=${envvar:DATA_DIR}/${envvar:SPLIT}", "${envvar:lower_ok}"],
        environ=environ,
    )
    assert got == ["/data", "--data=/data/train", "x"]


def test_envvar_value_is_not_expanded_again() -> None:
    """A variable whose value looks like a macro is passed on as written."""
    assert run(["${envvar:TRICK}"], environ={"TRICK": "${args}"}) == ["${args}"]


def test_envvar_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without environ, the process environment is used."""
    monkeypatch.setenv("SWEEP_TEST_VAR", "42")
    got = trial_command(
        ["--n=${envvar:SWEEP_TEST_VAR}"], program=None, params={}, json_file=JSON_FILE
    )
    assert got == ["--n=42"]


def test_unset_envvar_is_an_error() -> None:
    """An unset variable is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="MISSING_VAR"):
        run(["--x=${envvar:MISSING_VAR}"])


@pytest.mark.parametrize("element", ["${argz}", "--x=${nope}", "${envvar:}"])
def test_unknown_macro_is_an_error(element: str) -> None:
    """An unknown macro is a ConfigError naming it and listing the known ones."""
    with pytest.raises(ConfigError, match="unknown macro") as caught:
        run([element])
    message = str(caught.value)
    assert element[element.index("${") :] in message
    for known in ("${args_no_boolean_flags}", "${args_json_file}", "${envvar:NAME}"):
        assert known in message


def test_macro_inside_a_token_is_an_error() -> None:
    """A macro other than envvar must be a whole element (W&B would pass it unexpanded)."""
    with pytest.raises(ConfigError, match="whole element"):
        run(["--config=${args_json_file}"])


def test_program_missing_is_an_error() -> None:
    """${program} with no program is a ConfigError; a command without it needs none."""
    with pytest.raises(ConfigError, match="program"):
        run(None, program=None)
    assert run(["${env}", "${args}"], program=None) == [
        "/usr/bin/env",
        "--lr=0.01",
        "--batch_size=32",
    ]


def test_a_hex_sweep_id_that_looks_like_a_number_reaches_the_trial_as_text() -> None:
    """``group=088443e4`` would be read back as 884430000.0: the trial's override quotes it."""
    from omegaconf import OmegaConf

    from telemetry.sweep.cli import _override

    for sweep_id in ("088443e4", "12345678", "abc12345"):
        line = _override("group", sweep_id)
        assert OmegaConf.from_dotlist([line]).group == sweep_id, line
