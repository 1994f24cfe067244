"""How runs are laid out in Redis: one stream per run and rank, entry ids from ``seq``."""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "rltelemetry:run:"
KEY_PATTERN = f"{PREFIX}*:rank:*"
"""What the collector scans for (``SCAN MATCH``)."""
GROUP = "rltelemetry-collectors"
"""The consumer group every collector reads in: each entry goes to one of them."""
FIELD = b"event"
"""The entry field holding the event's JSON line (the log's own encoding)."""
WORLD = b"world"
"""The field of a ``run_finished`` entry giving the run's number of ranks, when known."""
_KEY = re.compile(r"^rltelemetry:run:(?P<run>[^:]+):rank:(?P<rank>\d+)$")


@dataclass(frozen=True, slots=True, order=True)
class StreamName:
    """One producer's stream: a run id and a rank."""

    run_id: str
    rank: int

    @property
    def key(self) -> str:
        return stream_key(self.run_id, self.rank)


def stream_key(run_id: str, rank: int) -> str:
    """``rltelemetry:run:<run_id>:rank:<rank>``."""
    return f"{PREFIX}{run_id}:rank:{rank}"


def parse_key(key: str | bytes) -> StreamName | None:
    """The run and rank of a stream key, or None for a key that is not one of ours."""
    text = key.decode() if isinstance(key, bytes) else key
    match = _KEY.match(text)
    if match is None:
        return None
    return StreamName(match["run"], int(match["rank"]))


def entry_id(seq: int) -> str:
    """The stream entry id of an event: ``<seq>-1``.

    Redis refuses an explicit id at or below the stream's top (and ``0-0``), so a
    retried add of an event it holds is refused instead of stored twice.
    """
    return f"{seq}-1"


def seq_of(entry: str | bytes) -> int:
    """The ``seq`` an entry id stands for."""
    text = entry.decode() if isinstance(entry, bytes) else entry
    return int(text.partition("-")[0])
