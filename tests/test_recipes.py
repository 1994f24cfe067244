"""The README's recipes: a sink and a trainer added as one module and one registry line each."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from telemetry.events import Aggregate, Metrics, RunFinished
from telemetry.reader import LogReader

ROOT = Path(__file__).resolve().parents[1]

SINK_MODULE = '''
"""A sink that keeps what it receives and writes it to mine.json in the run folder at close."""

import json
from dataclasses import dataclass

from telemetry.events import Metrics
from telemetry.sink import Delivery, SinkContext


@dataclass(kw_only=True)
class MineOptions(Delivery):
    """The sink's own keys besides the delivery ones."""

    some_key: int = 1
    """Written back into mine.json, to show the sink got it."""

    def extra_checks(self) -> list[tuple[str, bool, str]]:
        return [("some_key", self.some_key >= 0, "0 or more")]


class MineSink:
    def __init__(self, context: SinkContext, options: MineOptions) -> None:
        self.name = "mine"
        self.path = context.run_dir / "mine.json"
        self.some_key = options.some_key
        self.seen = []

    async def open(self) -> None:
        pass

    async def write(self, batch) -> None:
        for event in batch:
            step = event.step if isinstance(event, Metrics) else None
            values = dict(event.values) if isinstance(event, Metrics) else None
            self.seen.append({"type": type(event).__name__, "seq": event.seq, "step": step,
                              "values": values})

    async def close(self, timeout: float) -> None:
        self.path.write_text(json.dumps({"some_key": self.some_key, "events": self.seen}))


OPTIONS = MineOptions


def build(context: SinkContext, options: MineOptions) -> MineSink:
    return MineSink(context, options)
'''

TRAINER_MODULE = '''
"""A trainer that logs one reward per round."""

from dataclasses import dataclass
from pathlib import Path

from agents.base import TrainerSpec, TrainResult
from telemetry.bus import Bus
from telemetry.errors import ConfigError


@dataclass
class ToyConfig:
    """The toy trainer's settings."""

    reward: float = 1.0
    """Reward logged every round, times the round number."""

    def validate(self) -> None:
        if self.reward < 0:
            raise ConfigError(f"toy.reward must be 0 or more, got {self.reward}")


class ToyTrainer:
    def __init__(self, config: ToyConfig, bus: Bus, run_dir: Path, seed: int) -> None:
        self.config, self.bus, self.run_dir = config, bus, run_dir

    async def train(self, num_episodes: int) -> TrainResult:
        for round_ in range(num_episodes):
            self.bus.log({"toy/reward": self.config.reward * round_}, step=round_, axis="round")
        return TrainResult(run_dir=self.run_dir, episodes=num_episodes)


SPEC = TrainerSpec(config=ToyConfig, build=ToyTrainer, episodes=4, axis="round")
'''

# The one line of each recipe, added at run time instead of in the registry modules.
RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
from agents.registry import TRAINERS
from sinks.registry import SINKS
SINKS["mine"] = "tmp_sink"
TRAINERS["toy"] = "tmp_trainer"
import main
sys.exit(main.cli(sys.argv[2:]))
"""


@pytest.fixture
def modules(tmp_path: Path) -> Path:
    """A folder holding the new sink's and the new trainer's modules."""
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / "tmp_sink.py").write_text(textwrap.dedent(SINK_MODULE))
    (folder / "tmp_trainer.py").write_text(textwrap.dedent(TRAINER_MODULE))
    return folder


def _cli(modules: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(modules), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_added_sink_and_trainer_run_from_the_cli(modules: Path, tmp_path: Path) -> None:
    """The new sink gets its own key and every event of the new trainer; the log has them too."""
    out = tmp_path / "runs"
    result = _cli(
        modules, "train", "trainer=toy", "sinks=[mine]", "mine.some_key=3", "toy.reward=2.5",
        "episodes=2", f"out={out}", "health_interval=0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (run_dir,) = out.iterdir()
    received = json.loads((run_dir / "mine.json").read_text())
    assert received["some_key"] == 3
    metrics = [(e["step"], e["values"]) for e in received["events"] if e["type"] == "Metrics"]
    assert metrics == [(0, {"toy/reward": 0.0}), (1, {"toy/reward": 2.5})]
    log = list(LogReader(run_dir))
    assert [e["seq"] for e in received["events"]] == [e.seq for e in log]
    assert [e.axis for e in log if isinstance(e, Metrics)] == ["round", "round"]
    assert isinstance(log[-1], RunFinished)
    assert log[-1].status == "finished"


def test_added_trainer_defaults_come_from_its_spec(modules: Path, tmp_path: Path) -> None:
    """Without ``episodes`` the trainer's SPEC decides how many; the aggregate axis is its own."""
    out = tmp_path / "runs"
    result = _cli(
        modules, "train", "trainer=toy", "sinks=[mine]", f"out={out}", "aggregate.every=2"
    )
    assert result.returncode == 0, result.stderr
    (run_dir,) = out.iterdir()
    events = list(LogReader(run_dir))
    assert [e.step for e in events if isinstance(e, Metrics)] == [0, 1, 2, 3]
    assert {e.axis for e in events if isinstance(e, Aggregate)} == {"round"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("mine.some_kye=3", "unknown key 'mine.some_kye'; did you mean 'mine.some_key'?"),
        ("mine.some_key=-1", "mine.some_key must be 0 or more, got -1"),
        ("mine.some_key=abc", "mine.some_key: Value 'abc'"),
        ("toy.rewrd=1", "unknown key 'toy.rewrd'; did you mean 'toy.reward'?"),
        ("toy.reward=-1", "toy.reward must be 0 or more, got -1.0"),
    ],
)
def test_added_sections_are_checked(modules: Path, override: str, message: str) -> None:
    """A bad key or value of the new sink or trainer is named, with status 2 and one line."""
    result = _cli(modules, "train", "trainer=toy", "sinks=[mine]", override)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_added_sections_are_listed_by_help(modules: Path) -> None:
    """``train --help`` lists the new sink's and trainer's keys with their defaults."""
    result = _cli(modules, "train", "--help")
    assert result.returncode == 0, result.stderr
    for line in ("mine.some_key = 1", "mine.capacity = 10000", "toy.reward = 1.0"):
        assert line in result.stdout


def test_unknown_names_list_the_added_ones(modules: Path) -> None:
    """An unknown trainer or sink name lists the added names among the known ones."""
    result = _cli(modules, "train", "trainer=nope")
    assert result.returncode == 2
    assert "trainer must be one of erl, ppo, amp, toy, got 'nope'" in result.stderr
    result = _cli(modules, "train", "trainer=toy", "sinks=[nope]")
    assert result.returncode == 2
    assert "known sinks: console, jsonl, memory, mine, redis, tensorboard, wandb" in result.stderr
