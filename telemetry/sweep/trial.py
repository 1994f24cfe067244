"""One trial: a child process whose run log is followed for the metric as it is published.

The trial's process writes an ordinary run folder under the trial's folder; the
agent tails its ``events.jsonl`` with the log reader, hands each new finite
value of the metric to ``on_value`` (the engine's intermediate values and the
hyperband rule), and stops the process when told to: our trainer by
``STOP_SIGNAL`` (its log ends ``stopped``), another program by SIGTERM. The
child dies with its agent (``orphan_guard.py``), so a killed agent leaves no
trial running unseen.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import Process

from telemetry.events import Evaluation, Metrics, RunFinished
from telemetry.reader import LOG_NAME, LogTail

POLL = 0.05
"""Seconds between looks at the trial's log."""
GUARD = Path(__file__).with_name("orphan_guard.py")
"""Starts each trial so that it ends when its agent dies."""
STOP_GRACE = 30.0
"""Seconds a stopped or interrupted trial has to end before it is killed."""


@dataclass(frozen=True, slots=True)
class TrialPlan:
    """How to start one trial and where it writes."""

    argv: Sequence[str]
    folder: Path
    """The trial's folder: its output, its parameters file and its run folder."""
    env: dict[str, str]
    stop_signal: signal.Signals
    """How to end it early on purpose: ``STOP_SIGNAL`` for our trainer, SIGTERM otherwise."""
    metric: str | None
    cwd: Path
    """Where it runs: the agent's folder for a program (its path is relative to it)."""


@dataclass(slots=True)
class TrialResult:
    """How a trial ended and what it logged of the metric."""

    outcome: str = "failed"
    """finished, stopped, failed or interrupted."""
    values: list[float] = field(default_factory=list)
    run_dir: Path | None = None
    exit_code: int | None = None
    error: str | None = None
    first_event: float | None = None
    """Wall time of the trial's first event (the runner's per-trial overhead ends there)."""

    def best(self, maximize: bool) -> float | None:
        """The best value of the metric over the run (W&B's bayes objective)."""
        if not self.values:
            return None
        return max(self.values) if maximize else min(self.values)


OnValue = Callable[[int, float], Awaitable[bool]]
"""Called with (iteration, value) for each new finite value; True stops the trial."""


async def run_trial(plan: TrialPlan, on_value: OnValue, result: TrialResult) -> TrialResult:
    """Run the trial to its end, filling ``result``; cancelling this interrupts the trial
    (and waits for it to end; ``result`` then holds what it logged)."""
    plan.folder.mkdir(parents=True, exist_ok=True)
    with (plan.folder / "output.log").open("ab") as output:
        process = await anyio.open_process(
            [sys.executable, str(GUARD), *plan.argv],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **plan.env},
            cwd=plan.cwd,
            start_new_session=True,  # Ctrl-C reaches it from its agent, once
        )
    follower = _Follower(plan, result)
    stopped = False
    try:
        while True:
            for iteration, value in follower.poll():
                if not stopped and await on_value(iteration, value):
                    stopped = True
                    _signal(process, plan.stop_signal)
            if process.returncode is not None:
                break
            with anyio.move_on_after(POLL):
                await process.wait()
        for iteration, value in follower.poll():  # what it wrote last
            await on_value(iteration, value)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _end(process, signal.SIGINT)
            follower.poll()
            follower.close()
        result.outcome = "interrupted"
        raise
    follower.close()
    result.exit_code = process.returncode
    result.outcome = _outcome(result, follower.status, stopped, plan.metric)
    return result


def _outcome(result: TrialResult, status: str | None, stopped: bool, metric: str | None) -> str:
    # The run's own last word wins: a trial told to stop may have finished first. A program
    # that writes no run_finished and was told to stop was stopped (by SIGTERM).
    if status == "stopped" or (stopped and status is None):
        return "stopped"
    if result.exit_code != 0 or status == "failed":
        result.error = result.error or f"exit code {result.exit_code}, see output.log"
        return "failed"
    if metric is not None and not result.values:
        result.error = f"the run never logged the metric {metric!r}"
        return "failed"
    return "finished"


class _Follower:
    """Tails the trial's log once it exists."""

    def __init__(self, plan: TrialPlan, result: TrialResult) -> None:
        self._plan = plan
        self._result = result
        self._tail: LogTail | None = None
        self.status: str | None = None

    def poll(self) -> list[tuple[int, float]]:
        if self._tail is None:
            path = _find_log(self._plan.folder)
            if path is None:
                return []
            self._result.run_dir = path.parent
            self._tail = LogTail(path, 0)
        found = []
        metric = self._plan.metric
        for event in self._tail.read():
            if self._result.first_event is None:
                self._result.first_event = event.time  # as published, not as read here
            if isinstance(event, RunFinished):
                self.status = event.status
                if event.error:
                    self._result.error = event.error
            elif metric is not None and isinstance(event, Metrics | Evaluation):
                value = event.values.get(metric)
                if isinstance(value, int | float) and math.isfinite(value):
                    found.append((len(self._result.values), float(value)))
                    self._result.values.append(float(value))
        return found

    def close(self) -> None:
        if self._tail is not None:
            self._tail.close()


def _find_log(folder: Path) -> Path | None:
    if (folder / LOG_NAME).is_file():
        return folder / LOG_NAME
    return next(iter(sorted(folder.glob(f"*/{LOG_NAME}"))), None)


def _signal(process: Process, signum: signal.Signals) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)


async def _end(process: Process, signum: signal.Signals) -> None:
    _signal(process, signum)
    with anyio.move_on_after(STOP_GRACE):
        await process.wait()
        return
    process.kill()
    await process.wait()
