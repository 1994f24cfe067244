"""The sweep commands: ``sweep FILE``, ``sweep resume|show|best SWEEP``, ``agent SWEEP``.

Without ``program`` a trial is our own ``python main.py train`` with the base
overrides and the trial's parameters as config keys (``OwnTrain`` says how,
from main.py); with one, it is the sweep's command, with W&B's macros.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import anyio
import structlog
from rich.console import Console
from rich.table import Table

from telemetry.session import STOP_SIGNAL, until_signal
from telemetry.sweep.command import trial_command, write_params_file
from telemetry.sweep.engine import Claim, Engine
from telemetry.sweep.folder import SweepFolder
from telemetry.sweep.monitor import Monitor
from telemetry.sweep.runner import Agent, Session
from telemetry.sweep.show import best_row, importance, rows
from telemetry.sweep.space import nest
from telemetry.sweep.spec import SweepSpec, load_sweep
from telemetry.sweep.trial import TrialPlan

logger = structlog.get_logger("rltelemetry")
PARAMS_FILE = "params.json"


class OwnTrain(Protocol):
    """What the sweep needs of our own ``train`` (main.py provides it)."""

    @property
    def main(self) -> Path:
        """The script whose ``train`` command a trial runs."""

    def keys(
        self, names: Sequence[str], overrides: Sequence[str], constants: Mapping[str, Any]
    ) -> dict[str, str]:
        """Each parameter name's config key; ``ConfigError`` for an unknown one."""

    def check(self, overrides: Sequence[str]) -> None:
        """Raise ``ConfigError`` if a train config from ``overrides`` is not allowed."""


def load(path: Path) -> SweepSpec:
    """The sweep file at ``path``, parsed and checked."""
    return load_sweep(path)


def constants(spec: SweepSpec) -> dict[str, Any]:
    """The sweep's constant parameters (``trainer: {value: erl}`` picks the trainer)."""
    return {p.name: p.value for p in spec.params if p.distribution == "constant"}


def check_sweep(spec: SweepSpec, overrides: Sequence[str], train: OwnTrain) -> None:
    """Refuse, before any trial starts, names and base settings that would fail every trial."""
    if spec.program is not None:
        return
    fixed = constants(spec)
    keys = train.keys([p.name for p in spec.params], overrides, fixed)
    train.check([*overrides, *(_override(keys[name], value) for name, value in fixed.items())])


def planner(folder: SweepFolder, spec: SweepSpec, train: OwnTrain) -> Callable[[Claim], TrialPlan]:
    """How each trial of the sweep starts."""
    keys = None
    if spec.program is None:
        keys = train.keys([p.name for p in spec.params], folder.overrides, constants(spec))
    name = spec.name or folder.id

    def plan(claim: Claim) -> TrialPlan:
        trial = folder.trial_folder(claim.number)
        trial.mkdir(parents=True, exist_ok=True)
        params_file = trial / PARAMS_FILE
        write_params_file(params_file, nest(claim.params))
        env = {
            "TELEMETRY_SWEEP_ID": folder.id,
            "TELEMETRY_TRIAL": str(claim.number),
            "TELEMETRY_RUN_DIR": str(trial),
            "TELEMETRY_PARAMS_FILE": str(params_file),
        }
        metric = spec.metric.name if spec.metric else None
        if keys is None:
            argv = trial_command(
                spec.command, program=spec.program, params=nest(claim.params), json_file=params_file
            )
            return TrialPlan(argv, trial, env, signal.SIGTERM, metric, cwd=Path.cwd())
        argv = [
            sys.executable,
            str(train.main),
            "train",
            *folder.overrides,
            *(_override(keys[n], v) for n, v in claim.params.items()),
            f"out={trial}",
            # Quoted: a hex id such as 088443e4 would otherwise be read back as a number.
            _override("group", folder.id),
            _override("name", f"{name}-{claim.number}"),
            "wandb.job_type=sweep",
        ]
        return TrialPlan(argv, trial, env, STOP_SIGNAL, metric, cwd=trial)

    return plan


def _override(key: str, value: Any) -> str:
    """``key=value`` as the config loader reads it back (a plain word needs no quotes)."""
    if isinstance(value, str) and _PLAIN.fullmatch(value):
        return f"{key}={value}"
    return f"{key}={json.dumps(value)}"


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")


async def run_agents(
    folder: SweepFolder, spec: SweepSpec, train: OwnTrain, *, agents: int, count: int | None
) -> int:
    """Run ``agents`` agents here until the sweep, ``count`` or a signal ends them."""
    session = Session(count=count)
    plan = planner(folder, spec, train)
    with Monitor(spec.metric.name if spec.metric else None) as monitor:

        async def work() -> None:
            async with anyio.create_task_group() as group:
                for _ in range(agents):
                    agent = Agent(folder.engine, plan, session, monitor, folder.results)
                    group.start_soon(agent.run)

        _, signum = await until_signal(work)
    if signum is not None:
        logger.warning(
            "sweep_paused",
            sweep=folder.id,
            trials_ended=session.ended,
            resume=f"python main.py sweep resume {folder.path}",
        )
        return 128 + signum
    _summary(folder)
    return 0


def _summary(folder: SweepFolder) -> None:
    with folder.engine() as engine:
        _log_summary(folder, engine)


def _log_summary(folder: SweepFolder, engine: Engine) -> None:
    best = best_row(engine)
    logger.info(
        "sweep_done",
        sweep=folder.id,
        trials=len(rows(engine)),
        best_trial=None if best is None else best.number,
        best=None if best is None else best.best,
        reason=engine.ended_reason(),
        show=f"python main.py sweep show {folder.path}",
    )


def show(folder: SweepFolder, out: Any = None) -> int:
    """Print the trials table, the best trial and parameter importance."""
    with folder.engine() as engine:
        return _show(folder, engine, out)


def _show(folder: SweepFolder, engine: Engine, out: Any) -> int:
    spec = engine.spec
    console = Console(file=out or sys.stdout, width=160)
    metric = spec.metric.name if spec.metric else "metric"
    table = Table(title=f"sweep {folder.id} ({spec.method}, {metric})")
    for column in ("trial", "state", "parameters", "best", "last", "duration"):
        table.add_column(column)
    for row in rows(engine):
        table.add_row(
            str(row.number),
            row.state,
            " ".join(f"{k}={_fmt(v)}" for k, v in row.params.items()),
            _fmt(row.best),
            _fmt(row.last),
            "" if row.duration is None else f"{row.duration:.1f} s",
        )
    console.print(table)
    best = best_row(engine)
    if best is None:
        console.print("best trial: none has finished yet")
    else:
        console.print(f"best trial: {best.number} ({metric} = {_fmt(best.best)}), {best.run_dir}")
    weights = importance(engine)
    if weights:
        shown = ", ".join(f"{name} {value:.2f}" for name, value in weights.items())
        console.print(f"parameter importance (fANOVA): {shown}")
    reason = engine.ended_reason()
    if reason:
        console.print(f"no new trials: {reason}")
    return 0


def best(folder: SweepFolder, train: OwnTrain, output: Path | None) -> int:
    """Print the best trial's parameters as an override line and write them as a config file."""
    with folder.engine() as engine:
        spec, row = engine.spec, best_row(engine)
    if row is None:
        print("error: no trial of this sweep has finished yet", file=sys.stderr)
        return 1
    if spec.program is not None:
        print(" ".join(f"--{k}={v}" for k, v in nest(row.params).items()))
        return 0
    keys = train.keys(list(row.params), folder.overrides, constants(spec))
    line = [_override(keys[name], value) for name, value in row.params.items()]
    print(" ".join([*folder.overrides, *line]))
    target = output or folder.path / "best.yaml"
    from omegaconf import OmegaConf

    OmegaConf.save(OmegaConf.from_dotlist([*folder.overrides, *line]), target)
    print(f"written: {target} (python main.py train --config {target})", file=sys.stderr)
    return 0


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)
