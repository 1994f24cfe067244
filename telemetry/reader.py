"""Reading a JSON Lines log back: whole files for replay, and a tail for catching up."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from telemetry.codec import FORMAT_NAME, decode
from telemetry.errors import LogFormatError
from telemetry.events import Event

LOG_NAME = "events.jsonl"
"""The file name of a run's log inside its run folder."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A line of a log that could not be read, by its 1-based line number."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(slots=True)
class LogReader:
    """Yields the events of one log in file order and records every problem line.

    A torn last line (no newline, not valid JSON: the writer was killed mid-line)
    is skipped and noted in ``torn_tail``; any other bad line becomes a
    ``Problem`` and reading goes on. An event whose ``seq`` is not after the
    previous event's (a duplicated or out-of-order line) is a ``Problem`` too and
    is skipped: sinks never take a ``seq`` at or below one they hold, so such a
    line could not be delivered anyway. A file that is not a log at all, or whose
    schema is newer than this reader, raises ``LogFormatError`` before any event.
    """

    path: Path
    header: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    torn_tail: bool = False
    lines_read: int = 0

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = resolve_log_path(path)
        self.header = {}
        self.problems = []
        self.torn_tail = False
        self.lines_read = 0

    def __iter__(self) -> Iterator[Event]:
        with self.path.open("rb") as handle:
            self._read_header(handle)
            lineno = 1
            last_seq = 0
            for raw in handle:
                lineno += 1
                self.lines_read = lineno
                complete = raw.endswith(b"\n")
                text = raw.strip()
                if not text:
                    if complete:
                        self.problems.append(Problem(lineno, "empty line"))
                    continue
                try:
                    event = decode(text)
                except LogFormatError:
                    raise
                except (ValueError, TypeError) as exc:
                    if not complete:
                        self.torn_tail = True
                        self.problems.append(
                            Problem(lineno, "torn last line (writer stopped mid-line); skipped")
                        )
                    else:
                        self.problems.append(Problem(lineno, _reason(exc)))
                    continue
                if isinstance(event, dict):
                    self.problems.append(Problem(lineno, "second schema header; ignored"))
                    continue
                if event.seq <= last_seq:
                    self.problems.append(
                        Problem(
                            lineno,
                            f"seq {event.seq} is not after the previous seq {last_seq}; skipped",
                        )
                    )
                    continue
                last_seq = event.seq
                yield event

    def _read_header(self, handle: IO[bytes]) -> None:
        first = handle.readline()
        self.lines_read = 1
        if not first.strip():
            raise LogFormatError(f"{self.path} is empty: no schema header on line 1")
        try:
            parsed = decode(first.strip())
        except LogFormatError as exc:
            raise LogFormatError(f"{self.path} line 1: {exc}") from None
        except (ValueError, TypeError):
            raise LogFormatError(
                f"{self.path} is not a {FORMAT_NAME} log: line 1 is not its schema header"
            ) from None
        if not isinstance(parsed, dict) or parsed.get("format") != FORMAT_NAME:
            raise LogFormatError(
                f"{self.path} is not a {FORMAT_NAME} log: line 1 is not its schema header"
            )
        self.header = parsed


def resolve_log_path(path: str | os.PathLike[str]) -> Path:
    """A log file, or the log inside a run folder; raises ``LogFormatError`` naming it."""
    candidate = Path(path)
    if candidate.is_dir():
        candidate = candidate / LOG_NAME
    if not candidate.is_file():
        raise LogFormatError(f"no log at {candidate}: expected a run folder or a .jsonl file")
    return candidate


def _reason(exc: BaseException) -> str:
    if isinstance(exc, orjson.JSONDecodeError):
        return f"not valid JSON ({exc.msg})"
    return str(exc)


class LogTail:
    """Reads events appended to a growing log, from a byte offset at a line boundary."""

    __slots__ = ("_handle", "_partial", "offset", "problems")

    def __init__(self, path: Path, offset: int) -> None:
        self._handle = path.open("rb")
        self._handle.seek(offset)
        self._partial = b""
        self.offset = offset
        self.problems = 0

    def read(self, max_bytes: int = 1 << 20) -> list[Event]:
        """Decode every whole line written since the last call (at most ``max_bytes``)."""
        data = self._handle.read(max_bytes)
        if not data:
            return []
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        self.offset = self._handle.tell() - len(self._partial)
        events: list[Event] = []
        for raw in data[:cut].splitlines():
            try:
                event = decode(raw)
            except (ValueError, TypeError):
                self.problems += 1
                continue
            if not isinstance(event, dict):
                events.append(event)
        return events

    def close(self) -> None:
        self._handle.close()
