"""The wandb sink with the real client in offline mode: run files read back."""

from __future__ import annotations

import math
from pathlib import Path

import anyio
import pytest

from sinks.jsonl import JsonlSink
from sinks.wandb_sink import WandbOptions, WandbSink, resolve_mode
from telemetry.bus import Bus, RunInfo
from telemetry.events import Alert, ArtifactSaved, Hyperparameters, Metrics
from telemetry.reader import LogReader
from telemetry.replay import replay_log
from telemetry.sink import SinkContext
from tests.fakes.wandb_file import config, history, records, run_file


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _assert_history_matches_log(log_dir: Path, wandb_dir: Path) -> None:
    rows = history(run_file(wandb_dir))
    metrics = [e for e in LogReader(log_dir) if isinstance(e, Metrics)]
    assert metrics
    for event in metrics:
        matching = [r for r in rows if r.get(event.axis) == event.step]
        assert len(matching) == 1, (event.axis, event.step)
        for key, value in event.values.items():
            assert _same(float(matching[0][key]), float(value)), key


async def _record(run_dir: Path, sinks: list, steps: int = 30) -> Bus:
    async with Bus(
        "wb-run-1",
        [JsonlSink(run_dir / "events.jsonl", "wb-run-1"), *sinks],
        run=RunInfo(name="offline-test", project="tests", tags=("a",), notes="hello"),
        health_interval=None,
    ) as bus:
        bus.emit(Hyperparameters, values={"lr": 0.001, "layers": "[64, 64]"})
        for step in range(steps):
            loss = math.nan if step == 4 else 1.0 / (step + 1)
            bus.log(
                {"losses/value": loss, "fitness/best_ever": float(step)},
                step=step,
                axis="generation",
            )
            if step % 10 == 0:
                bus.log({"validation/fitness": step * 2.0}, step=step, axis="generation")
            bus.log({"info/kl": math.inf if step == 7 else 0.01}, step=step, axis="epoch")
    return bus


async def test_offline_run_file_holds_every_metric_of_the_log(tmp_path: Path) -> None:
    """Every metric value of the JSON Lines log is in the .wandb file at its step and axis."""
    context = SinkContext(run_id="wb-run-1", run_dir=tmp_path, run_name="offline-test")
    sink = WandbSink(context, WandbOptions())
    assert sink.mode == "offline"
    with anyio.fail_after(120):
        bus = await _record(tmp_path, [sink])
    assert bus.report is not None
    assert bus.report.undelivered == {}
    _assert_history_matches_log(tmp_path, tmp_path)
    saved = config(run_file(tmp_path))
    assert saved["lr"] == 0.001


async def test_same_step_scalars_go_out_in_one_row(tmp_path: Path) -> None:
    """Two metrics events of the same axis and step become one history row."""
    context = SinkContext(run_id="wb-run-1", run_dir=tmp_path, run_name="offline-test")
    with anyio.fail_after(120):
        await _record(tmp_path, [WandbSink(context, WandbOptions(max_latency=1.0))], steps=3)
    rows = [r for r in history(run_file(tmp_path)) if "generation" in r]
    first = next(r for r in rows if r["generation"] == 0)
    assert {"losses/value", "fitness/best_ever", "validation/fitness"} <= set(first)


async def test_replay_into_a_fresh_offline_run_gives_the_same_history(tmp_path: Path) -> None:
    """Replaying the log into wandb gives the history a live run would have had."""
    with anyio.fail_after(120):
        await _record(tmp_path, [])
        target = tmp_path / "replayed"
        context = SinkContext(run_id="wb-run-1", run_dir=target, run_name="offline-test")
        outcome = await replay_log(tmp_path, [WandbSink(context, WandbOptions())])
    assert outcome.complete
    _assert_history_matches_log(tmp_path, target)


async def test_artifacts_become_wandb_artifacts(tmp_path: Path) -> None:
    """A checkpoint artifact event is logged as a wandb artifact with its metadata."""
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"weights")
    context = SinkContext(run_id="wb-art", run_dir=tmp_path, run_name="art")
    with anyio.fail_after(120):
        async with Bus("wb-art", [WandbSink(context, WandbOptions())], health_interval=None) as bus:
            bus.emit(
                ArtifactSaved,
                name="erl best",
                path=str(checkpoint),
                kind="checkpoint",
                step=3,
                axis="generation",
                metadata={"fitness": 1.5, "generation": 3},
            )
    artifacts = [r.artifact for r in records(run_file(tmp_path)) if r.HasField("artifact")]
    assert len(artifacts) == 1
    assert artifacts[0].type == "checkpoint"
    assert "1.5" in artifacts[0].metadata


def test_mode_is_offline_without_credentials_and_follows_wandb_mode() -> None:
    """No API key means offline; WANDB_MODE and the option override it."""
    assert resolve_mode("auto", {}) == "offline"
    assert resolve_mode("auto", {"WANDB_API_KEY": "x" * 40}) == "online"
    assert resolve_mode("auto", {"WANDB_MODE": "disabled", "WANDB_API_KEY": "k"}) == "disabled"
    assert resolve_mode("offline", {"WANDB_MODE": "online"}) == "offline"


async def test_an_alert_becomes_a_wandb_alert(tmp_path: Path) -> None:
    """An alert event reaches the offline run file as wandb's own alert record."""
    context = SinkContext(run_id="wb-alert", run_dir=tmp_path, run_name="alert-test")
    sink = WandbSink(context, WandbOptions())
    with anyio.fail_after(120):
        async with Bus("wb-alert", [JsonlSink(tmp_path / "events.jsonl", "wb-alert"), sink]) as bus:
            bus.emit(Alert, title="reward dropped", text="by 60% over 10 steps", level="WARN")
    alerts = [
        r.alert for r in records(run_file(tmp_path)) if r.WhichOneof("record_type") == "alert"
    ]
    assert [(a.title, a.text, a.level) for a in alerts] == [
        ("reward dropped", "by 60% over 10 steps", "WARN")
    ]
