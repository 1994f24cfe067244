"""Helpers shared by the reliability tests: the CLI as a subprocess, and reading logs back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from telemetry.events import Event
from telemetry.reader import LogReader

ROOT = Path(__file__).resolve().parents[2]


def cli_env() -> dict[str, str]:
    """The environment for a CLI child: no wandb credentials, no colours, unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    return env


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python main.py ARGS`` in the repository root, bounded by ``timeout`` seconds."""
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=cli_env(),
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among the lines of a child's standard error (others ignored)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                parsed = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(parsed, dict):
                out.append(parsed)
    return out


def read_log(path: Path) -> tuple[LogReader, list[Event]]:
    """Every event of a log, and its reader (problems, torn tail, header)."""
    reader = LogReader(path)
    events = list(reader)
    return reader, events


def assert_no_gap(events: list[Event], first: int = 1) -> None:
    """``seq`` runs ``first, first + 1, ...`` without a gap or repeat."""
    seqs = [e.seq for e in events]
    assert seqs == list(range(first, first + len(seqs))), _first_break(seqs, first)


def _first_break(seqs: list[int], first: int) -> str:
    for i, seq in enumerate(seqs):
        if seq != first + i:
            return (
                f"expected seq {first + i} at index {i}, got {seq} (around {seqs[i - 2 : i + 3]})"
            )
    return "length differs"
