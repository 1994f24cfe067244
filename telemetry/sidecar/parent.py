"""The training process's side of a sidecar: a sink of the bus that runs the sidecar process.

Its lane is the bus's like any other: it opens the sidecar (starts the
process), is handed every event once the log holds it (write-ahead), and is
closed within the bus's close deadline. ``write`` only notes how far the log
has got; a sidecar that dies is started again by its watcher
(``telemetry.sidecar.process``) and resumes from its cursors; ``close``
tells the sidecar the last ``seq`` and the time left, waits for it to deliver
and exit, and stops it at the deadline. Health and the
close report read the moved sinks' counts from their cursors (``relayed``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import anyio
import orjson

from telemetry.events import Event
from telemetry.sidecar.cursor import CursorFile
from telemetry.sidecar.process import SidecarProcess
from telemetry.sidecar.spec import CURSORS, STATUS_NAME, SidecarSpec
from telemetry.sink import Delivery, RelayedCounts

MARGIN = 0.3
"""Seconds of the close deadline kept for the sidecar to save its cursors and exit."""


class Sidecar:
    """Runs ``python -m telemetry.sidecar RUN_DIR`` for the sinks moved out of this process."""

    name = "sidecar"

    def __init__(self, spec: SidecarSpec, *, restarts: int = 5) -> None:
        self.spec = spec
        self.delivery = Delivery(overflow="block", max_latency=0.5)
        """Its lane's settings: it takes every event at once, so it never holds the pump."""
        self.logged = spec.first_seq
        """The last ``seq`` the log holds, as this sink was told."""
        self.process = SidecarProcess(spec.run_dir, self.sinks, restarts=restarts)
        self._cursors = {s.name: CursorFile(spec.folder / CURSORS, s.name) for s in spec.sinks}

    @property
    def sinks(self) -> list[str]:
        """The names of the sinks it feeds."""
        return [s.name for s in self.spec.sinks]

    @property
    def pid(self) -> int | None:
        """The running sidecar's process id."""
        process = self.process.current
        return process.pid if process is not None else None

    @property
    def restarts(self) -> int:
        """Times the sidecar was started again after it died."""
        return self.process.restarts

    @property
    def deadline_missed(self) -> bool:
        """Some moved sink did not close within the bus's close deadline."""
        return self.process.late

    # -- the sink protocol --

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self.spec.save)
        self.process.start()

    async def write(self, batch: Sequence[Event]) -> None:
        if batch:
            self.logged = max(self.logged, batch[-1].seq)

    async def close(self, timeout: float) -> None:
        """Have the sidecar deliver through the log's last ``seq`` and exit, within ``timeout``
        (one started again meanwhile is told too); at the deadline it is stopped."""
        deadline = time.monotonic() + timeout
        told = None
        try:
            # Polled: a child's exit is no event on this loop.
            while not self.process.ended and time.monotonic() < deadline:
                current = self.process.current
                if current is not told:
                    left = max(0.0, deadline - time.monotonic() - MARGIN)
                    if self.process.tell(f"through {self.logged} {left:.3f}"):
                        told = current
                await anyio.sleep(0.02)
        finally:
            self.process.stop()

    # -- the counts --

    def relayed(self) -> Sequence[RelayedCounts]:
        """Each moved sink's counts: delivered and failed from its cursor, the rest from the
        sidecar's last status."""
        status = self._status()
        base = self.spec.first_seq
        out = []
        for name, file in self._cursors.items():
            cursor = file.load()
            fresh = cursor is not None and cursor.base == base
            now = status.get(name, {})
            out.append(
                RelayedCounts(
                    name=name,
                    delivered=cursor.delivered if fresh and cursor else 0,
                    failed=cursor.failed if fresh and cursor else 0,
                    queued=int(now.get("queued", 0)),
                    spilled=int(now.get("spilled", 0)),
                    isolated=bool(now.get("isolated", False)),
                    error=now.get("error"),
                )
            )
        return out

    def _status(self) -> dict[str, dict[str, Any]]:
        try:
            data = orjson.loads((self.spec.folder / STATUS_NAME).read_bytes())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
