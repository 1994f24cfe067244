"""Shared fixtures: sinks that misbehave on purpose, for the bus tests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import anyio
import pytest
import structlog

from telemetry.errors import SinkUnavailableError
from telemetry.events import Event


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A test calling ``main.cli`` in-process configures structlog for the process (bound to
    that test's captured stderr): the next tests get the config they had."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


class StuckSink:
    """A sink whose first write never returns (a hung network call)."""

    def __init__(self, name: str = "stuck") -> None:
        self.name = name
        self.calls = 0

    async def open(self) -> None:
        return None

    async def write(self, batch: Sequence[Event]) -> None:
        self.calls += 1
        await anyio.sleep_forever()

    async def close(self, timeout: float) -> None:
        return None


class BrokenSink:
    """A sink that raises on every write."""

    def __init__(self, name: str = "broken") -> None:
        self.name = name
        self.calls = 0

    async def open(self) -> None:
        return None

    async def write(self, batch: Sequence[Event]) -> None:
        self.calls += 1
        raise ConnectionError("backend refused the batch")

    async def close(self, timeout: float) -> None:
        return None


class SlowSink:
    """A sink that takes ``delay`` seconds per batch and keeps what it got."""

    def __init__(self, delay: float, name: str = "slow") -> None:
        self.name = name
        self.delay = delay
        self.events: list[Event] = []

    async def open(self) -> None:
        return None

    async def write(self, batch: Sequence[Event]) -> None:
        await anyio.sleep(self.delay)
        last = self.events[-1].seq if self.events else 0
        self.events.extend(e for e in batch if e.seq > last)

    async def close(self, timeout: float) -> None:
        return None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class OutageSink:
    """A remote-like sink: down (SinkUnavailableError) while ``down`` is set, else records."""

    def __init__(self, name: str = "remote", down_at_open: bool = False) -> None:
        self.name = name
        self.down = down_at_open
        self.events: list[Event] = []
        self.attempts = 0

    async def open(self) -> None:
        self.attempts += 1
        if self.down:
            raise SinkUnavailableError("connection refused")

    async def write(self, batch: Sequence[Event]) -> None:
        self.attempts += 1
        if self.down:
            raise SinkUnavailableError("connection refused")
        last = self.events[-1].seq if self.events else 0
        self.events.extend(e for e in batch if e.seq > last)

    async def close(self, timeout: float) -> None:
        return None
