"""A bus on its own event loop in a daemon thread: what a synchronous script publishes into.

Daemon, so that a loop that never returns (a sink stuck on the loop itself) cannot keep
the interpreter alive; ``close`` waits for it at most the close deadline and a grace.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import anyio

from telemetry.bus import Bus
from telemetry.errors import TelemetryError
from telemetry.events import RunStatus
from telemetry.records import LogRecordHandler
from telemetry.system import sample_system

GRACE = 2.0
"""Seconds past the bus's own close deadline that ``close`` waits for the loop's thread."""


class BackgroundBus:
    """Opens ``bus`` on a loop in a thread, and closes it from any thread within its deadline."""

    def __init__(self, bus: Bus, *, system_interval: float = 0.0, log_level: int = 0) -> None:
        """``system_interval``: seconds between system metrics (0: none); ``log_level``: the
        lowest level of ``logging`` records that become events of the run (0: none)."""
        self.bus = bus
        self._system_interval = system_interval
        self._records = LogRecordHandler(bus, level=log_level) if log_level else None
        self.closed = False
        self._opened = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: anyio.Event | None = None
        self._status: RunStatus = "finished"
        self._reason: str | None = None
        self._thread = threading.Thread(target=self._main, name=f"telemetry-{bus.run_id}")
        self._thread.daemon = True

    def start(self, timeout: float) -> None:
        """Open the bus; raises what opening raised, or ``TelemetryError`` after ``timeout``."""
        self._thread.start()
        if not self._opened.wait(timeout):
            raise TelemetryError(f"the bus of run {self.bus.run_id} did not open in {timeout:g} s")
        if self._error is not None:
            raise self._error

    def close(self, status: RunStatus, error: str | None) -> bool:
        """Close the bus with ``status``; False if its thread outlived the deadline."""
        if self.closed:
            return True
        self.closed = True
        self._status, self._reason = status, error
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop has already ended
                return True
        return self._done.wait(self.bus.close_timeout + GRACE)

    def _main(self) -> None:
        try:
            anyio.run(self._serve)
        except BaseException as exc:
            self._error = exc
        finally:
            self._opened.set()
            self._done.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = anyio.Event()
        async with self.bus:
            async with anyio.create_task_group() as group:
                group.start_soon(sample_system, self.bus, self._system_interval, None)
                root = logging.getLogger()
                level = root.level
                if self._records is not None:
                    root.addHandler(self._records)
                    root.setLevel(min(level, self._records.level) if level else level)
                self._opened.set()
                try:
                    await self._stop.wait()
                finally:
                    if self._records is not None:
                        root.removeHandler(self._records)
                        root.setLevel(level)
                        self._records.close()
                    group.cancel_scope.cancel()
            await self.bus.aclose(status=self._status, error=self._reason)
