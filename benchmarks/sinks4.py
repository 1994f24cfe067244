"""The four real sinks as a run would configure them, in one folder."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sinks.console import ConsoleOptions, ConsoleSink
from sinks.jsonl import JsonlSink
from sinks.memory import MemorySink
from sinks.settings import sidecar_sink
from sinks.tensorboard_sink import TensorBoardOptions, TensorBoardSink
from sinks.wandb_sink import WandbOptions, WandbSink
from telemetry.sink import Sink, SinkContext


def run_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def jsonl(folder: Path, rid: str) -> JsonlSink:
    """The durable log with its defaults (fsync group commit every 0.2 s)."""
    return JsonlSink(folder / "events.jsonl", rid)


def console(stream: Any) -> ConsoleSink:
    """The console in JSON format, one line per step (``every=1``, the default)."""
    return ConsoleSink(ConsoleOptions(format="json"), stream=stream)


def tensorboard(folder: Path) -> TensorBoardSink:
    return TensorBoardSink(folder / "tensorboard")


def wandb(folder: Path, rid: str) -> WandbSink:
    """wandb in offline mode, its files under ``folder``."""
    context = SinkContext(run_id=rid, run_dir=folder, run_name=rid)
    return WandbSink(context, WandbOptions(mode="offline", dir=str(folder / "wandb")))


def all_four(folder: Path, rid: str, stream: Any) -> list[Sink]:
    """JSON Lines, console (json to ``stream``), TensorBoard and wandb (offline)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [jsonl(folder, rid), console(stream), tensorboard(folder), wandb(folder, rid)]


def with_sidecar(folder: Path, rid: str) -> list[Sink]:
    """JSON Lines in this process; console, TensorBoard and wandb (offline) as in
    ``all_four``, in a sidecar process that follows the log, where ``sidecar.default=sidecar``
    puts them (the console prints to the sidecar's standard error: see ``quiet_stderr``)."""
    folder.mkdir(parents=True, exist_ok=True)
    context = SinkContext(run_id=rid, run_dir=folder, run_name=rid)
    moved = {
        "console": ConsoleOptions(format="json"),
        "tensorboard": TensorBoardOptions(),
        "wandb": WandbOptions(mode="offline", dir=str(folder / "wandb")),
    }
    return [jsonl(folder, rid), sidecar_sink(context, moved)]


def for_kind(kind: str, folder: Path, stream: Any) -> list[Sink]:
    """The sinks of a placement the training benchmarks compare, for a run in ``folder`` (its
    name the run id): ``all`` four in process, ``side`` (console, TensorBoard and wandb in the
    sidecar), ``log`` (the log alone: what stays in the training process with the sidecar);
    anything else is the memory sink only."""
    if kind == "all":
        return all_four(folder, folder.name, stream)
    if kind == "side":
        return with_sidecar(folder, folder.name)
    if kind == "log":
        return [jsonl(folder, folder.name), MemorySink()]
    return [MemorySink()]
