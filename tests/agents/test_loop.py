"""The trainer loop every trainer runs (agents.loop), driven by a counting trainer."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from agents import checkpoints
from agents.base import TrainResult, train_result
from agents.loop import Evaluated, Saved, StepRecord, TrainerLoop
from sinks.jsonl import JsonlSink
from sinks.memory import MemorySink
from telemetry.bus import Bus
from telemetry.errors import ConfigError
from telemetry.events import (
    ArtifactSaved,
    Evaluation,
    Hyperparameters,
    Metrics,
    SystemInfo,
    TradeClosed,
)
from telemetry.reader import LogReader


@dataclass
class CountConfig:
    """A config with one field, published as hyperparameters."""

    every: int = 2
    """A checkpoint is due after every this many steps."""


class Counter:
    """Counts steps; a checkpoint every ``every`` steps; records what the loop asked of it."""

    def __init__(self, bus: Bus, run_dir: Path, log: Path | None = None) -> None:
        self.config = CountConfig()
        self.run_dir = run_dir
        self.loop = TrainerLoop(bus, "count")
        self.done = 0
        self.log = log
        self.threads: set[int] = set()
        self.logged_at_save: list[list[int]] = []

    def begin(self) -> StepRecord:
        return StepRecord(self.done, {}, (Evaluated("opening", {"opening/x": 1.0}),))

    def step(self, last: bool) -> StepRecord:
        self.threads.add(threading.get_ident())
        step = self.done
        self.done += 1
        evaluations = (Evaluated("last", {"last/x": float(step)}),) if last else ()
        trade = (TradeClosed, _trade())
        due = self.done % self.config.every == 0
        return StepRecord(step, {"x": float(step)}, evaluations, (trade,), checkpoint=due)

    def save(self) -> Saved:
        if self.log is not None:
            steps = [e.step for e in LogReader(self.log) if isinstance(e, Metrics)]
            self.logged_at_save.append(steps)
        path = checkpoints.folder(self.run_dir) / f"count-{self.done}.pt"
        return Saved(checkpoints.save({"done": self.done}, path), {"done": self.done})

    async def train(self, num_episodes: int) -> TrainResult:
        return await self.loop.run(self, num_episodes)

    def result(self) -> TrainResult:
        return train_result(self.run_dir, self.done, {}, {"best": float("-inf")})


def _trade() -> dict[str, float | int]:
    return {
        "stock": 0,
        "direction": 1,
        "size": 1.0,
        "entry_price": 1.0,
        "exit_price": 2.0,
        "entry_step": 0,
        "exit_step": 1,
        "holding_duration": 1,
        "pnl": 1.0,
        "time_of_day": 0.5,
    }


async def test_two_trains_publish_the_start_once_and_checkpoint_when_due_and_at_the_end(
    tmp_path: Path,
) -> None:
    """3 then 0 then 2 steps: one start, steps 0-4, checkpoints after steps 1, 2, 3 and 4."""
    memory = MemorySink()
    with anyio.fail_after(30):
        async with Bus("loop", [memory], health_interval=None) as bus:
            counter = Counter(bus, tmp_path)
            await counter.train(3)
            await counter.train(0)
            result = await counter.train(2)
    assert len(memory.of_type(Hyperparameters)) == len(memory.of_type(SystemInfo)) == 1
    evaluations = [e for e in memory.of_type(Evaluation) if isinstance(e, Evaluation)]
    assert [(e.name, e.step, e.axis) for e in evaluations] == [
        ("opening", 0, "count"),
        ("last", 2, "count"),
        ("last", 4, "count"),
    ]
    assert [e.step for e in memory.of_type(Metrics) if isinstance(e, Metrics)] == [0, 1, 2, 3, 4]
    assert [e.step for e in memory.of_type(TradeClosed) if isinstance(e, TradeClosed)] == [
        0,
        1,
        2,
        3,
        4,
    ]
    saved = [e for e in memory.of_type(ArtifactSaved) if isinstance(e, ArtifactSaved)]
    assert [(e.name, e.step, e.kind, e.metadata["done"]) for e in saved] == [
        ("count-2", 1, "checkpoint", 2),
        ("count-3", 2, "checkpoint", 3),
        ("count-4", 3, "checkpoint", 4),
        ("count-5", 4, "checkpoint", 5),
    ]
    assert threading.get_ident() not in counter.threads  # every step ran off the event loop
    assert result.episodes == 5
    assert result.best == {}  # a record never set is left out


async def test_a_checkpoint_never_outruns_the_log(tmp_path: Path) -> None:
    """When save runs, the durable log already holds every step published so far."""
    log = tmp_path / "events.jsonl"
    with anyio.fail_after(30):
        async with Bus("loop", [JsonlSink(log, "loop")], health_interval=None) as bus:
            counter = Counter(bus, tmp_path, log)
            await counter.train(5)
    assert counter.logged_at_save == [[0, 1], [0, 1, 2, 3], [0, 1, 2, 3, 4]]


@pytest.mark.parametrize("episodes", [-1, True, 2.5, "3"])
async def test_episodes_must_be_a_whole_number(episodes: object, tmp_path: Path) -> None:
    """train() refuses anything but an integer >= 0, naming episodes."""
    async with Bus("loop", [], health_interval=None) as bus:
        with pytest.raises(ConfigError, match=r"^episodes must be an integer >= 0, got "):
            await Counter(bus, tmp_path).train(episodes)  # type: ignore[arg-type]
