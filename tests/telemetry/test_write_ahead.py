"""Write-ahead: no sink gets an event before the durable log has written it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import anyio
import orjson

from sinks.jsonl import JsonlOptions, JsonlSink
from sinks.memory import MemorySink
from telemetry.bus import Bus, RunInfo
from telemetry.events import Event
from telemetry.sink import Delivery

SMALL = Delivery(overflow="block", batch_size=50, max_latency=0.001)


class SlowLog(JsonlSink):
    """The real JSON Lines log on a slow disk: each batch takes ``delay`` seconds to write."""

    def __init__(self, path: Path, delay: float) -> None:
        super().__init__(path, "ahead", JsonlOptions(batch_size=50, max_latency=0.001))
        self.delay = delay

    async def write(self, batch: Sequence[Event]) -> None:
        await anyio.sleep(self.delay)
        await super().write(batch)


def highest_seq_on_disk(path: Path) -> int:
    """The seq of the last whole line in the file, read from disk as another process would."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 65_536))
        lines = handle.read().split(b"\n")[:-1]  # the part after the last newline is not whole
    return int(orjson.loads(lines[-1])["seq"]) if lines else 0


class Watching(MemorySink):
    """A memory sink that notes, at each write, its highest seq and the log's on disk."""

    def __init__(self, log: Path) -> None:
        super().__init__()
        self.log = log
        self.seen: list[tuple[int, int]] = []

    async def write(self, batch: Sequence[Event]) -> None:
        self.seen.append((batch[-1].seq, highest_seq_on_disk(self.log)))
        await super().write(batch)


async def test_a_sink_never_holds_a_seq_the_log_has_not_written(tmp_path: Path) -> None:
    """With a log that takes 20 ms a batch, memory's highest seq never passes the log's."""
    path = tmp_path / "events.jsonl"
    log = SlowLog(path, delay=0.02)
    memory = Watching(path)
    with anyio.fail_after(60):
        sinks = [(memory, SMALL), (log, log.options)]
        async with Bus("ahead", sinks, run=RunInfo(name="a"), health_interval=None) as bus:
            for step in range(2_000):
                bus.log({"x": float(step)}, step=step)
                if step % 100 == 99:
                    await anyio.sleep(0.001)
    assert bus.report is not None
    assert bus.report.undelivered == {}
    assert len(memory.events) == bus.published
    assert len(memory.seen) > 10
    ahead = [(mine, logged) for mine, logged in memory.seen if mine > logged]
    assert ahead == [], f"memory wrote seqs the log did not hold yet: {ahead[:5]}"


async def test_sinks_stop_where_the_log_stopped(tmp_path: Path) -> None:
    """A log that misses the close deadline holds the others back: they get only what it has."""
    path = tmp_path / "events.jsonl"
    log = SlowLog(path, delay=0.3)
    memory = Watching(path)
    with anyio.fail_after(60):
        sinks = [(log, log.options), (memory, SMALL)]
        async with Bus("ahead", sinks, health_interval=None, close_timeout=0.5) as bus:
            for step in range(500):
                bus.log({"x": float(step)}, step=step)
    assert bus.report is not None
    written = highest_seq_on_disk(path)
    assert 0 < written < bus.published
    assert memory.events[-1].seq <= written
    pending = {s.name: s.pending for s in bus.report.sinks}
    assert pending["memory"] >= bus.published - written
