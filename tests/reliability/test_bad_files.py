"""Replaying bad files: clear messages with line numbers, every valid event delivered.

What replay does (decided here, implemented in ``telemetry.reader.LogReader``):

- a file that is not a log at all (empty, CSV, binary garbage on line 1) or whose
  schema is newer than this reader: one line naming the file, exit status 2,
  nothing delivered;
- a line that is not a valid event (a truncated middle line, garbage): reported
  as ``line N: <reason>`` and skipped; exit status 1;
- a line whose ``seq`` is not after the previous event's (out of order, or a
  duplicate): reported as ``line N: seq S is not after the previous seq P;
  skipped`` and skipped, because sinks de-duplicate by ``seq`` (an event with a
  ``seq`` at or below the last one a sink holds is never delivered); exit status 1;
- a torn last line (no newline): reported and skipped; exit status 1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from sinks.memory import MemorySink
from telemetry.codec import encode, header
from telemetry.errors import LogFormatError
from telemetry.events import Metrics
from telemetry.reader import LogReader
from telemetry.replay import ReplayOutcome, replay_log
from tests.reliability.common import json_lines, run_cli

GARBAGE = bytes(range(256)) * 2


def _lines(count: int = 10) -> list[bytes]:
    """A clean log's lines: the header, then metrics events with seq 1..count."""
    return [header("bad-files", 1.0)] + [
        encode(
            Metrics(run_id="bad-files", seq=i, time=1.0 + i, step=i, axis="step", values={"x": i})
        )
        for i in range(1, count + 1)
    ]


def _write(path: Path, lines: list[bytes], *, tail: bytes = b"") -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n" + tail)
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty", b"", "is empty: no schema header on line 1"),
        ("csv", b"step,loss\n0,1.5\n1,1.2\n", "is not a rltelemetry.jsonl log: line 1"),
        ("binary", GARBAGE, "is not a rltelemetry.jsonl log: line 1"),
        (
            "future",
            b'{"type":"schema","run_id":"r","seq":0,"time":0,"format":"rltelemetry.jsonl",'
            b'"schema_version":7}\n' + b"\n".join(_lines()[1:]) + b"\n",
            "line 1: schema_version 7 is newer than this reader's 1",
        ),
        ("json_array", b"[1, 2, 3]\n", "is not a rltelemetry.jsonl log: line 1"),
    ],
)
def test_files_that_are_not_logs_exit_2_naming_the_file(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    """Empty, CSV, binary, future-schema and non-object files exit 2 with one clear line."""
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(content)
    result = run_cli("replay", str(path), "sinks=[memory]")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {path} {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    with pytest.raises(LogFormatError, match=str(path)):
        list(LogReader(path))


Case = tuple[list[bytes], list[int], list[tuple[int, str]]]
"""A log's lines, the seqs a replay delivers, and the (line, reason) problems it reports."""


def _out_of_order() -> Case:
    lines = _lines()
    lines[4], lines[5] = lines[5], lines[4]  # seq 5 before seq 4: lines 5 and 6
    return lines, [1, 2, 3, 5, 6, 7, 8, 9, 10], [(6, "seq 4 is not after the previous seq 5")]


def _duplicated() -> Case:
    lines = _lines()
    lines.insert(4, lines[3])  # seq 3 twice: lines 4 and 5
    lines.append(lines[2])  # seq 2 again at the end: line 13
    problems = [
        (5, "seq 3 is not after the previous seq 3"),
        (13, "seq 2 is not after the previous seq 10"),
    ]
    return lines, list(range(1, 11)), problems


def _truncated_middle() -> Case:
    lines = _lines()
    lines[5] = lines[5][: len(lines[5]) // 2]  # seq 5, line 6, cut but newline-terminated
    return lines, [1, 2, 3, 4, 6, 7, 8, 9, 10], [(6, "not valid JSON")]


def _garbage_middle() -> Case:
    lines = _lines()
    lines.insert(3, GARBAGE.replace(b"\n", b""))  # line 4
    lines.insert(8, b"")  # an empty line: line 9
    lines.insert(9, b'{"type":"metrics","run_id":"bad-files","seq":"x","time":1}')  # line 10
    problems = [(4, "not valid JSON"), (9, "empty line"), (10, "'seq' must be a positive integer")]
    return lines, list(range(1, 11)), problems


def _torn_tail() -> Case:
    lines = _lines()
    return lines, list(range(1, 11)), [(12, "torn last line")]


@pytest.mark.parametrize(
    "case", [_out_of_order, _duplicated, _truncated_middle, _garbage_middle, _torn_tail]
)
def test_bad_lines_are_reported_by_number_and_the_rest_delivered(
    tmp_path: Path, case: Callable[[], Case]
) -> None:
    """Out-of-order, duplicated, truncated, garbage and torn lines are named; the rest arrive."""
    lines, delivered, problems = case()
    tail = _lines(11)[-1][:30] if case is _torn_tail else b""
    path = _write(tmp_path / "events.jsonl", lines, tail=tail)

    result = run_cli("replay", str(path), "sinks=[memory]")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    records = json_lines(result.stderr)
    skipped = [(r["line"], r["reason"]) for r in records if r.get("event") == "replay_skipped_line"]
    assert [line for line, _ in skipped] == [line for line, _ in problems]
    for (_, reason), (_, expected) in zip(skipped, problems, strict=True):
        assert expected in reason
    done = next(r for r in records if r.get("event") == "replay_done")
    assert done["events"] == len(delivered)
    assert done["skipped_lines"] == len(problems)

    memory = MemorySink()
    outcome = _replay(path, memory)
    assert [e.seq for e in memory.events] == delivered
    assert [p.line for p in outcome.problems] == [line for line, _ in problems]
    assert not outcome.complete


def _replay(path: Path, memory: MemorySink) -> ReplayOutcome:
    """Replay ``path`` into ``memory`` in this process, bounded in time."""

    async def go() -> ReplayOutcome:
        with anyio.fail_after(30):
            return await replay_log(path, [memory])

    return anyio.run(go)


def test_replaying_twice_into_the_same_sink_adds_nothing(tmp_path: Path) -> None:
    """A sink that already holds a log's events gets nothing new from a second replay."""
    path = _write(tmp_path / "events.jsonl", _lines())
    memory = MemorySink()
    first = _replay(path, memory)
    second = _replay(path, memory)
    assert first.complete
    assert second.complete
    assert [e.seq for e in memory.events] == list(range(1, 11))
