"""The sweep's engine: an Optuna study behind W&B's semantics, shared by every agent.

Work is handed out as waiting trials: a grid enqueues every point in W&B's
order, a ``run_cap`` enqueues exactly that many trials, and an agent takes one
by a compare-and-set on the storage (WAITING -> RUNNING), so two agents never
run the same point and the cap holds whatever their number. Only a sweep
without either bound creates trials as agents ask. Each trial is sampled with
a sampler seeded by the sweep's seed and the trial's number: the same seed and
the same results give the same suggestions, and parallel agents get different
ones. ``bayes`` is Optuna's TPE with the constant liar (running trials count
as bad), not W&B's Gaussian process: it needs no extra dependency, handles
categorical and conditional spaces natively, and the liar keeps parallel
agents apart.
"""

from __future__ import annotations

import fcntl
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.storages.journal._file import BaseJournalFileLock  # the lock's base: not re-exported
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from telemetry.errors import ConfigError
from telemetry.sweep.space import grid_points, suggest
from telemetry.sweep.spec import SweepSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)

HEARTBEAT = 5
"""Seconds between a running trial's heartbeats in a database storage."""
GRACE = 30
"""Seconds without a heartbeat after which a database trial counts as failed."""
OUTCOME = "outcome"
"""The trial's user attribute holding how it ended (finished, stopped, failed, interrupted)."""


def open_storage(url: str) -> BaseStorage:
    """The storage at ``url``: a journal file path, or ``postgresql://...`` (also sqlite:///)."""
    if url.startswith(("postgresql://", "postgresql+psycopg://", "sqlite:///")):
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, heartbeat_interval=HEARTBEAT, grace_period=GRACE)
        except SQLAlchemyError as exc:  # refused, unknown host, bad password...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"storage: cannot open {url}: {first}") from None
    if "://" in url:
        raise ConfigError(f"storage must be a journal file path or postgresql://..., got {url!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the file backend is marked experimental
        return JournalStorage(JournalFileBackend(url, lock_obj=FlockLock(url + ".flock")))


class FlockLock(BaseJournalFileLock):
    """The journal file's lock as an ``flock``, which the kernel drops when its holder dies.

    Optuna's default lock is a symlink that a ``kill -9`` leaves behind: every other
    agent then waits out its 30 s grace period.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._held = threading.local()

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._held.fd = fd
        return True

    def release(self) -> None:
        fd = getattr(self._held, "fd", -1)
        if fd >= 0:
            self._held.fd = -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


@dataclass(frozen=True, slots=True)
class Claim:
    """A trial an agent took: its number and the parameters it runs with."""

    trial_id: int
    number: int
    params: dict[str, Any]
    """Values by full dotted name, constants included."""


def _sampler(spec: SweepSpec, seed: int, number: int) -> optuna.samplers.BaseSampler:
    trial_seed = (seed * 1_000_003 + number) % 2**32
    if spec.method == "bayes":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate TPE is marked experimental
            return optuna.samplers.TPESampler(
                seed=trial_seed, constant_liar=True, multivariate=True
            )
    return optuna.samplers.RandomSampler(seed=trial_seed)  # a grid's points are fixed


class Engine:
    """One agent's handle on the sweep's study."""

    def __init__(self, spec: SweepSpec, study: optuna.Study, seed: int) -> None:
        self.spec = spec
        self.study = study
        self.seed = seed
        self.agent = _agent_identity()

    @classmethod
    def create(
        cls, spec: SweepSpec, storage: BaseStorage, name: str, seed: int, attrs: dict[str, Any]
    ) -> Engine:
        """A new study holding the sweep's work list; ``attrs`` (its file, overrides) kept in it."""
        goal = spec.metric.goal if spec.metric else "minimize"
        study = optuna.create_study(study_name=name, storage=storage, direction=goal)
        for key, value in {**attrs, "seed": seed}.items():
            study.set_user_attr(key, value)
        engine = cls(spec, study, seed)
        if spec.method == "grid":
            points = grid_points(spec.params)
            for point in points[: spec.run_cap] if spec.run_cap else points:
                engine._enqueue(point)
        elif spec.run_cap:
            for _ in range(spec.run_cap):
                engine._enqueue({})
        return engine

    @classmethod
    def load(cls, spec: SweepSpec, storage: BaseStorage, name: str) -> Engine:
        """The existing study ``name``."""
        study = optuna.load_study(study_name=name, storage=storage)
        return cls(spec, study, int(study.user_attrs.get("seed", 0)))

    @property
    def bounded(self) -> bool:
        """All of the sweep's trials are in its work list (a grid, or a run cap)."""
        return self.spec.method == "grid" or self.spec.run_cap is not None

    def _enqueue(self, fixed: dict[str, Any]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # enqueue_trial is marked experimental
            self.study.enqueue_trial(fixed)

    # -- taking and ending trials --

    def claim(self) -> Claim | None:
        """The next trial for this agent, RUNNING now; None when the sweep has no more."""
        self.fail_dead_trials()
        if self.ended_reason() is not None:
            return None
        storage = self.study._storage  # the public Study API has no compare-and-set
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            try:
                if storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
                    return self._start(trial._trial_id, trial.number)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another agent took it and already ended it
        if self.bounded:
            return None
        created = storage.create_new_trial(self.study._study_id)
        return self._start(created, storage.get_trial_number_from_id(created))

    def _start(self, trial_id: int, number: int) -> Claim:
        self.study.sampler = _sampler(self.spec, self.seed, number)
        # What Study.ask does before sampling: drop the trials cached for the sampler, or it
        # sees the sweep as it was at this handle's first trial.
        self.study._thread_local.cached_all_trials = None
        trial = optuna.Trial(self.study, trial_id)
        params = suggest(trial, self.spec.params)
        trial.set_user_attr("values", params)  # Optuna's params are the engine's view
        trial.set_user_attr("agent", self.agent)
        trial.set_user_attr("started", time.time())
        self.heartbeat(trial_id)
        return Claim(trial_id=trial_id, number=number, params=params)

    def heartbeat(self, trial_id: int) -> None:
        """Say the trial's agent is alive (database storages fail trials that go quiet)."""
        storage = self.study._storage
        if isinstance(storage, RDBStorage):
            storage.record_heartbeat(trial_id)

    def report(self, trial_id: int, iteration: int, value: float) -> None:
        """The trial's ``iteration``-th finite value of the metric."""
        self.study._storage.set_trial_intermediate_value(trial_id, iteration, value)

    def finish(self, claim: Claim, outcome: str, best: float | None, attrs: dict[str, Any]) -> None:
        """End the trial: finished and stopped ones count their best value, failed ones the
        worst value so far (as W&B's bayes does); an interrupted one is put back to run again."""
        storage = self.study._storage
        for key, value in {**attrs, OUTCOME: outcome, "ended": time.time()}.items():
            storage.set_trial_user_attr(claim.trial_id, key, value)
        if outcome in ("finished", "stopped") and best is not None:
            state, values = TrialState.COMPLETE, [best]
        elif outcome == "failed" and (worst := self._worst()) is not None:
            state, values = TrialState.COMPLETE, [worst]
        else:
            state, values = TrialState.FAIL, None
        try:
            storage.set_trial_state_values(claim.trial_id, state, values)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # already failed by another agent as stale
        if outcome == "interrupted":
            self._put_back(claim.trial_id)

    def _worst(self) -> float | None:
        values = [t.value for t in self._completed() if t.value is not None]
        if not values:
            return None
        return min(values) if self._maximize else max(values)

    def _put_back(self, trial_id: int) -> None:
        if self.bounded:
            fixed = self.study._storage.get_trial(trial_id).system_attrs.get("fixed_params", {})
            self._enqueue(dict(fixed) if self.spec.method == "grid" else {})

    def fail_dead_trials(self) -> None:
        """Fail the running trials whose agent is gone (a ``kill -9``): on this host by its
        pid, elsewhere by the database's heartbeat."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # marked experimental
            optuna.storages.fail_stale_trials(self.study)
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            agent = dict(trial.user_attrs.get("agent") or {})
            here = agent.pop("pid", 0)
            mine = {key: value for key, value in self.agent.items() if key != "pid"}
            if agent == mine and not _alive(int(here)):
                try:
                    self.study._storage.set_trial_user_attr(trial._trial_id, OUTCOME, "failed")
                    self.study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue

    def reenqueue_failed_grid_points(self) -> int:
        """Put back each grid point that no trial ran to its end (``sweep resume``)."""
        if self.spec.method != "grid":
            return 0
        self.fail_dead_trials()  # a killed agent's trial is not running any more
        done: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for trial in self.study.get_trials(deepcopy=False):
            fixed = dict(trial.system_attrs.get("fixed_params", {}))
            ok = trial.state in (TrialState.WAITING, TrialState.RUNNING) or trial.user_attrs.get(
                OUTCOME
            ) in ("finished", "stopped")
            (done if ok else failed).append(fixed)
        again = [p for i, p in enumerate(failed) if p not in done and p not in failed[:i]]
        for point in again:
            self._enqueue(point)
        return len(again)

    # -- reading the sweep --

    @property
    def _maximize(self) -> bool:
        return self.spec.metric is not None and self.spec.metric.goal == "maximize"

    def _completed(self) -> list[FrozenTrial]:
        return [
            t
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get(OUTCOME) in ("finished", "stopped")
        ]

    def histories(self) -> dict[str, list[float]]:
        """Every trial's metric values in logging order, by trial number (as text)."""
        return {
            str(t.number): [t.intermediate_values[i] for i in sorted(t.intermediate_values)]
            for t in self.study.get_trials(deepcopy=False)
            if t.intermediate_values
        }

    def running(self) -> list[str]:
        """The numbers (as text) of the trials running now."""
        states = (TrialState.RUNNING,)
        return [str(t.number) for t in self.study.get_trials(deepcopy=False, states=states)]

    def ended_reason(self) -> str | None:
        """Why no new trial starts, when a trial has reached ``metric.target``."""
        metric = self.spec.metric
        if metric is None or metric.target is None:
            return None
        for trial in self.study.get_trials(deepcopy=False):
            values = [v for v in trial.intermediate_values.values() if math.isfinite(v)]
            reached = max(values, default=-math.inf) >= metric.target
            if not self._maximize:
                reached = min(values, default=math.inf) <= metric.target
            if values and reached:
                return f"trial {trial.number} reached the target {metric.target:g}"
        return None

    def close(self) -> None:
        """Let go of the storage's database connections (a journal file holds none)."""
        storage = self.study._storage
        if isinstance(storage, RDBStorage):
            storage.engine.dispose()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def trials(self) -> Sequence[FrozenTrial]:
        """Every trial of the sweep, in number order."""
        return self.study.get_trials(deepcopy=False)


def _agent_identity() -> dict[str, Any]:
    """Who runs a trial: a pid is only checked by an agent of the same host, boot and pid
    namespace (two containers or cloned machines can share a host name)."""
    identity: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    for key, path in (("boot", "/proc/sys/kernel/random/boot_id"), ("pid_ns", "/proc/self/ns/pid")):
        try:
            identity[key] = os.readlink(path) if key == "pid_ns" else Path(path).read_text().strip()
        except OSError:
            identity[key] = None
    return identity


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
