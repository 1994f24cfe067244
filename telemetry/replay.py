"""Replay: feed a recorded log through sinks by the same bus as live logging."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from telemetry.bus import Bus, CloseReport
from telemetry.reader import LogReader, Problem
from telemetry.sink import Delivery, Sink

logger = structlog.get_logger("telemetry")


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What a replay read, what it could not, and what each sink received."""

    events: int
    problems: tuple[Problem, ...]
    report: CloseReport

    @property
    def complete(self) -> bool:
        """Every line was read and every sink got every event."""
        return not self.problems and not self.report.undelivered


@dataclass(frozen=True, slots=True)
class LogIdentity:
    """The run a log belongs to, from its header."""

    path: Path
    run_id: str


def identify(path: str | os.PathLike[str]) -> LogIdentity:
    """Open a log just far enough to know its run; raises ``LogFormatError`` if it is not one."""
    reader = LogReader(path)
    for _ in reader:
        break
    return LogIdentity(path=reader.path, run_id=str(reader.header.get("run_id", "")))


async def replay_log(
    path: str | os.PathLike[str],
    sinks: Sequence[Sink | tuple[Sink, Delivery]],
    *,
    close_timeout: float = 60.0,
    on_event: Callable[[int], None] | None = None,
) -> ReplayOutcome:
    """Forward every readable event of the log at ``path`` to ``sinks``, in file order.

    Events keep their ``run_id``, ``seq`` and ``time``; sinks skip any ``seq``
    they already hold, so replaying into a partly delivered run adds only what
    is missing. Unreadable lines are reported by number and skipped.
    """
    reader = LogReader(path)
    identity = reader.path
    count = 0
    # The log being read is the only copy: lanes wait for room instead of spilling,
    # and the reader waits for the lanes, so memory stays bounded.
    async with Bus.replaying(sinks, close_timeout=close_timeout) as bus:
        for event in reader:
            bus.forward(event)
            count += 1
            if on_event is not None:
                on_event(count)
            if count % 4096 == 0 and not await bus.drain(timeout=close_timeout):
                logger.warning("replay_stalled", log=str(identity), after_events=count)
                break
    for problem in reader.problems:
        logger.warning(
            "replay_skipped_line", log=str(identity), line=problem.line, reason=problem.reason
        )
    assert bus.report is not None
    return ReplayOutcome(events=count, problems=tuple(reader.problems), report=bus.report)
