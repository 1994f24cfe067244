"""Reading a sweep back: its trials table, its best trial, parameter importance."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from telemetry.sweep.engine import OUTCOME, Engine


@dataclass(frozen=True, slots=True)
class TrialRow:
    """One line of the trials table."""

    number: int
    state: str
    params: dict[str, Any]
    best: float | None
    last: float | None
    duration: float | None
    run_dir: str | None


def rows(engine: Engine) -> list[TrialRow]:
    """Every trial, in number order, with our outcome rather than Optuna's state."""
    return [_row(t) for t in engine.trials()]


def _row(trial: FrozenTrial) -> TrialRow:
    state = str(trial.user_attrs.get(OUTCOME) or trial.state.name.lower())
    best = trial.value if state in ("finished", "stopped") else None
    return TrialRow(
        number=trial.number,
        state=state,
        params=dict(trial.user_attrs.get("values") or {}),
        best=best,
        last=trial.user_attrs.get("last"),
        duration=trial.user_attrs.get("duration"),
        run_dir=trial.user_attrs.get("run_dir"),
    )


def best_row(engine: Engine) -> TrialRow | None:
    """The trial with the best objective among those that finished or were stopped."""
    maximize = engine.spec.metric is not None and engine.spec.metric.goal == "maximize"
    done = [r for r in rows(engine) if r.best is not None and math.isfinite(r.best)]
    if not done:
        return None
    pick = max if maximize else min
    return pick(done, key=lambda r: r.best or 0.0)


def importance(engine: Engine) -> dict[str, float]:
    """fANOVA importance of each sampled parameter for the objective the engine saw
    (failed trials at the worst value); empty below two such trials."""
    study = engine.study
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2 or not any(t.params for t in complete):
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (RuntimeError, ValueError):  # too few distinct values to fit
            return {}
    return {name: float(value) for name, value in found.items()}
