"""Reading logs back: torn last lines skipped, bad lines reported by number."""

from __future__ import annotations

from pathlib import Path

import pytest

from telemetry.codec import encode, header
from telemetry.errors import LogFormatError
from telemetry.events import Metrics
from telemetry.reader import LogReader


def _write_log(path: Path, count: int) -> list[bytes]:
    lines = [header("r", 0.0)] + [
        encode(Metrics(run_id="r", seq=i, time=1.0, step=i, axis="step", values={"x": i}))
        for i in range(1, count + 1)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return lines


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    """A last line cut mid-way is skipped and flagged; every whole line reads back."""
    path = tmp_path / "events.jsonl"
    lines = _write_log(path, 5)
    path.write_bytes(b"\n".join(lines) + b"\n" + lines[3][:17])
    reader = LogReader(path)
    assert [e.seq for e in reader] == [1, 2, 3, 4, 5]
    assert reader.torn_tail
    assert [p.line for p in reader.problems] == [7]


def test_malformed_lines_are_reported_by_number_and_the_rest_read(tmp_path: Path) -> None:
    """Garbage, unknown types and bad fields are reported with their line numbers."""
    path = tmp_path / "events.jsonl"
    lines = _write_log(path, 4)
    lines.insert(2, b"{not json")
    lines.insert(4, b'{"type":"mystery","run_id":"r","seq":9,"time":1}')
    lines.insert(
        5, b'{"type":"metrics","run_id":"r","seq":10,"time":1,"step":1,"values":{"x":"a"}}'
    )
    path.write_bytes(b"\n".join(lines) + b"\n")
    reader = LogReader(path)
    assert [e.seq for e in reader] == [1, 2, 3, 4]
    assert [p.line for p in reader.problems] == [3, 5, 6]
    assert "not valid JSON" in reader.problems[0].reason
    assert "mystery" in reader.problems[1].reason
    assert not reader.torn_tail


def test_future_schema_is_refused(tmp_path: Path) -> None:
    """A log written by a newer schema raises before yielding anything."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b'{"type":"schema","run_id":"r","seq":0,"time":0,"format":"rltelemetry.jsonl",'
        b'"schema_version":99}\n'
    )
    with pytest.raises(LogFormatError, match="schema_version 99"):
        list(LogReader(path))


@pytest.mark.parametrize("content", [b"", b"a,b,c\n1,2,3\n", b"\x00\xff\xfe garbage"])
def test_files_that_are_not_logs_are_refused(tmp_path: Path, content: bytes) -> None:
    """Empty files, CSV and binary garbage are named as not being logs."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(content)
    with pytest.raises(LogFormatError, match=str(path)):
        list(LogReader(path))


def test_a_run_folder_reads_its_log(tmp_path: Path) -> None:
    """Passing the run folder reads the events.jsonl inside it."""
    _write_log(tmp_path / "events.jsonl", 2)
    assert [e.seq for e in LogReader(tmp_path)] == [1, 2]
