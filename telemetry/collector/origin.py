"""Where each line of a central log came from, recorded in the log itself.

A run published by rank 0 alone is copied as it is: each line keeps its ``seq``,
which is its origin. Once another rank appears, lines are restamped with the
central log's own ``seq``, and each written segment of one rank starts with a
marker: a ``log_record`` event of logger ``rltelemetry.collector`` whose fields
say which rank the following lines are from (``rank``), their origin ``seq``s
(``seqs``, as ranges ``"5-9,12"``), and the last origin ``seq`` the segment
consumed (``through``, including events that have no line of their own, and
``finished`` when one of them was that rank's ``run_finished``). The marker and its
lines are one write, so what the log holds and the cursor it implies are one
thing: a restarted collector reads back exactly which (rank, seq) it holds, even
after a ``kill -9`` tore the write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from telemetry.events import Event, LogRecord

MARKER_LOGGER = "rltelemetry.collector"
MARKER_MESSAGE = "collected"


@dataclass(slots=True)
class Segment:
    """One marker: the rank, the origin seqs of the lines after it, what it consumed."""

    rank: int
    seqs: list[int]
    through: int
    finished: bool = False
    seen: int = field(default=0)
    """Lines of the segment read so far."""


def is_marker(event: Event) -> bool:
    """Whether ``event`` is a collector's marker line (not an event of the run)."""
    return type(event) is LogRecord and event.logger == MARKER_LOGGER


def marker(run_id: str, seq: int, time: float, segment: Segment) -> LogRecord:
    """The marker line for ``segment`` at central ``seq``."""
    fields: dict[str, str | int | bool] = {
        "rank": segment.rank,
        "seqs": ranges(segment.seqs),
        "through": segment.through,
        "finished": segment.finished,
    }
    return LogRecord(
        run_id=run_id,
        seq=seq,
        time=time,
        level="debug",
        message=MARKER_MESSAGE,
        logger=MARKER_LOGGER,
        fields=dict(fields),
    )


def segment_of(event: LogRecord) -> Segment:
    """The segment a marker line describes."""
    fields = event.fields
    return Segment(
        rank=int(fields.get("rank") or 0),
        seqs=parse_ranges(str(fields.get("seqs") or "")),
        through=int(fields.get("through") or 0),
        finished=bool(fields.get("finished")),
    )


def ranges(seqs: list[int]) -> str:
    """``[5, 6, 7, 9]`` as ``"5-7,9"``."""
    parts: list[str] = []
    start = prev = None
    for seq in seqs:
        if prev is not None and seq == prev + 1:
            prev = seq
            continue
        if start is not None:
            parts.append(f"{start}-{prev}" if prev != start else str(start))
        start = prev = seq
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else str(start))
    return ",".join(parts)


def parse_ranges(text: str) -> list[int]:
    """``"5-7,9"`` as ``[5, 6, 7, 9]``."""
    seqs: list[int] = []
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        seqs.extend(range(int(first), int(last or first) + 1))
    return seqs
