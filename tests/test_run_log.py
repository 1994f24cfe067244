"""Every run writes the durable log, whatever ``sinks`` lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from telemetry.events import RunFinished, RunStarted
from telemetry.reader import LOG_NAME, LogReader
from tests.reliability.common import json_lines, run_cli


@pytest.mark.parametrize(
    "sinks",
    [
        ["sinks=[wandb]", "wandb.mode=offline"],
        ["sinks=[console]", "console.format=json"],
        ["sinks=[console,jsonl]", "console.format=json"],
    ],
    ids=["wandb", "console", "console-and-jsonl"],
)
def test_the_log_holds_every_event_whatever_sinks_lists(sinks: list[str], tmp_path: Path) -> None:
    """A run without jsonl in ``sinks`` still succeeds and its log holds every published event."""
    result = run_cli("train", "trainer=ppo", "episodes=1", f"out={tmp_path}", *sinks)
    assert result.returncode == 0, result.stderr
    assert "durable log" not in result.stderr
    (run_dir,) = tmp_path.iterdir()
    reader = LogReader(run_dir / LOG_NAME)
    events = list(reader)
    assert not reader.problems
    (saved,) = [e for e in json_lines(result.stdout + result.stderr) if e["event"] == "run_saved"]
    assert [e.seq for e in events] == list(range(1, saved["events"] + 1))
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunFinished)
    assert events[-1].status == "finished"


def test_the_log_section_applies_when_sinks_does_not_list_it() -> None:
    """``jsonl.*`` is checked even when ``sinks`` leaves the log out: the run writes it anyway."""
    result = run_cli("train", "sinks=[console]", "jsonl.overflow=spill")
    assert result.returncode == 2
    assert "jsonl.overflow must be block" in result.stderr
