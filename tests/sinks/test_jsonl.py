"""The durable log: whole lines, group commit, survival of kill -9, reopening."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

from sinks.jsonl import JsonlOptions, JsonlSink
from telemetry.bus import Bus
from telemetry.events import Metrics
from telemetry.reader import LogReader

WRITER = """
import sys, anyio
from sinks.jsonl import JsonlSink, JsonlOptions
from telemetry.bus import Bus

async def main(path):
    sink = JsonlSink(path, "killed", JsonlOptions(fsync_interval=0.05))
    async with Bus("killed", [sink], health_interval=None) as bus:
        step = 0
        while True:
            bus.log({"x": step, "y": step * 0.5}, step=step)
            step += 1
            if step % 200 == 0:
                await anyio.sleep(0.001)
            if step == 5000:
                print("ready", flush=True)

anyio.run(main, sys.argv[1])
"""


def test_kill_minus_nine_leaves_whole_lines_and_no_gap(tmp_path: Path) -> None:
    """After kill -9 mid-run the log reads back gap-free with at most a torn last line."""
    path = tmp_path / "events.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready"
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    process.stdout.close()
    reader = LogReader(path)
    seqs = [e.seq for e in reader]
    assert len(seqs) >= 5000
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(reader.problems) <= 1
    assert all(p.line == reader.lines_read for p in reader.problems)


async def test_reopening_cuts_a_torn_tail_and_appends(tmp_path: Path) -> None:
    """A log reopened after a crash drops the torn fragment and continues on a new line."""
    path = tmp_path / "events.jsonl"
    async with Bus("r", [JsonlSink(path, "r")], health_interval=None) as bus:
        for step in range(3):
            bus.log({"x": step}, step=step)
    with path.open("ab") as handle:
        handle.write(b'{"type":"metrics","run_id":"r","se')
    sink = JsonlSink(path, "r")
    async with Bus("r", [sink], health_interval=None, first_seq=bus.published) as bus2:
        bus2.log({"x": 3}, step=3)
    assert sink.truncated_bytes > 0
    reader = LogReader(path)
    metrics = [e for e in reader if isinstance(e, Metrics)]
    assert [m.step for m in metrics] == [0, 1, 2, 3]
    assert reader.problems == []


async def test_every_batch_is_synced_with_interval_zero(tmp_path: Path) -> None:
    """With fsync_interval=0 each batch is synced before write returns."""
    sink = JsonlSink(tmp_path / "events.jsonl", "r", JsonlOptions(fsync_interval=0))
    await sink.open()
    event = Metrics(run_id="r", seq=1, time=0.0, step=0, axis="step", values={"x": 1})
    await sink.write([event])
    assert not sink._dirty
    await sink.write([event])  # a duplicate seq is skipped, not written twice
    await sink.close(1.0)
    assert [e.seq for e in LogReader(sink.path)] == [1]


async def test_unwritable_path_is_named(tmp_path: Path) -> None:
    """A log that cannot be created isolates the sink with an error naming the path."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    sink = JsonlSink(blocker / "events.jsonl", "r")
    with anyio.fail_after(10):
        async with Bus("r", [sink], health_interval=None) as bus:
            bus.log({"x": 1}, step=0)
    report = bus.report
    assert report is not None
    assert report.sinks[0].isolated
    assert str(blocker / "events.jsonl") in (report.sinks[0].error or "")
    assert blocker.read_text() == "not a folder"
