"""The typed events that flow through the bus, one frozen dataclass per kind.

Every event carries (``Envelope``) ``run_id``, a per-run ``seq`` (strictly increasing, assigned
by the bus) and a wall-clock ``time`` in seconds since the epoch. The ``type``
field is the discriminator written to the JSON Lines log.

The classes are not slotted: orjson encodes a dataclass from its instance ``__dict__``
in about half the instructions it takes to read a slotted one field by field, and
encoding is most of what the durable log costs the training process per event
(``benchmarks/instructions.py``). So ``type`` comes from a ``default_factory``: a plain
default would live on the class, not in the instance's ``__dict__``, and orjson would
leave it out.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from typing import Any, Literal, get_args

from telemetry.values import Scalar

Param = str | int | float | bool | None
"""A hyperparameter, artifact metadata or system information value."""

RunStatus = Literal["finished", "failed", "interrupted", "stopped"]
"""How a run ended; ``stopped``: ended early on purpose (a sweep's hyperband), cleanly."""


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """What every event carries; each event class narrows ``type`` to its own discriminator.

    ``type`` comes first so the JSON Lines objects and the reprs lead with it:
    a subclass redefining a field keeps the field's place.
    """

    type: str
    run_id: str
    seq: int
    time: float


@dataclass(frozen=True, kw_only=True)
class RunStarted(Envelope):
    """A run began (or resumed): who it is and the whole config it runs with."""

    type: Literal["run_started"] = field(default_factory=lambda: "run_started", init=False)
    name: str
    project: str
    tags: tuple[str, ...] = ()
    group: str | None = None
    notes: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False


@dataclass(frozen=True, kw_only=True)
class Hyperparameters(Envelope):
    """The trainer's hyperparameters, flat ``name -> value``."""

    type: Literal["hyperparameters"] = field(default_factory=lambda: "hyperparameters", init=False)
    values: dict[str, Param]


@dataclass(frozen=True, kw_only=True)
class SystemInfo(Envelope):
    """Versions and resources of the machine the run trains on."""

    type: Literal["system_info"] = field(default_factory=lambda: "system_info", init=False)
    values: dict[str, Param]


@dataclass(frozen=True, kw_only=True)
class Metrics(Envelope):
    """Scalars at one step of one step axis (``generation``, ``episode``, ``epoch``...)."""

    type: Literal["metrics"] = field(default_factory=lambda: "metrics", init=False)
    step: int
    axis: str
    values: dict[str, Scalar]


@dataclass(frozen=True, kw_only=True)
class Evaluation(Envelope):
    """Results of evaluating the agent (validation period, calibration set, experiment)."""

    type: Literal["evaluation"] = field(default_factory=lambda: "evaluation", init=False)
    step: int
    axis: str
    name: str
    values: dict[str, Scalar]


@dataclass(frozen=True, kw_only=True)
class Aggregate(Envelope):
    """Window statistics of chosen metrics: keys are ``<metric>/<stat>``.

    ``stat`` is one of mean, std, min, max, count, trend (least-squares slope
    per step over the window). Computed once by the bus so every sink agrees.
    """

    type: Literal["aggregate"] = field(default_factory=lambda: "aggregate", init=False)
    step: int
    axis: str
    window: int
    first_step: int
    values: dict[str, Scalar]


@dataclass(frozen=True, kw_only=True)
class Health(Envelope):
    """The pipeline's own counters, keys under ``telemetry/``."""

    type: Literal["health"] = field(default_factory=lambda: "health", init=False)
    step: int
    axis: str = "health"
    values: dict[str, Scalar]


@dataclass(frozen=True, kw_only=True)
class ArtifactSaved(Envelope):
    """A file the run wrote that sinks may upload (checkpoint, model, table)."""

    type: Literal["artifact"] = field(default_factory=lambda: "artifact", init=False)
    name: str
    path: str
    kind: str
    step: int
    axis: str
    metadata: dict[str, Param] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RunFinished(Envelope):
    """The run ended: finished, failed, interrupted or stopped."""

    type: Literal["run_finished"] = field(default_factory=lambda: "run_finished", init=False)
    status: RunStatus
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class TradeClosed(Envelope):
    """One closed trade of an evaluated trading agent (stock, prices, steps, P&L)."""

    type: Literal["trade"] = field(default_factory=lambda: "trade", init=False)
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


AlertLevel = Literal["INFO", "WARN", "ERROR"]
"""How urgent an alert is (wandb's ``AlertLevel`` names)."""


@dataclass(frozen=True, kw_only=True)
class Alert(Envelope):
    """Something to look at now: an alert rule fired on a metric, or the code called ``alert``."""

    type: Literal["alert"] = field(default_factory=lambda: "alert", init=False)
    title: str
    text: str = ""
    level: AlertLevel = "WARN"
    key: str | None = None
    """The metric key that fired it, for a rule."""
    step: int | None = None
    axis: str | None = None


@dataclass(frozen=True, kw_only=True)
class LogRecord(Envelope):
    """A log record of the user's own code (structlog or ``logging``), with its fields."""

    type: Literal["log_record"] = field(default_factory=lambda: "log_record", init=False)
    level: str
    """``debug``, ``info``, ``warning``, ``error`` or ``critical``."""
    message: str
    logger: str = ""
    fields: dict[str, Param] = field(default_factory=dict)


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
    | Alert
    | LogRecord
)
"""Any event: the one list of event classes, which the tuples and the table below read."""

ScalarEvent = Metrics | Evaluation | Aggregate | Health
"""Events that carry numeric ``values`` at a ``step`` of an ``axis``."""

EVENT_CLASSES: tuple[type[Event], ...] = get_args(Event)
"""Every event class, in the order of ``Event``."""

SCALAR_EVENTS: tuple[type[ScalarEvent], ...] = get_args(ScalarEvent)
"""The classes of ``ScalarEvent``, for ``isinstance``."""


def _discriminator(cls: type[Event]) -> str:
    make = cls.__dataclass_fields__["type"].default_factory
    if make is MISSING:  # a plain default would be left out of every encoded line
        raise TypeError(f"{cls.__name__}.type needs a default_factory, not a default")
    kind: str = make()
    return kind


EVENT_TYPES: dict[str, type[Event]] = {_discriminator(cls): cls for cls in EVENT_CLASSES}
"""The ``type`` discriminator of each event class."""
