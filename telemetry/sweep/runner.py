"""Agents: each takes a trial from the engine, runs it, follows its metric, and ends it.

Several agents run at once in one process (``sweep --agents K``), each with its
own handle on the study; another process or host joins with ``main.py agent``.
Optuna's calls block (file locks, a database), so they run in worker threads.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog

from telemetry.sweep.engine import HEARTBEAT, Claim, Engine
from telemetry.sweep.hyperband import runs_to_stop
from telemetry.sweep.spec import SweepSpec
from telemetry.sweep.trial import TrialPlan, TrialResult, run_trial

logger = structlog.get_logger("rltelemetry")

Report = Callable[[dict[str, Any]], None]
"""Receives one record per trial start and end (the live table, JSON lines)."""


@dataclass(slots=True)
class Session:
    """What the agents of one process share: how many trials they may still start."""

    count: int | None = None
    """Trials this process runs at most (``--count``); None: until the sweep ends."""
    started: int = 0
    ended: int = 0
    stopping: bool = False
    """Set when the sweep has no more work: the other agents finish their trial and stop."""

    def take(self) -> bool:
        """Reserve one trial start; False once ``count`` are taken or the sweep is over."""
        if self.stopping or (self.count is not None and self.started >= self.count):
            return False
        self.started += 1
        return True


@dataclass(slots=True)
class Agent:
    """One agent's loop over trials."""

    engine_factory: Callable[[], Engine]
    plan_for: Callable[[Claim], TrialPlan]
    session: Session
    report: Report
    results: Path
    """The sweep's results file: one JSON line per ended trial."""
    _last_end: float | None = field(default=None, init=False)

    async def run(self) -> None:
        """Run trials until the session or the sweep says stop."""
        engine = await anyio.to_thread.run_sync(self.engine_factory)
        try:
            while self.session.take():
                with anyio.CancelScope(shield=True):  # a claimed trial is always ended
                    claim = await anyio.to_thread.run_sync(engine.claim)
                if claim is None:
                    self.session.started -= 1
                    self.session.stopping = True
                    break
                await self._one(engine, claim)
                self.session.ended += 1
        finally:
            engine.close()

    async def _one(self, engine: Engine, claim: Claim) -> None:
        spec = engine.spec
        plan = self.plan_for(claim)
        started = time.time()
        self.report({"event": "trial_started", "trial": claim.number, "params": claim.params})
        on_value = _OnValue(engine, claim, spec)
        result = TrialResult()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_heartbeat, engine, claim)
                await run_trial(plan, on_value, result)
                group.cancel_scope.cancel()
        except BaseException:
            result.outcome = "interrupted"
            await self._end(engine, claim, plan, result, started)
            raise
        await self._end(engine, claim, plan, result, started)

    async def _end(
        self, engine: Engine, claim: Claim, plan: TrialPlan, result: TrialResult, started: float
    ) -> None:
        maximize = engine.spec.metric is not None and engine.spec.metric.goal == "maximize"
        best = result.best(maximize)
        last = result.values[-1] if result.values else None
        ended = time.time()
        overhead = None
        if self._last_end is not None and result.first_event is not None:
            overhead = result.first_event - self._last_end
        self._last_end = ended
        record = {
            "trial": claim.number,
            "outcome": result.outcome,
            "params": claim.params,
            "best": best,
            "last": last,
            "values": len(result.values),
            "duration": round(ended - started, 3),
            "overhead": None if overhead is None else round(overhead, 3),
            "run_dir": str(result.run_dir) if result.run_dir else None,
            "folder": str(plan.folder),
            "exit_code": result.exit_code,
            "error": result.error,
        }
        attrs = {k: record[k] for k in ("last", "duration", "run_dir", "error", "overhead")}
        with anyio.CancelScope(shield=True):  # an ended trial is always told to the engine
            await anyio.to_thread.run_sync(engine.finish, claim, result.outcome, best, attrs)
        with self.results.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        self.report({"event": "trial_ended", **record})


class _OnValue:
    """Each new value of the trial's metric: stored in the engine, then hyperband's verdict."""

    def __init__(self, engine: Engine, claim: Claim, spec: SweepSpec) -> None:
        self._engine, self._claim, self._spec = engine, claim, spec

    async def __call__(self, iteration: int, value: float) -> bool:
        engine, claim = self._engine, self._claim
        await anyio.to_thread.run_sync(engine.report, claim.trial_id, iteration, value)
        hyperband = self._spec.early_terminate
        if hyperband is None or self._spec.metric is None or not math.isfinite(value):
            return False
        histories, running = await anyio.to_thread.run_sync(_snapshot, engine)
        stop = runs_to_stop(
            histories,
            running,
            bands=hyperband.bands,
            eta=hyperband.eta,
            strict=hyperband.strict,
            maximize=self._spec.metric.goal == "maximize",
        )
        if str(claim.number) in stop:
            logger.info("trial_stopped_early", trial=claim.number, iteration=iteration + 1)
            return True
        return False


def _snapshot(engine: Engine) -> tuple[dict[str, list[float]], list[str]]:
    return engine.histories(), engine.running()


async def _heartbeat(engine: Engine, claim: Claim) -> None:
    while True:
        await anyio.sleep(HEARTBEAT)
        await anyio.to_thread.run_sync(engine.heartbeat, claim.trial_id)
