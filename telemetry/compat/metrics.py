"""``define_metric``: which step axis a metric is logged on and what its summary keeps."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from telemetry.errors import ConfigError

SUMMARY_OPS = ("min", "max", "mean", "last", "first", "best", "none")
"""What ``summary=`` may list (comma-separated); ``best`` follows ``goal``."""
GOALS = ("minimize", "maximize")


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One ``define_metric`` call: the name (or glob), its step metric and summary."""

    name: str
    step_metric: str | None = None
    summary: tuple[str, ...] | None = None
    goal: str | None = None
    hidden: bool = False
    step_sync: bool = True

    @property
    def is_glob(self) -> bool:
        return any(c in self.name for c in "*?[")


@dataclass(frozen=True, slots=True)
class Plan:
    """What logging one key means: its axis (None: the run's step) and summary ops."""

    axis: str | None
    ops: tuple[str, ...] | None
    goal: str | None


PLAIN = Plan(None, None, None)


def make_def(
    name: str,
    step_metric: str | None,
    summary: str | None,
    goal: str | None,
    hidden: bool | None,
    step_sync: bool | None,
) -> MetricDef:
    """A checked ``MetricDef``; ``ConfigError`` names the bad argument and what is allowed."""
    if not isinstance(name, str) or not name:
        raise ConfigError("define_metric: name must be a non-empty string")
    if step_metric is not None and (not isinstance(step_metric, str) or not step_metric):
        raise ConfigError("define_metric: step_metric must be a metric name")
    ops = None
    if summary is not None:
        ops = tuple(op.strip().lower() for op in summary.split(","))
        bad = [op for op in ops if op not in SUMMARY_OPS]
        if bad:
            raise ConfigError(
                f"define_metric({name!r}): summary {bad[0]!r} is not one of "
                f"{', '.join(SUMMARY_OPS)}"
            )
    if goal is not None:
        goal = {"min": "minimize", "max": "maximize"}.get(goal, goal)
        if goal not in GOALS:
            raise ConfigError(f"define_metric({name!r}): goal must be minimize or maximize")
    if ops and "best" in ops and goal is None:
        raise ConfigError(f"define_metric({name!r}): summary 'best' needs goal=minimize|maximize")
    return MetricDef(name, step_metric, ops, goal, bool(hidden), step_sync is not False)


class MetricDefs:
    """Every ``define_metric`` so far, and each key's ``Plan``, cached per key.

    An exact name beats a glob; among globs (and among repeated definitions of a
    name) the latest wins, its unset fields taken from earlier ones.
    """

    __slots__ = ("_exact", "_globs", "_plans", "step_metrics")

    def __init__(self) -> None:
        self._exact: dict[str, MetricDef] = {}
        self._globs: list[MetricDef] = []
        self._plans: dict[str, Plan] = {}
        self.step_metrics: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self._exact or self._globs)

    def add(self, metric: MetricDef) -> None:
        if metric.is_glob:
            self._globs.append(metric)
        else:
            old = self._exact.get(metric.name)
            if old is not None:
                metric = MetricDef(
                    metric.name,
                    metric.step_metric or old.step_metric,
                    metric.summary if metric.summary is not None else old.summary,
                    metric.goal or old.goal,
                    metric.hidden or old.hidden,
                    metric.step_sync,
                )
            self._exact[metric.name] = metric
        if metric.step_metric:
            self.step_metrics.add(metric.step_metric)
        self._plans.clear()

    def plan(self, key: str) -> Plan:
        """How ``key`` is logged; computed once per key until the next ``define_metric``."""
        plan = self._plans.get(key)
        if plan is None:
            metric = self._exact.get(key)
            if metric is None:
                matches = [m for m in self._globs if fnmatch.fnmatchcase(key, m.name)]
                metric = matches[-1] if matches else None
            if metric is None:
                plan = PLAIN
            else:
                axis = metric.step_metric if metric.step_metric != key else None
                plan = Plan(axis, metric.summary, metric.goal)
            self._plans[key] = plan
        return plan
