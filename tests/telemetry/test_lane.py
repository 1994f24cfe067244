"""One lane driven directly, as the pump drives it: every transition of its mode.

Each test builds the real log's lane and one lane under test on one shared
``Progress``, offers chunks by hand, and watches ``lane.mode`` and the counts.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskGroup
from tenacity import wait_fixed

from sinks.jsonl import JsonlOptions, JsonlSink
from sinks.memory import MemorySink
from telemetry import retry as retry_module
from telemetry.chunk import RawChunk
from telemetry.events import Event
from telemetry.lane import Lane, LaneMode
from telemetry.log_lane import LogLane
from telemetry.progress import Progress
from telemetry.reader import LogTail
from telemetry.sink import Delivery, Sink
from telemetry.spill_lane import SpillLane
from tests.conftest import BrokenSink, OutageSink, StuckSink

FAST = Delivery(overflow="spill", capacity=100, batch_size=100, max_latency=0.001)


@pytest.fixture(autouse=True)
def _quick_breaker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The breaker waits 20 ms instead of 0.5 s and more: the same states, sooner."""
    monkeypatch.setattr(retry_module, "BREAKER_WAIT", wait_fixed(0.02))


class Pump:
    """What the bus's pump does for a lane: numbered chunks, offered to the log first."""

    def __init__(self, log: Lane, lane: Lane, progress: Progress) -> None:
        self.log, self.lane, self.progress = log, lane, progress
        self.seq = 0

    async def offer(self, count: int) -> RawChunk:
        first = self.seq + 1
        self.seq += count
        seqs = range(first, self.seq + 1)
        items: list[object] = [{"x": float(seq)} for seq in seqs]
        stamps = [(seq, 0.0, seq, "step") for seq in seqs]
        chunk = RawChunk("lane", items, stamps)  # type: ignore[arg-type]
        for lane in (self.log, self.lane):
            while not lane.offer(chunk):
                await lane.wait_for_room()
        self.progress.dispatched = chunk.last_seq
        return chunk

    def end(self) -> None:
        self.progress.end_input()
        self.log.end_of_input()
        self.lane.end_of_input()


@asynccontextmanager
async def lanes(
    tmp_path: Path, sink: Sink, delivery: Delivery = FAST
) -> AsyncIterator[tuple[Pump, Lane]]:
    """The log's lane and a lane for ``sink``, running; ends their input on the way out."""
    progress = Progress(0, has_log=True)
    progress.start()
    jsonl = JsonlSink(tmp_path / "events.jsonl", "lane")
    log = LogLane(jsonl, JsonlOptions(max_latency=0.001), progress)
    lane = (
        SpillLane(sink, delivery, progress, jsonl)
        if delivery.overflow == "spill"
        else Lane(sink, delivery, progress)
    )
    pump = Pump(log, lane, progress)
    await log.open()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            _start(group, log, lane)
            yield pump, lane
            pump.end()


def _start(group: TaskGroup, *lanes: Lane) -> None:
    for lane in lanes:
        group.start_soon(lane.run)


async def until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not condition():
            await anyio.sleep(0.002)


def held_until_released() -> tuple[Sink, MemorySink, anyio.Event]:
    """A sink whose writes wait for ``release``, then land in ``memory``."""
    stuck = StuckSink()
    memory = MemorySink()
    release = anyio.Event()

    async def slow_then_fine(batch: Sequence[Event]) -> None:
        await release.wait()
        await MemorySink.write(memory, batch)

    stuck.write = slow_then_fine  # type: ignore[method-assign]
    return stuck, memory, release


def seqs(events: Sequence[Event]) -> list[int]:
    return [e.seq for e in events]


async def test_live_lane_delivers_and_is_done_at_the_end(tmp_path: Path) -> None:
    """LIVE -> DONE: every chunk offered is delivered; the end of input ends the lane."""
    memory = MemorySink()
    async with lanes(tmp_path, memory) as (pump, lane):
        assert lane.mode is LaneMode.LIVE
        await pump.offer(50)
        await until(lambda: len(memory.events) == 50)
    assert lane.mode is LaneMode.DONE
    assert (lane.counts.delivered, lane.counts.failed, lane.counts.spilled) == (50, 0, 0)
    assert memory.closed


async def test_full_queue_spills_then_rejoins_the_live_stream(tmp_path: Path) -> None:
    """LIVE -> BEHIND (queue full) -> REJOINING (caught up) -> LIVE (next chunk)."""
    stuck, memory, release = held_until_released()
    async with lanes(tmp_path, stuck) as (pump, lane):
        await pump.offer(60)  # taken by the worker, whose write waits
        await until(lambda: lane.counts.queued == 0)
        await pump.offer(60)  # queued
        await pump.offer(60)  # 120 > capacity 100: spilled
        assert lane.mode is LaneMode.BEHIND
        assert lane.counts.spilled == 60
        release.set()
        await until(lambda: lane.mode is LaneMode.REJOINING)
        await pump.offer(10)
        assert lane.mode is LaneMode.LIVE
        await until(lambda: len(memory.events) == 190)
    assert seqs(memory.events) == list(range(1, 191))
    assert lane.counts.delivered == 190


async def test_falling_behind_while_a_read_back_is_in_flight_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REJOINING -> LIVE -> BEHIND while the worker's read of the log runs in its thread.

    The pump drops that read-back and starts a new one; the read in flight must
    neither find its file closed under it nor act for the new one.
    """
    gate, reading = threading.Event(), threading.Event()
    gate.set()
    real_read = LogTail.read

    def gated_read(tail: LogTail, max_bytes: int = 1 << 20) -> list[Event]:
        reading.set()
        gate.wait(10)
        return real_read(tail, max_bytes)

    monkeypatch.setattr(LogTail, "read", gated_read)
    stuck, memory, release = held_until_released()
    async with lanes(tmp_path, stuck) as (pump, lane):
        await pump.offer(60)
        await until(lambda: lane.counts.queued == 0)
        await pump.offer(60)
        await pump.offer(60)  # spilled: BEHIND from 121
        release.set()
        await until(lambda: lane.mode is LaneMode.REJOINING)
        gate.clear()
        reading.clear()
        await until(reading.is_set)  # the worker's next read waits in its thread
        await pump.offer(10)  # rejoins: LIVE, with the read-back limited to 180
        assert lane.mode is LaneMode.LIVE
        await pump.offer(100)  # the queue is full: BEHIND again, a new read-back
        assert lane.mode is LaneMode.BEHIND
        gate.set()
        await until(lambda: len(memory.events) == 290)
    assert seqs(memory.events) == list(range(1, 291))
    assert lane.counts.delivered == 290


async def test_sink_down_falls_behind_and_catches_up_from_the_log(tmp_path: Path) -> None:
    """LIVE -> BEHIND (SinkUnavailableError) -> back once the breaker's retry works."""
    remote = OutageSink()
    async with lanes(tmp_path, remote) as (pump, lane):
        await pump.offer(20)
        await until(lambda: len(remote.events) == 20)
        remote.down = True
        await pump.offer(20)
        await until(lambda: lane.mode is LaneMode.BEHIND and lane.breaker.open)
        await pump.offer(20)
        remote.down = False
        await until(lambda: len(remote.events) == 60)
        assert not lane.breaker.open
        # The read-back delivers the last events a moment before it sees the log's end.
        await until(lambda: lane.mode in (LaneMode.REJOINING, LaneMode.LIVE))
    assert seqs(remote.events) == list(range(1, 61))


async def test_down_at_open_is_behind_from_the_first_seq(tmp_path: Path) -> None:
    """Open fails with SinkUnavailableError: BEHIND from seq 1, everything read back later."""
    remote = OutageSink(down_at_open=True)
    async with lanes(tmp_path, remote) as (pump, lane):
        await until(lambda: lane.mode is LaneMode.BEHIND)
        await pump.offer(30)
        assert lane.counts.spilled == 30
        remote.down = False
        await until(lambda: len(remote.events) == 30)
    assert seqs(remote.events) == list(range(1, 31))


async def test_failing_sink_is_isolated_and_counts_everything_failed(tmp_path: Path) -> None:
    """LIVE -> ISOLATED after ``isolate_after`` failed batches; later offers count failed."""
    broken = BrokenSink()
    delivery = Delivery(overflow="block", batch_size=10, max_latency=0.001, max_retries=0)
    async with lanes(tmp_path, broken, delivery) as (pump, lane):
        for _ in range(3):
            await pump.offer(10)
        await until(lambda: lane.mode is LaneMode.ISOLATED)
        await pump.offer(10)
        assert lane.counts.failed == 40
    assert lane.mode is LaneMode.ISOLATED  # it stays isolated when its worker ends
    assert broken.calls == 3


async def test_open_error_isolates_at_once(tmp_path: Path) -> None:
    """An open that raises anything but SinkUnavailableError isolates the lane."""

    class Refusing(MemorySink):
        async def open(self) -> None:
            raise PermissionError("no token")

    async with lanes(tmp_path, Refusing()) as (pump, lane):
        await until(lambda: lane.mode is LaneMode.ISOLATED)
        await pump.offer(5)
    assert lane.error == "open failed: PermissionError: no token"
    assert lane.counts.failed == 5


async def test_behind_lane_gives_up_at_close_leaving_the_rest_pending(tmp_path: Path) -> None:
    """BEHIND -> DONE: a sink still down when the input ends gets one last try, then stops."""
    remote = OutageSink(down_at_open=True)
    async with lanes(tmp_path, remote) as (pump, lane):
        await until(lambda: lane.mode is LaneMode.BEHIND)
        await pump.offer(25)
    assert lane.mode is LaneMode.DONE
    assert remote.events == []
    assert lane.counts.delivered + lane.counts.failed == 0  # all 25 pending, in the log


async def test_isolated_log_probes_and_goes_live_again(tmp_path: Path) -> None:
    """The log's lane: ISOLATED -> LIVE when a write goes through again."""
    progress = Progress(0, has_log=True)
    progress.start()
    jsonl = JsonlSink(tmp_path / "events.jsonl", "lane")
    failing = {"on": True}
    real_write = jsonl.write

    async def write(batch: Sequence[Event]) -> None:
        if failing["on"]:
            raise OSError("the disk is full")
        await real_write(batch)

    jsonl.write = write  # type: ignore[method-assign]
    options = JsonlOptions(max_latency=0.001, max_retries=0, isolate_after=2)
    log = LogLane(jsonl, options, progress)
    memory = MemorySink()
    other = Lane(memory, Delivery(overflow="block", max_latency=0.001), progress)
    pump = Pump(log, other, progress)
    await log.open()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            _start(group, log, other)
            await pump.offer(10)
            await until(lambda: log.mode is LaneMode.ISOLATED)
            await until(lambda: len(memory.events) == 10)  # settled as failed: others go on
            failing["on"] = False
            while log.mode is LaneMode.ISOLATED:
                await pump.offer(1)
                await anyio.sleep(0.01)
            await pump.offer(10)
            await until(lambda: log.counts.delivered >= 11)
            pump.end()
    assert log.mode is LaneMode.DONE
    assert log.counts.failed + log.counts.delivered == pump.seq
    assert seqs(memory.events) == list(range(1, pump.seq + 1))
