"""A moved sink's durable cursor: how far it has got in the log, written after every batch."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from telemetry.events import SCALAR_EVENTS, Event, RunFinished, RunStarted


@dataclass(slots=True)
class Cursor:
    """Where one sink is in the log, and what it was counted for the bus of ``base``.

    ``seq``: every event up to it was settled (delivered, or counted failed).
    ``open``: for a sink that keeps each axis's last step open until the next
    step arrives (wandb's rows), that step and its first ``seq`` per axis: a
    restarted sidecar hands those steps' events again, and only those.
    ``started``: the ``seq`` of the run's last ``run_started``: a restarted sidecar hands
    it first, as a resumed run's sinks get one (wandb finds its run's project by it).
    ``delivered``/``failed`` count events after ``base`` (the bus's ``first_seq``).
    """

    seq: int = 0
    delivered: int = 0
    failed: int = 0
    base: int = 0
    started: int = 0
    open: dict[str, tuple[int, int]] = field(default_factory=dict)

    def follow(self, piece: Sequence[Event], *, steps: bool) -> None:
        """Note the run's ``run_started`` and, with ``steps``, the step each axis is on after
        ``piece`` (for a sink that holds it open)."""
        opened = self.open
        for event in piece:
            if type(event) is RunStarted:
                self.started = event.seq
            if not steps:
                continue
            if type(event) is RunFinished:
                opened.clear()  # the run's end closes every step a sink held open
            elif isinstance(event, SCALAR_EVENTS):
                now = opened.get(event.axis)
                if now is None or now[0] != event.step:
                    opened[event.axis] = (event.step, event.seq)

    @property
    def resend_from(self) -> int:
        """The first ``seq`` a restarted sidecar hands this sink (open steps first)."""
        firsts = [first for _, first in self.open.values() if first <= self.seq]
        if 0 < self.started <= self.seq:
            firsts.append(self.started)
        return min(firsts, default=self.seq + 1)

    def resent(self, event: Event) -> bool:
        """``event`` (at or before ``seq``) is handed again: the run's ``run_started``, or an
        event of a step that was held open."""
        if event.seq == self.started:
            return True
        if not isinstance(event, SCALAR_EVENTS):
            return False
        held = self.open.get(event.axis)
        return held is not None and held[0] == event.step and held[1] <= event.seq


class CursorFile:
    """One sink's cursor on disk: a small JSON file replaced atomically (write, rename)."""

    __slots__ = ("_tmp", "path")

    def __init__(self, folder: Path, sink: str) -> None:
        self.path = folder / f"{sink}.json"
        self._tmp = folder / f".{sink}.json.tmp"

    def load(self) -> Cursor | None:
        """The saved cursor; None if there is none or it cannot be read."""
        try:
            data = orjson.loads(self.path.read_bytes())
            opened = {str(k): (int(v[0]), int(v[1])) for k, v in data.get("open", {}).items()}
            return Cursor(
                seq=int(data["seq"]),
                delivered=int(data.get("delivered", 0)),
                failed=int(data.get("failed", 0)),
                base=int(data.get("base", 0)),
                started=int(data.get("started", 0)),
                open=opened,
            )
        except (OSError, ValueError, TypeError, KeyError, IndexError):
            return None

    def save(self, cursor: Cursor) -> None:
        """Write ``cursor``; a reader (or a restart after ``kill -9``) sees the old or the new."""
        data = orjson.dumps(
            {
                "seq": cursor.seq,
                "delivered": cursor.delivered,
                "failed": cursor.failed,
                "base": cursor.base,
                "started": cursor.started,
                "open": {k: list(v) for k, v in cursor.open.items()},
            }
        )
        with contextlib.suppress(OSError):  # a cursor not saved only means more is sent again
            self._tmp.write_bytes(data)
            os.replace(self._tmp, self.path)


def load_cursors(folder: Path, sinks: Sequence[str]) -> Mapping[str, Cursor | None]:
    """Each sink's saved cursor in ``folder``, or None."""
    return {name: CursorFile(folder, name).load() for name in sinks}
