"""A sink that never returns from ``write``, importable by a sidecar process (test-only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from telemetry.events import Event
from telemetry.sink import Delivery, SinkContext

NAME = "hanging"


@dataclass(kw_only=True)
class HangingOptions(Delivery):
    """Settings of the hanging sink: only how the bus feeds it."""


class HangingSink:
    """Opens, then hangs on its first write (a backend that stopped answering)."""

    name = NAME

    async def open(self) -> None:
        return None

    async def write(self, batch: Sequence[Event]) -> None:
        await anyio.sleep_forever()

    async def close(self, timeout: float) -> None:
        return None


def build(context: SinkContext, options: HangingOptions) -> HangingSink:
    """A hanging sink."""
    return HangingSink()
