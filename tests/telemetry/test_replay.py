"""Replay: a recorded log goes back through sinks with its own seq, once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import orjson

from sinks.jsonl import JsonlSink
from sinks.memory import MemorySink
from telemetry.bus import Bus, RunInfo
from telemetry.reader import LogReader
from telemetry.replay import replay_log

ROOT = Path(__file__).resolve().parents[2]


async def _record(run_dir: Path, steps: int) -> Bus:
    sink = JsonlSink(run_dir / "events.jsonl", "run-7")
    async with Bus("run-7", [sink], run=RunInfo(name="rec"), health_interval=None) as bus:
        for step in range(steps):
            bus.log({"episode/reward": step * 1.5, "n": step}, step=step, axis="episode")
    return bus


async def test_replay_gives_the_same_events_and_only_what_is_missing(tmp_path: Path) -> None:
    """Replay delivers the log's events unchanged; a second replay adds nothing."""
    await _record(tmp_path, 50)
    memory = MemorySink()
    with anyio.fail_after(30):
        outcome = await replay_log(tmp_path, [memory])
        assert outcome.complete
        again = await replay_log(tmp_path, [memory])
    original = list(LogReader(tmp_path))
    assert memory.events == original
    assert again.events == len(original)
    assert len(memory.events) == len(original)


def test_cli_replay_reports_a_torn_line_and_delivers_the_rest(tmp_path: Path) -> None:
    """The replay command delivers every whole line, names the torn one, and exits 1."""
    anyio.run(_record, tmp_path, 20)
    log = tmp_path / "events.jsonl"
    whole_lines = len(log.read_bytes().splitlines())
    with log.open("ab") as handle:
        handle.write(b'{"type":"metrics","run_id":"run-7","seq":99,"ti')
    result = subprocess.run(
        [
            sys.executable,
            "main.py",
            "replay",
            str(tmp_path),
            "sinks=[console]",
            "console.format=json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 1
    lines = [orjson.loads(line) for line in result.stderr.splitlines()]
    episodes = [line for line in lines if line.get("event") == "episode"]
    assert [line["step"] for line in episodes] == list(range(20))
    skipped = [line for line in lines if line.get("event") == "replay_skipped_line"]
    assert [line["line"] for line in skipped] == [whole_lines + 1]
    assert "Traceback" not in result.stderr


def test_cli_replay_of_a_clean_log_exits_0(tmp_path: Path) -> None:
    """A clean log replays with status 0."""
    anyio.run(_record, tmp_path, 5)
    result = subprocess.run(
        [sys.executable, "main.py", "replay", str(tmp_path / "events.jsonl"), "sinks=[memory]"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
