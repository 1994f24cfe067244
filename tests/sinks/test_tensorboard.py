"""TensorBoard: real event files read back by TensorBoard, one event per step, hparams, notes."""

from __future__ import annotations

import math
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from tensorboard import context as tb_context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_accumulator import (
    SCALARS,
    TENSORS,
    EventAccumulator,
)
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto.event_pb2 import Event as EventProto
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import (
    api_pb2,
    backend_context,
    get_experiment,
    list_session_groups,
)
from tensorboard.plugins.hparams import metadata as hparams_metadata

from sinks.jsonl import JsonlSink
from sinks.registry import sink_spec
from sinks.tensorboard_sink import TensorBoardOptions, TensorBoardSink
from telemetry.bus import Bus, RunInfo
from telemetry.errors import ConfigError, SinkUnavailableError
from telemetry.events import ArtifactSaved, Event, Hyperparameters, Metrics
from telemetry.reader import LogReader
from telemetry.sink import Sink, SinkContext


def _accumulator(log_dir: Path) -> EventAccumulator:
    """TensorBoard's own reader over every event file of ``log_dir``, keeping everything."""
    accumulator = EventAccumulator(str(log_dir), size_guidance={SCALARS: 0, TENSORS: 0})
    accumulator.Reload()
    return accumulator


def _raw_events(log_dir: Path) -> list[Any]:
    """The Event protos exactly as stored, before TensorBoard migrates them."""
    events = []
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        events += [EventProto.FromString(raw) for raw in RawEventFileLoader(str(path)).Load()]
    return events


def _f32(value: float) -> float:
    """``value`` as TensorBoard stores a scalar: a 32-bit float."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _metrics(seq: int, step: int, keys: int = 6) -> Metrics:
    values = {f"episode/m{i}": step + i / 10 for i in range(keys)}
    return Metrics(run_id="r", seq=seq, time=1000.0 + seq, step=step, axis="episode", values=values)


async def test_every_logged_value_is_in_tensorboard_at_its_step(tmp_path: Path) -> None:
    """~50 metrics events on two axes, NaN and inf included, read back equal from both logs."""
    tb_dir = tmp_path / "tensorboard"
    sinks: list[Sink] = [JsonlSink(tmp_path / "events.jsonl", "r"), TensorBoardSink(tb_dir)]
    special = [math.nan, math.inf, -math.inf]
    with anyio.fail_after(60):
        async with Bus("r", sinks, run=RunInfo(name="rt"), health_interval=None) as bus:
            for step in range(30):
                odd = special[step % 3] if step % 7 == 3 else step * 0.37
                bus.log(
                    {"reward/total": odd, "loss/policy": 1 / (step + 1), "len": step * 3},
                    step=step,
                    axis="episode",
                )
                if step % 10 == 0:
                    await anyio.sleep(0.01)
            for step in range(20):
                worst = math.nan if step == 5 else -(step**2) * 1.1
                bus.log({"fitness/mean": step * 0.5, "fitness/min": worst}, step=step, axis="gen")
    assert bus.report is not None
    assert bus.report.undelivered == {}

    logged = [e for e in LogReader(tmp_path / "events.jsonl") if isinstance(e, Metrics)]
    assert len(logged) == 50
    accumulator = _accumulator(tb_dir)
    in_tb = {
        tag: {s.step: s for s in accumulator.Scalars(tag)} for tag in accumulator.Tags()["scalars"]
    }
    checked = 0
    for event in logged:
        for key, value in event.values.items():
            point = in_tb[key][event.step]
            assert _same(point.value, _f32(value)), (key, event.step, point.value, value)
            assert point.wall_time == event.time
            checked += 1
    assert checked == 30 * 3 + 20 * 2
    assert any(math.isnan(s.value) for s in in_tb["reward/total"].values())
    assert {s.value for s in in_tb["reward/total"].values()} >= {math.inf, -math.inf}


async def test_one_event_per_step_and_repeated_seqs_are_skipped(tmp_path: Path) -> None:
    """Each metrics event is one file event with all its scalars; a repeated seq is skipped."""
    sink = TensorBoardSink(tmp_path)
    await sink.open()
    await sink.write([_metrics(seq, seq - 1) for seq in range(1, 21)])
    await sink.write([_metrics(seq, seq - 1) for seq in range(11, 41)])  # 11-20 again
    await sink.close(5.0)

    scalar_events = [
        e for e in _raw_events(tmp_path) if any(v.HasField("simple_value") for v in e.summary.value)
    ]
    assert len(scalar_events) == 40
    assert [e.step for e in scalar_events] == list(range(40))
    assert all(len(e.summary.value) == 6 for e in scalar_events)


async def test_hyperparameters_notes_and_artifacts_are_written(tmp_path: Path) -> None:
    """Hyperparameters become the hparams session start; run notes and artifacts become text."""
    run = RunInfo(name="demo", project="proj", tags=("ablation", "v2"), group="g1", notes="why")
    hparams = {"lr": 3e-4, "clip": True, "optimizer": "adam", "layers": [64, 64], "off": None}
    with anyio.fail_after(60):
        async with Bus("r", [TensorBoardSink(tmp_path)], run=run, health_interval=None) as bus:
            bus.emit(Hyperparameters, values=hparams)
            bus.log({"reward": 1.0}, step=0)
            bus.emit(
                ArtifactSaved,
                name="policy",
                kind="checkpoint",
                path="ckpt/policy-0.pt",
                step=0,
                axis="step",
                metadata={"bytes": 1234},
            )
    accumulator = _accumulator(tmp_path)

    content = accumulator.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    assert hparams_metadata.EXPERIMENT_TAG not in content
    start = hparams_metadata.parse_session_start_info_plugin_data(
        content[hparams_metadata.SESSION_START_INFO_TAG]
    )
    assert start.hparams["lr"].number_value == 3e-4
    assert start.hparams["clip"].bool_value is True
    assert start.hparams["optimizer"].string_value == "adam"
    assert start.hparams["layers"].string_value == "[64, 64]"
    assert "off" not in start.hparams
    end = hparams_metadata.parse_session_end_info_plugin_data(
        content[hparams_metadata.SESSION_END_INFO_TAG]
    )
    assert end.status == api_pb2.STATUS_SUCCESS

    assert set(accumulator.PluginTagToContent("text")) >= {"run/notes", "artifacts/policy"}
    notes = _text(accumulator, "run/notes")
    for expected in ("demo", "proj", "g1", "ablation, v2", "why"):
        assert expected in notes
    artifact = _text(accumulator, "artifacts/policy")
    assert "ckpt/policy-0.pt" in artifact
    assert "checkpoint" in artifact
    assert "| bytes | 1234 |" in artifact


def _text(accumulator: EventAccumulator, tag: str) -> str:
    (event,) = accumulator.Tensors(tag)
    return bytes(event.tensor_proto.string_val[0]).decode("utf-8")


async def test_hparams_tab_compares_runs_with_different_keys(tmp_path: Path) -> None:
    """TensorBoard's hparams backend lists both runs, all their hyperparameters and metrics."""
    runs = {"a": ({"lr": 0.1, "gae": True}, "loss"), "b": ({"lr": 0.2, "gamma": 0.9}, "reward")}
    with anyio.fail_after(60):
        for name, (values, metric) in runs.items():
            sink = TensorBoardSink(tmp_path / name)
            async with Bus(name, [sink], run=RunInfo(name=name), health_interval=None) as bus:
                bus.emit(Hyperparameters, values=values)
                for step in range(3):
                    bus.log({metric: step * 2.0}, step=step)

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(tmp_path))
    hparams = backend_context.Context(
        base_plugin.TBContext(logdir=str(tmp_path), data_provider=provider, multiplexer=mux)
    )
    request = tb_context.RequestContext()
    experiment = get_experiment.Handler(request, hparams, "", api_pb2.GetExperimentRequest()).run()
    assert {h.name for h in experiment.hparam_infos} == {"lr", "gae", "gamma"}
    assert {"loss", "reward"} <= {m.name.tag for m in experiment.metric_infos}

    statuses = list(api_pb2.Status.values())
    listing = api_pb2.ListSessionGroupsRequest(slice_size=10, allowed_statuses=statuses)
    groups = list_session_groups.Handler(request, hparams, "", listing).run().session_groups
    by_run = {g.name: g for g in groups}
    assert set(by_run) == {"a", "b"}
    assert by_run["b"].hparams["gamma"].number_value == 0.9
    assert by_run["a"].hparams["gae"].bool_value is True
    last = {v.name.tag: v.value for v in by_run["b"].metric_values}
    assert last["reward"] == 4.0
    assert by_run["a"].sessions[0].status == api_pb2.STATUS_SUCCESS


class _ThreadRecordingSink(TensorBoardSink):
    """Records the thread of each blocking write and takes ``delay`` seconds over it."""

    def __init__(self, log_dir: Path, delay: float = 0.0) -> None:
        super().__init__(log_dir)
        self.delay = delay
        self.threads: list[threading.Thread] = []

    def _write_blocking(self, batch: Sequence[Event]) -> None:
        self.threads.append(threading.current_thread())
        time.sleep(self.delay)
        super()._write_blocking(batch)


async def test_writes_run_in_a_worker_thread_and_leave_the_loop_free(tmp_path: Path) -> None:
    """A batch is written in one worker-thread call while the event loop keeps running."""
    sink = _ThreadRecordingSink(tmp_path, delay=0.3)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    with anyio.fail_after(30):
        await sink.open()
        async with anyio.create_task_group() as tg:
            tg.start_soon(tick)
            await sink.write([_metrics(seq, seq) for seq in range(1, 101)])
            tg.cancel_scope.cancel()
        await sink.close(5.0)
    assert len(sink.threads) == 1
    assert sink.threads[0] is not threading.main_thread()
    assert ticks >= 10


async def test_close_gives_up_on_a_stuck_flush(tmp_path: Path) -> None:
    """A close that hangs in its worker thread returns at its deadline."""
    release = threading.Event()

    class StuckClose(TensorBoardSink):
        def _close(self) -> None:
            release.wait(30)
            super()._close()

    sink = StuckClose(tmp_path)
    await sink.open()
    try:
        started = time.monotonic()
        with anyio.fail_after(10):
            await sink.close(0.2)
        assert time.monotonic() - started < 2.0
    finally:
        release.set()


async def test_unwritable_folder_is_named(tmp_path: Path) -> None:
    """A log folder that cannot be created fails open with its path in the message."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    sink = TensorBoardSink(blocker / "tensorboard")
    with pytest.raises(SinkUnavailableError, match=str(blocker / "tensorboard")):
        await sink.open()


def test_registered_and_built_inside_the_run_folder(tmp_path: Path) -> None:
    """``sinks=[tensorboard]`` builds a sink writing to ``<run folder>/<subdir>``."""
    spec = sink_spec("tensorboard")
    assert spec.options is TensorBoardOptions
    context = SinkContext(run_id="r", run_dir=tmp_path, run_name="n")
    sink = spec.build(context, TensorBoardOptions(subdir="tb/main"))
    assert isinstance(sink, TensorBoardSink)
    assert sink.name == "tensorboard"
    assert sink.log_dir == tmp_path / "tb" / "main"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        (TensorBoardOptions(subdir=""), "subdir"),
        (TensorBoardOptions(subdir="/abs/tb"), "subdir"),
        (TensorBoardOptions(subdir="../outside"), "subdir"),
        (TensorBoardOptions(capacity=0), "capacity"),
    ],
)
def test_invalid_options_name_the_key(options: TensorBoardOptions, key: str) -> None:
    """Validation raises ConfigError naming ``tensorboard.<key>``."""
    with pytest.raises(ConfigError, match=rf"^tensorboard\.{key} must be"):
        options.validate("tensorboard")


def test_default_options_are_valid() -> None:
    TensorBoardOptions().validate("tensorboard")
