"""The pipeline's health and its close report: pure functions of the intake's and lanes' counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from telemetry.intake import Intake
from telemetry.lane import Lane
from telemetry.sink import DurableLog, Relay, RelayedCounts, Sink

logger = structlog.get_logger("telemetry")


@dataclass(frozen=True, slots=True)
class SinkReport:
    """One sink's counts at close, and how to deliver what it missed."""

    name: str
    delivered: int
    failed: int
    pending: int
    isolated: bool
    error: str | None
    replay: str | None = None
    """The command that delivers what this sink missed, from the durable log."""


@dataclass(frozen=True, slots=True)
class CloseReport:
    """How the close went: published count, each sink's counts, and whether it met its deadline."""

    published: int
    sinks: tuple[SinkReport, ...]
    deadline_met: bool

    @property
    def undelivered(self) -> dict[str, int]:
        """Events each sink did not get (failed or still pending), for sinks that missed any."""
        return {s.name: s.failed + s.pending for s in self.sinks if s.failed + s.pending}


class Heartbeat:
    """When the bus publishes its health: every ``interval`` seconds, numbered by ``step``."""

    __slots__ = ("interval", "step")

    def __init__(self, interval: float | None) -> None:
        self.interval = interval
        self.step = 0

    def beat(self) -> int:
        """The next health event's step."""
        self.step += 1
        return self.step


def health_values(published: int, intake: Intake, lanes: Sequence[Lane]) -> dict[str, int | float]:
    """The pipeline's counters, keyed as published under ``telemetry/``."""
    values: dict[str, int | float] = {
        "telemetry/published": published,
        "telemetry/intake": intake.size,
        "telemetry/intake_waits": intake.waits,
        "telemetry/intake_wait_s": round(intake.wait_seconds, 6),
        "telemetry/intake_overruns": intake.overruns,
    }
    for c in sink_counts(lanes):
        prefix = f"telemetry/{c.name}"
        values[f"{prefix}/delivered"] = c.delivered
        values[f"{prefix}/failed"] = c.failed
        values[f"{prefix}/queued"] = c.queued
        values[f"{prefix}/spilled"] = c.spilled
        values[f"{prefix}/pending"] = published - c.delivered - c.failed
    return values


def sink_counts(lanes: Sequence[Lane]) -> list[RelayedCounts]:
    """Each sink's counts: a lane's own, or, for a relay (a sidecar), those of its sinks."""
    out: list[RelayedCounts] = []
    for lane in lanes:
        if isinstance(lane.sink, Relay):
            out.extend(lane.sink.relayed())
            continue
        c = lane.counts
        out.append(
            RelayedCounts(
                name=lane.name,
                delivered=c.delivered,
                failed=c.failed,
                queued=c.queued,
                spilled=c.spilled,
                isolated=lane.isolated,
                error=lane.error,
            )
        )
    return out


def close_report(published: int, lanes: Sequence[Lane], deadline_met: bool) -> CloseReport:
    """Each lane's counts; a lane that missed events gets the command that replays them."""
    log_dir = next((_folder(lane.sink) for lane in lanes if lane.writes_log), None)
    log_name = next((lane.name for lane in lanes if lane.writes_log), None)
    sinks = []
    for c in sink_counts(lanes):
        pending = published - c.delivered - c.failed
        replay = None
        if log_dir is not None and c.failed + pending and c.name != log_name:
            replay = f"python main.py replay {log_dir} sinks=[{c.name}]"
        sinks.append(
            SinkReport(
                name=c.name,
                delivered=c.delivered,
                failed=c.failed,
                pending=pending,
                isolated=c.isolated,
                error=c.error,
                replay=replay,
            )
        )
    # A relay's sinks (a sidecar's) may miss the deadline while its own lane closes on time.
    late = any(isinstance(lane.sink, Relay) and lane.sink.deadline_missed for lane in lanes)
    return CloseReport(
        published=published, sinks=tuple(sinks), deadline_met=deadline_met and not late
    )


def _folder(log: Sink) -> Path:
    assert isinstance(log, DurableLog)
    return log.path.parent


def say_what_is_missing(report: CloseReport) -> None:
    """One warning per sink that did not get everything, with how to replay it."""
    for sink in report.sinks:
        missing = sink.failed + sink.pending
        if missing:
            logger.warning(
                "sink_behind",
                sink=sink.name,
                undelivered=missing,
                replay=sink.replay or "no durable log to replay from",
            )
