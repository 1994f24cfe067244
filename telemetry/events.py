"""The typed events that flow through the bus, one frozen slotted dataclass per kind.

Every event carries ``run_id``, a per-run ``seq`` (strictly increasing, assigned
by the bus) and a wall-clock ``time`` in seconds since the epoch. The ``type``
field is the discriminator written to the JSON Lines log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from telemetry.values import Scalar

Param = str | int | float | bool | None
"""A hyperparameter, artifact metadata or system information value."""

RunStatus = Literal["finished", "failed", "interrupted"]
RUN_STATUSES: tuple[RunStatus, ...] = ("finished", "failed", "interrupted")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted:
    """A run began (or resumed): who it is and the whole config it runs with."""

    type: Literal["run_started"] = field(default="run_started", init=False)
    run_id: str
    seq: int
    time: float
    name: str
    project: str
    tags: tuple[str, ...] = ()
    group: str | None = None
    notes: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Hyperparameters:
    """The trainer's hyperparameters, flat ``name -> value``."""

    type: Literal["hyperparameters"] = field(default="hyperparameters", init=False)
    run_id: str
    seq: int
    time: float
    values: dict[str, Param]


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemInfo:
    """Versions and resources of the machine the run trains on."""

    type: Literal["system_info"] = field(default="system_info", init=False)
    run_id: str
    seq: int
    time: float
    values: dict[str, Param]


@dataclass(frozen=True, slots=True, kw_only=True)
class Metrics:
    """Scalars at one step of one step axis (``generation``, ``episode``, ``epoch``...)."""

    type: Literal["metrics"] = field(default="metrics", init=False)
    run_id: str
    seq: int
    time: float
    step: int
    axis: str
    values: dict[str, Scalar]


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """Results of evaluating the agent (validation period, calibration set, experiment)."""

    type: Literal["evaluation"] = field(default="evaluation", init=False)
    run_id: str
    seq: int
    time: float
    step: int
    axis: str
    name: str
    values: dict[str, Scalar]


@dataclass(frozen=True, slots=True, kw_only=True)
class Aggregate:
    """Window statistics of chosen metrics: keys are ``<metric>/<stat>``.

    ``stat`` is one of mean, std, min, max, count, trend (least-squares slope
    per step over the window). Computed once by the bus so every sink agrees.
    """

    type: Literal["aggregate"] = field(default="aggregate", init=False)
    run_id: str
    seq: int
    time: float
    step: int
    axis: str
    window: int
    first_step: int
    values: dict[str, Scalar]


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """The pipeline's own counters, keys under ``telemetry/``."""

    type: Literal["health"] = field(default="health", init=False)
    run_id: str
    seq: int
    time: float
    step: int
    axis: str = "health"
    values: dict[str, Scalar]


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtifactSaved:
    """A file the run wrote that sinks may upload (checkpoint, model, table)."""

    type: Literal["artifact"] = field(default="artifact", init=False)
    run_id: str
    seq: int
    time: float
    name: str
    path: str
    kind: str
    step: int
    axis: str
    metadata: dict[str, Param] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished:
    """The run ended: finished, failed or interrupted."""

    type: Literal["run_finished"] = field(default="run_finished", init=False)
    run_id: str
    seq: int
    time: float
    status: RunStatus
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeClosed:
    """One closed trade of an evaluated trading agent (stock, prices, steps, P&L)."""

    type: Literal["trade"] = field(default="trade", init=False)
    run_id: str
    seq: int
    time: float
    step: int
    axis: str
    stock: int
    direction: int
    size: float
    entry_price: float
    exit_price: float
    entry_step: int
    exit_step: int
    holding_duration: int
    pnl: float
    time_of_day: float


Event = (
    RunStarted
    | Hyperparameters
    | SystemInfo
    | Metrics
    | Evaluation
    | Aggregate
    | Health
    | ArtifactSaved
    | RunFinished
    | TradeClosed
)
"""Any event."""

ScalarEvent = Metrics | Evaluation | Aggregate | Health
"""Events that carry numeric ``values`` at a ``step`` of an ``axis``."""

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__dataclass_fields__["type"].default: cls  # type: ignore[misc]
    for cls in (
        RunStarted,
        Hyperparameters,
        SystemInfo,
        Metrics,
        Evaluation,
        Aggregate,
        Health,
        ArtifactSaved,
        RunFinished,
        TradeClosed,
    )
}
"""The ``type`` discriminator of each event class."""

SCALAR_EVENTS = (Metrics, Evaluation, Aggregate, Health)
