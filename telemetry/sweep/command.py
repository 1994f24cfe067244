"""The command line of one sweep trial: W&B's ``command`` list with its macros expanded.

Values are formatted as W&B's agent formats them (``wandb/sdk/launch/sweeps/utils.py``):
``str()`` of a scalar, so ``True``, ``None``, ``0.01``, ``1e-05``. Lists and dicts (a nested
parameter reaches the trial as one dict under its top-level name, as W&B passes it) are JSON
here, where W&B writes Python's ``str()`` (``{'b': 1}``): JSON is what a program, or our own
``key=value`` overrides, can read back.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from telemetry.errors import ConfigError

DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")

_MACRO = re.compile(r"\$\{([^}]*)\}")
_ENVVAR = re.compile(r"envvar:([A-Za-z_][A-Za-z0-9_]*)")


def trial_command(
    command: Sequence[str] | None,
    *,
    program: str | None,
    params: Mapping[str, Any],
    json_file: Path,
    interpreter: str = sys.executable,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The argv of one trial: each macro expanded per SWEEPS.md.

    ``command`` None or empty is ``DEFAULT_COMMAND`` (as W&B's ``command or default``).
    ``${interpreter}`` is ``interpreter``, by default the agent's own Python
    (``sys.executable``) where W&B writes ``python``: a trial then runs in the environment the
    agent was installed in, not whatever ``python`` is first on PATH. ``${args_json_file}`` is
    ``str(json_file)``; the caller writes it with ``write_params_file``. ``environ`` defaults
    to ``os.environ``. Raises ``ConfigError`` for an unknown macro, a macro that is not a
    whole element (``${envvar:NAME}`` excepted), ``${program}`` with no program, or an
    unset environment variable.
    """
    env = os.environ if environ is None else environ
    expanders: dict[str, Callable[[], list[str]]] = {
        "env": lambda: ["/usr/bin/env"],
        "interpreter": lambda: [interpreter],
        "program": lambda: [_program(program)],
        "args": lambda: [f"--{k}={_format(v)}" for k, v in params.items()],
        "args_no_hyphens": lambda: [f"{k}={_format(v)}" for k, v in params.items()],
        "args_no_boolean_flags": lambda: _no_boolean_flags(params),
        "args_json": lambda: [json.dumps(dict(params))],
        "args_json_file": lambda: [str(json_file)],
    }
    argv: list[str] = []
    for element in command or DEFAULT_COMMAND:
        # YAML gives a number for an element such as 8080; W&B takes str() of each element.
        token = str(element)
        whole = _MACRO.fullmatch(token)
        if whole is not None and whole.group(1) in expanders:
            argv.extend(expanders[whole.group(1)]())
        else:
            argv.append(_expand_inside(token, expanders, env))
    return argv


def write_params_file(path: Path, params: Mapping[str, Any]) -> None:
    """Write the ``${args_json_file}`` file: the JSON object of the trial's parameters."""
    # The same text as ${args_json}, as W&B's agent writes it.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(params)), encoding="utf-8")


def _expand_inside(token: str, expanders: Mapping[str, object], environ: Mapping[str, str]) -> str:
    """``token`` with each ``${envvar:NAME}`` replaced, in one pass (a value is not rescanned)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        envvar = _ENVVAR.fullmatch(name)
        if envvar is not None:
            if envvar.group(1) not in environ:
                # W&B puts the bare NAME in its place, hiding the mistake until the trial runs.
                raise ConfigError(
                    f"command element {token!r}: environment variable {envvar.group(1)} is not set"
                )
            return environ[envvar.group(1)]
        if name in expanders:
            # W&B would pass such a token on unexpanded: refuse it rather than hand the
            # trial a literal "${...}".
            raise ConfigError(
                f"command element {token!r}: ${{{name}}} must be a whole element of the "
                "command list (only ${envvar:NAME} may sit inside one)"
            )
        known = ", ".join(f"${{{macro}}}" for macro in (*expanders, "envvar:NAME"))
        raise ConfigError(f"command element {token!r}: unknown macro ${{{name}}}; known: {known}")

    return _MACRO.sub(value, token)


def _program(program: str | None) -> str:
    """The program, or a ``ConfigError`` when the sweep has none."""
    if program is None:
        raise ConfigError("the command uses ${program} but the sweep config has no program")
    return program


def _no_boolean_flags(params: Mapping[str, Any]) -> list[str]:
    """``--k=v`` per parameter, with True as a bare ``--k`` and False left out."""
    flags: list[str] = []
    for key, value in params.items():
        if isinstance(value, bool):
            if value:
                flags.append(f"--{key}")
        else:
            flags.append(f"--{key}={_format(value)}")
    return flags


def _format(value: Any) -> str:
    """One parameter value on the command line: ``str()`` of a scalar, JSON of a list or dict."""
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return str(value)
