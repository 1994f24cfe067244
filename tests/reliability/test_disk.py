"""A full disk and unwritable paths under the JSON Lines log.

What happens (pinned here):

- A write that fails (``ENOSPC``, ``EROFS``...) is cut back to the last whole
  batch (``ftruncate``), so what was written before reads back with no torn
  middle line. The sink raises ``SinkUnavailableError("cannot write the event
  log <path>: the disk is full")``; the lane logs it once (``sink_error``),
  retries the batch ``jsonl.max_retries`` times with backoff, then counts it
  failed; after ``jsonl.isolate_after`` failed batches in a row it is isolated
  (``sink_isolated``) and every later event is counted failed for it.
- Every other sink keeps receiving every event, and publishing never raises
  or slows down: the trainer goes on.
- A log that still cannot write after its quick retries holds its batch and
  retries it behind its breaker (``sink_down``); later events wait in the
  bounded intake. If space comes back meanwhile nothing is lost
  (``sink_recovered``). After ``jsonl.isolate_after`` tries it is isolated;
  it keeps trying behind the breaker and writes again once there is room, so
  the log may hold a gap, which the report counts ``failed`` for the jsonl
  sink, as do the lanes that read the log back.
- A log that cannot be opened (its folder is a file, it is a directory, a
  read-only file system) isolates the sink at open with the same kind of error
  naming the path.
"""

from __future__ import annotations

import errno
import os
import time
import types
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

import sinks.jsonl as jsonl_module
from sinks.jsonl import JsonlOptions, JsonlSink
from sinks.memory import MemorySink
from telemetry import retry as retry_module
from telemetry.bus import Bus, CloseReport, RunInfo
from telemetry.sink import Delivery
from tests.conftest import OutageSink
from tests.reliability.common import read_log, run_cli
from tests.tmpfs import fill, tmpfs

FULL = "the disk is full"


class FakeDisk:
    """``os`` as ``sinks.jsonl`` sees it, with a disk that holds ``capacity`` bytes of log."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.refused = 0

    def namespace(self) -> Any:
        fake = types.SimpleNamespace(
            **{name: getattr(os, name) for name in dir(os) if not name.startswith("__")}
        )
        fake.write = self.write
        return fake

    def write(self, fd: int, data: Any) -> int:
        room = self.capacity - os.fstat(fd).st_size
        if room <= 0:
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, bytes(data[:room]))  # a short write, as a nearly full disk gives


async def _train_on(
    path: Path, steps: int, *, isolate_after: int = 3
) -> tuple[Bus, MemorySink, list[Any], float]:
    """A trainer-like loop publishing bursts onto a log at ``path`` and a memory sink."""
    options = JsonlOptions(max_retries=2, isolate_after=isolate_after, max_latency=0.01)
    log = JsonlSink(path, "disk", options)
    memory = MemorySink()
    worst = 0.0
    with capture_logs() as logs, anyio.fail_after(60):
        async with Bus(
            "disk", [(log, options), memory], run=RunInfo(name="disk"), health_interval=None
        ) as bus:
            for step in range(steps):
                started = time.perf_counter()
                bus.log({"loss/value": step * 0.5, "reward/total": -step * 1.0}, step=step)
                worst = max(worst, time.perf_counter() - started)
                if step % 50 == 49:
                    await anyio.sleep(0.02)
    return bus, memory, logs, worst


def _check_outcome(
    bus: Bus, memory: MemorySink, logs: list[Any], path: Path, worst: float
) -> dict[str, int]:
    report = bus.report
    assert isinstance(report, CloseReport)
    by_name = {s.name: s for s in report.sinks}
    jsonl, mem = by_name["jsonl"], by_name["memory"]
    # The other sink got everything and publishing never stalled.
    assert mem.delivered == report.published
    assert mem.failed == mem.pending == 0
    assert [e.seq for e in memory.events] == list(range(1, report.published + 1))
    # A stalled publish would take the whole retry budget (seconds); 0.5 s leaves room
    # for a garbage-collection pause on a loaded 2-core machine.
    assert worst < 0.5
    # A clear error naming the path, logged once, then the isolation.
    message = f"cannot write the event log {path}: {FULL}"
    assert jsonl.error == f"SinkUnavailableError: {message}"
    assert jsonl.isolated
    assert jsonl.failed > 0
    assert jsonl.delivered + jsonl.failed + jsonl.pending == report.published
    errors = [e for e in logs if e["event"] == "sink_error" and e.get("sink") == "jsonl"]
    assert [e["error"] for e in errors] == [f"SinkUnavailableError: {message}"]
    assert [e["event"] for e in logs if e["event"] == "sink_isolated"] == ["sink_isolated"]
    # What was written reads back whole: no torn or broken line anywhere.
    reader, events = read_log(path)
    assert reader.problems == []
    assert not reader.torn_tail
    assert path.read_bytes().endswith(b"\n")
    by_seq = {e.seq: e for e in memory.events}
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))
    assert all(by_seq[e.seq] == e for e in events)
    assert len(events) == jsonl.delivered
    assert events[0].seq == 1
    return {"written": len(events), "failed": jsonl.failed, "published": report.published}


async def test_injected_disk_full_isolates_the_log_and_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC after 40 kB: an error naming the path, memory gets all, the log reads back clean."""
    disk = FakeDisk(capacity=40_000)
    monkeypatch.setattr(jsonl_module, "os", disk.namespace())
    path = tmp_path / "events.jsonl"
    bus, memory, logs, worst = await _train_on(path, 2_000)
    figures = _check_outcome(bus, memory, logs, path, worst)
    assert path.stat().st_size <= disk.capacity
    assert disk.refused >= 3  # the failed batch was retried
    print(f"\n[disk] injected ENOSPC: {figures}")


async def test_space_coming_back_between_failures_resumes_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that fails and then finds room again on a retry is written, with no gap."""
    disk = FakeDisk(capacity=20_000)
    monkeypatch.setattr(jsonl_module, "os", disk.namespace())
    path = tmp_path / "events.jsonl"
    options = JsonlOptions(max_retries=5, max_latency=0.01)
    memory = MemorySink()

    async def free_space_later() -> None:
        while disk.refused == 0:
            await anyio.sleep(0.005)
        disk.capacity = 10**9

    with capture_logs() as logs, anyio.fail_after(60):
        async with (
            anyio.create_task_group() as group,
            Bus(
                "disk", [(JsonlSink(path, "disk", options), options), memory], health_interval=None
            ) as bus,
        ):
            group.start_soon(free_space_later)
            for step in range(1_500):
                bus.log({"x": float(step)}, step=step)
                if step % 100 == 99:
                    await anyio.sleep(0.02)
    assert bus.report is not None
    assert bus.report.undelivered == {}
    reader, events = read_log(path)
    assert reader.problems == []
    assert [e.seq for e in events] == list(range(1, bus.report.published + 1))
    assert [e["event"] for e in logs if e.get("sink") == "jsonl"] == ["sink_error"]


async def test_real_full_tmpfs_isolates_the_log_and_keeps_the_rest(tmp_path: Path) -> None:
    """A 256 kB tmpfs filling up mid-run: same outcome as the injected ENOSPC."""
    with tmpfs(tmp_path / "small", "256k") as mount:
        path = mount / "run" / "events.jsonl"
        bus, memory, logs, worst = await _train_on(path, 8_000)
        figures = _check_outcome(bus, memory, logs, path, worst)
        assert figures["written"] > 1_000
        print(f"\n[disk] real tmpfs of 256 kB: {figures}")


async def test_read_only_file_system_is_named(tmp_path: Path) -> None:
    """A log on a read-only tmpfs is isolated at open with an error naming path and reason."""
    with tmpfs(tmp_path / "ro", "256k", "ro") as mount:
        await _unopenable(mount / "events.jsonl", "the file system is read-only")


async def _unopenable(path: Path, reason: str) -> None:
    memory = MemorySink()
    with capture_logs() as logs, anyio.fail_after(30):
        async with Bus("ro", [JsonlSink(path, "ro"), memory], health_interval=None) as bus:
            for step in range(100):
                bus.log({"x": float(step)}, step=step)
    assert bus.report is not None
    jsonl = next(s for s in bus.report.sinks if s.name == "jsonl")
    assert jsonl.isolated
    assert jsonl.error == f"open failed: cannot write the event log {path}: {reason}"
    assert jsonl.failed == bus.report.published
    assert [e.seq for e in memory.events] == list(range(1, bus.report.published + 1))
    isolated = [e for e in logs if e["event"] == "sink_isolated"]
    assert [e["sink"] for e in isolated] == ["jsonl"]
    assert str(path) in isolated[0]["error"]


async def test_log_path_that_is_a_directory_is_named(tmp_path: Path) -> None:
    """events.jsonl being a directory isolates the log with 'it is a directory'."""
    path = tmp_path / "events.jsonl"
    path.mkdir()
    await _unopenable(path, "it is a directory")


async def test_log_folder_that_is_a_file_is_named(tmp_path: Path) -> None:
    """A file where the log's folder should be isolates the log with a reason that says so."""
    blocker = tmp_path / "run"
    blocker.write_text("a file, not a folder")
    await _unopenable(blocker / "events.jsonl", "a part of its path is a file, not a folder")


def test_cli_out_folder_that_cannot_be_made_exits_2(tmp_path: Path) -> None:
    """train with an out folder under a file exits 2 naming the out key and the path."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("train", "episodes=1", "sinks=[jsonl]", f"out={blocker}/runs")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: out: cannot create {blocker}/runs")
    assert "Traceback" not in result.stderr


async def _until(condition: Any, timeout: float = 30) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.005)


async def test_log_that_finds_room_again_loses_nothing(tmp_path: Path) -> None:
    """A full tmpfs freed while the log holds its batch: every event reaches the log, in order."""
    with tmpfs(tmp_path / "small", "256k") as mount:
        path = mount / "run" / "events.jsonl"
        path.parent.mkdir()
        filler = fill(mount, 24_000)
        options = JsonlOptions(max_retries=1, max_latency=0.01)
        log = JsonlSink(path, "disk", options)
        memory = MemorySink()
        held_at: int | None = None  # events the log had written when the disk filled up
        with capture_logs() as logs, anyio.fail_after(60):
            async with Bus("disk", [(log, options), memory], health_interval=None) as bus:
                lane = next(lane for lane in bus.lanes if lane.writes_log)
                for step in range(1_500):  # about 140 kB of log
                    bus.log({"loss/value": step * 0.5, "reward/total": -step * 1.0}, step=step)
                    await anyio.sleep(0.0002)
                    if lane.breaker.open and filler.exists():
                        held_at = len(memory.events)
                        filler.unlink()  # room again, while the log holds its batch
        # Not > 0: on a loaded machine the first batch can be the one that fills the disk.
        assert held_at is not None, "the disk never filled up"
        assert bus.report is not None
        assert bus.report.undelivered == {}
        _, events = read_log(path)
        assert [e.seq for e in events] == list(range(1, bus.published + 1))
        assert [e.seq for e in memory.events] == [e.seq for e in events]
        jsonl_lines = [e["event"] for e in logs if e.get("sink") == "jsonl"]
        assert jsonl_lines == ["sink_error", "sink_down", "sink_recovered"]
        print(f"\n[disk] freed while held after {held_at} events: all {bus.published} logged")


async def test_isolated_log_writes_again_when_space_returns_and_lanes_catch_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log isolated by a full disk writes again once it is freed; a lane that was behind
    reads the log back, and both count the events published meanwhile as failed."""
    with tmpfs(tmp_path / "small", "256k") as mount:
        path = mount / "run" / "events.jsonl"
        path.parent.mkdir()
        filler = fill(mount, 24_000)
        rest = mount / "rest"
        freed = False

        def take_the_room_then_wait(state: object) -> float:
            # The breaker trips after the failed write was cut back, so a small probe could
            # fit in what is left and the log flap: take the rest of the room right then,
            # until the disk is freed.
            if not freed and not rest.exists():
                room = os.statvfs(mount)
                rest.write_bytes(b"\0" * (room.f_bavail * room.f_frsize))
            return 0.05

        monkeypatch.setattr(retry_module, "BREAKER_WAIT", take_the_room_then_wait)
        options = JsonlOptions(max_retries=0, max_latency=0.01, isolate_after=2)
        log = JsonlSink(path, "disk", options)
        memory = MemorySink()
        remote = OutageSink(down_at_open=True)
        spill = Delivery(overflow="spill", capacity=200, max_latency=0.01)
        step = 0

        async def publish(count: int) -> None:
            nonlocal step
            for _ in range(count):
                bus.log({"loss/value": step * 0.5}, step=step)
                step += 1
                await anyio.sleep(0.0005)

        with capture_logs() as logs, anyio.fail_after(90):
            sinks = [(log, options), memory, (remote, spill)]
            async with Bus("disk", sinks, health_interval=None, close_timeout=30) as bus:
                lane = next(lane for lane in bus.lanes if lane.writes_log)
                while not lane.isolated:
                    await publish(20)
                await publish(300)  # published while the log is isolated: its gap
                freed = True
                filler.unlink()
                rest.unlink()
                while lane.isolated:
                    await publish(20)
                await publish(300)
                remote.down = False
                await _until(lambda: len(remote.events) + 1 >= len(read_log(path)[1]))
        assert bus.report is not None
        by_name = {s.name: s for s in bus.report.sinks}
        jsonl, mem, rem = by_name["jsonl"], by_name["memory"], by_name["remote"]
        _, events = read_log(path)
        seqs = [e.seq for e in events]
        assert seqs == sorted(set(seqs))
        assert seqs[0] == 1
        assert not jsonl.isolated
        assert jsonl.delivered == len(events)
        assert jsonl.failed == bus.published - len(events) > 300
        assert mem.delivered == bus.published
        assert [e.seq for e in remote.events] == seqs
        assert (rem.delivered, rem.failed, rem.pending) == (len(events), jsonl.failed, 0)
        jsonl_lines = [e["event"] for e in logs if e.get("sink") == "jsonl"]
        # A probe small enough for the slack in the log's last page may be written while the
        # disk is full, and the log flap (recovered, down, isolated again): what counts is
        # that it was isolated and ended live.
        assert "sink_isolated" in jsonl_lines
        states = [line for line in jsonl_lines if line in ("sink_down", "sink_recovered")]
        assert states[-1] == "sink_recovered", jsonl_lines
        print(f"\n[disk] isolated and back: {len(events)} logged, {jsonl.failed} in the gap")
