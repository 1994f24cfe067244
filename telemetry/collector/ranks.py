"""One run from many ranks: how an event of rank ``r`` appears in the run's central log.

Rank 0 is the run as a single process would log it: its events keep their keys.
Another rank's scalars and system information go under ``rank<r>/`` (its
``losses/value`` becomes ``rank1/losses/value``), as W&B's shared mode labels each
process's series; the run's config, hyperparameters and end come from rank 0 only,
so another rank's ``run_started``, ``hyperparameters`` and ``run_finished`` are
consumed without a line of their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from telemetry.events import (
    SCALAR_EVENTS,
    Alert,
    ArtifactSaved,
    Event,
    Hyperparameters,
    LogRecord,
    RunFinished,
    RunStarted,
    SystemInfo,
)

V = TypeVar("V")
RANK_ZERO_ONLY: tuple[type[Event], ...] = (RunStarted, Hyperparameters, RunFinished)
"""The run's own events: taken from rank 0, consumed without a line from any other rank."""


def rank_prefix(rank: int) -> str:
    """``rank<r>/``: where rank ``r``'s keys go (nothing for rank 0)."""
    return f"rank{rank}/" if rank else ""


def _prefixed(values: Mapping[str, V], prefix: str) -> dict[str, V]:
    return {f"{prefix}{key}": value for key, value in values.items()}


def central_event(event: Event, rank: int, seq: int) -> Event | None:
    """``event`` of ``rank`` as the central log's line ``seq``, or None if it has no line."""
    if rank == 0:
        return event if event.seq == seq else dataclasses.replace(event, seq=seq)
    if isinstance(event, RANK_ZERO_ONLY):
        return None
    prefix = rank_prefix(rank)
    changes: dict[str, Any] = {"seq": seq}
    if isinstance(event, SCALAR_EVENTS) or type(event) is SystemInfo:
        changes["values"] = _prefixed(event.values, prefix)
    elif isinstance(event, Alert):
        changes["title"] = f"[rank {rank}] {event.title}"
        if event.key:
            changes["key"] = prefix + event.key
    elif isinstance(event, ArtifactSaved):
        changes["name"] = f"rank{rank}-{event.name}"
        changes["metadata"] = {**event.metadata, "rank": rank}
    elif isinstance(event, LogRecord):
        changes["fields"] = {**event.fields, "rank": rank}
    return dataclasses.replace(event, **changes)
