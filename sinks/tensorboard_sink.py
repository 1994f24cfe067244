"""TensorBoard event files: one event per step with all its scalars, hyperparameters, run notes.

Written with TensorBoard's own protos (``Event``, ``Summary``, the hparams and
text plugins' metadata) and framed by ``sinks/tfevents.py``: a batch of events
goes to the file in one write, with a C CRC32C, where ``SummaryWriter`` pays
about 90 µs per scalar. The scalars of one step go out as one event
(``SummaryWriter.add_scalar`` writes one event per scalar, ``add_scalars`` one
folder per key). The files are read by TensorBoard itself,
``tensorboard --logdir runs``.

What each event becomes (``step`` and ``wall_time`` are the event's own):

- ``Metrics``, ``Evaluation``, ``Aggregate``, ``Health``: one event whose
  ``Summary`` has one ``simple_value`` per key, tagged with the key as it is
  (``fitness/mean``, ``<metric>/<stat>``, ``telemetry/...``). TensorBoard keeps
  scalars as 32-bit floats; NaN and infinities are kept.
- ``Hyperparameters``: the hparams plugin's session start info (values as
  number, string or bool; ``None`` left out), so the run is a row of the
  HPARAMS tab. ``RunFinished`` writes the session end info with its status
  (none when interrupted: a resumed run's own end is the one that counts).
  No experiment summary is written: the plugin takes the first one it finds
  in *any* run of the log folder as the column list of *every* run, so one
  run's experiment would hide the others' hyperparameters and metrics.
  Without one, the plugin derives the hyperparameter columns from all runs'
  session start infos and the metric columns from every scalar tag of those
  runs, which is what comparing runs needs.
- ``RunStarted``: a markdown text under ``run/notes`` (name, project, group,
  tags, notes); ``SystemInfo`` a table under ``run/system_info``;
  ``RunFinished`` its status under ``run/status``; ``ArtifactSaved`` a table
  (path, kind, metadata) under ``artifacts/<name>`` at its step, except kind
  ``image`` (a PNG, such as a model analysis's view): an image summary of the
  file's bytes under ``analysis/<view>`` (``metadata["view"]``, else the name).

TensorBoard keeps the first session start and end of a run folder, so a
resumed run keeps the hyperparameters and status of its first session.
"""

from __future__ import annotations

import functools
import math
import os
import struct
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import anyio

from sinks.tfevents import EventFile
from telemetry.errors import SinkUnavailableError
from telemetry.events import (
    SCALAR_EVENTS,
    ArtifactSaved,
    Event,
    Hyperparameters,
    Param,
    RunFinished,
    RunStarted,
    SystemInfo,
)
from telemetry.sink import Delivery, SinkContext, fresh
from telemetry.values import Scalar

NOTES_TAG = "run/notes"
"""Text tag of the run's name, project, group, tags and notes."""
SYSTEM_TAG = "run/system_info"
"""Text tag of the machine's versions and resources."""
STATUS_TAG = "run/status"
"""Text tag of how the run ended."""
ARTIFACT_PREFIX = "artifacts/"
"""Text tags of saved artifacts: ``artifacts/<name>``."""
IMAGE_PREFIX = "analysis/"
"""Image tags of image artifacts with a ``view`` (a model analysis): ``analysis/<view>``."""
_PNG = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> channels (grey, RGB, grey+alpha, RGBA)


@dataclass(kw_only=True)
class TensorBoardOptions(Delivery):
    """Settings of the TensorBoard sink."""

    subdir: str = "tensorboard"
    """Folder inside the run folder that holds the event files."""
    max_latency: float = 0.5
    """TensorBoard reloads its files every few seconds: fewer, larger writes cost less."""

    def extra_checks(self) -> list[tuple[str, bool, str]]:
        path = PurePath(self.subdir)
        inside = bool(self.subdir) and not path.is_absolute() and ".." not in path.parts
        return [
            ("subdir", inside, "a relative folder inside the run folder"),
        ]


class TensorBoardSink:
    """Writes a run's events as TensorBoard event files in ``log_dir``.

    Each batch is converted and written in one worker-thread call, with one
    ``os.write``: what a batch wrote is in the file (the OS's cache) when
    ``write`` returns. A failed write leaves no part of its batch behind.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        options: TensorBoardOptions | None = None,
        name: str = "tensorboard",
    ) -> None:
        self.name = name
        self.log_dir = Path(log_dir)
        self.options = options or TensorBoardOptions()
        self._file: EventFile | None = None
        self._lock = threading.Lock()
        self._last_seq = 0
        self._session_started = False

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self._open)

    def _open(self) -> None:
        tb = _tensorboard()  # imported here: seconds of import, off the event loop
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            file = EventFile(self.log_dir, tb.Event)
        except OSError as exc:
            raise self._unavailable(exc) from exc
        with self._lock:
            self._file = file

    def _unavailable(self, exc: OSError) -> SinkUnavailableError:
        reason = exc.strerror or str(exc)
        return SinkUnavailableError(f"cannot write TensorBoard files in {self.log_dir}: {reason}")

    async def write(self, batch: Sequence[Event]) -> None:
        await anyio.to_thread.run_sync(self._write_blocking, batch)

    def _write_blocking(self, batch: Sequence[Event]) -> None:
        """Convert and write a batch; runs in a worker thread."""
        with self._lock:
            file = self._file
            if file is None:
                raise SinkUnavailableError(f"the TensorBoard file in {self.log_dir} is closed")
            new = fresh(batch, self._last_seq)
            if not new:
                return
            records: list[bytes] = []
            for event in new:
                self._convert(event, records)
            try:
                file.append(records)
            except OSError as exc:
                raise self._unavailable(exc) from exc
            self._last_seq = new[-1].seq  # a retried batch skips what went out

    def _convert(self, event: Event, out: list[bytes]) -> None:
        """Append the serialised ``Event`` protos of ``event`` to ``out`` (none, one or two)."""
        if isinstance(event, SCALAR_EVENTS):
            if event.values:
                out.append(_scalar_event(event.values, event.step, event.time))
        elif isinstance(event, Hyperparameters):
            if not self._session_started:
                out.append(_event(_session_start(event.values, event.time), 0, event.time))
                self._session_started = True
        elif isinstance(event, RunStarted):
            out.append(_event(_text(NOTES_TAG, _notes(event)), 0, event.time))
        elif isinstance(event, SystemInfo):
            out.append(_event(_text(SYSTEM_TAG, _table(event.values)), 0, event.time))
        elif isinstance(event, ArtifactSaved) and (png := _png(event)) is not None:
            view = event.metadata.get("view")
            tag = IMAGE_PREFIX + str(view) if view is not None else event.name
            out.append(_event(_image(tag, png), event.step, event.time))
        elif isinstance(event, ArtifactSaved):
            tag = ARTIFACT_PREFIX + event.name
            out.append(_event(_text(tag, _artifact(event)), event.step, event.time))
        elif isinstance(event, RunFinished):
            status = event.status + (f": {event.error}" if event.error else "")
            out.append(_event(_text(STATUS_TAG, status), 0, event.time))
            if self._session_started and event.status in _STATUS:
                out.append(_event(_session_end(event.status, event.time), 0, event.time))

    async def close(self, timeout: float) -> None:
        # Abandoned on cancel: a flush stuck on a hung disk cannot hold the bus's close.
        with anyio.move_on_after(timeout):
            await anyio.to_thread.run_sync(self._close, abandon_on_cancel=True)

    def _close(self) -> None:
        with self._lock:
            file, self._file = self._file, None
            if file is not None:
                file.close()


class _TensorBoard:
    """What the sink uses from torch and TensorBoard.

    Imported on first open, in a worker thread: TensorBoard's protos and
    plugins take a while to import, and main.py imports this module on every start.
    """

    def __init__(self) -> None:
        from tensorboard.compat.proto import (  # type: ignore[import-untyped]
            event_pb2,
            summary_pb2,
            tensor_pb2,
            types_pb2,
        )
        from tensorboard.plugins.hparams import (  # type: ignore[import-untyped]
            api_pb2,
            plugin_data_pb2,
        )
        from tensorboard.plugins.hparams import (
            metadata as hparams_metadata,
        )
        from tensorboard.plugins.text import (  # type: ignore[import-untyped]
            metadata as text_metadata,
        )

        self.Event: Any = event_pb2.Event
        self.Summary: Any = summary_pb2.Summary
        self.TensorProto: Any = tensor_pb2.TensorProto
        self.DT_STRING: Any = types_pb2.DT_STRING
        self.Status: Any = api_pb2.Status
        self.plugin_data: Any = plugin_data_pb2
        self.hparams: Any = hparams_metadata
        self.text_metadata: Any = text_metadata.create_summary_metadata("", "")


@functools.cache
def _tensorboard() -> _TensorBoard:
    return _TensorBoard()


def _scalar_event(values: Mapping[str, Scalar], step: int, wall_time: float) -> bytes:
    """One serialised ``Event`` whose ``Summary`` holds every scalar of a step."""
    event = _tensorboard().Event(wall_time=wall_time, step=step)
    add = event.summary.value.add
    for key, value in values.items():
        add(tag=key, simple_value=value)
    data: bytes = event.SerializeToString()
    return data


def _event(summary: Any, step: int, wall_time: float) -> bytes:
    data: bytes = (
        _tensorboard().Event(wall_time=wall_time, step=step, summary=summary).SerializeToString()
    )
    return data


def _png(event: ArtifactSaved) -> bytes | None:
    """The bytes of an image artifact's PNG file; None for other kinds or an unreadable file
    (then the artifact is written as the usual text table)."""
    if event.kind != "image":
        return None
    try:
        data = Path(event.path).read_bytes()
    except OSError:
        return None
    return data if data[:8] == _PNG and len(data) > 26 and data[25] in _CHANNELS else None


def _image(tag: str, png: bytes) -> Any:
    """An image ``Summary``: the PNG's bytes as they are, its size from its header."""
    tb = _tensorboard()
    width, height = struct.unpack(">II", png[16:24])
    image = tb.Summary.Image(
        height=height, width=width, colorspace=_CHANNELS[png[25]], encoded_image_string=png
    )
    return tb.Summary(value=[tb.Summary.Value(tag=tag, image=image)])


def _text(tag: str, markdown: str) -> Any:
    """A text-plugin ``Summary``: one markdown string under ``tag``."""
    tb = _tensorboard()
    tensor = tb.TensorProto(dtype=tb.DT_STRING, string_val=[markdown.encode("utf-8")])
    return tb.Summary(value=[tb.Summary.Value(tag=tag, metadata=tb.text_metadata, tensor=tensor)])


_STATUS = {"finished": "STATUS_SUCCESS", "stopped": "STATUS_SUCCESS", "failed": "STATUS_FAILURE"}
"""Session end status of each run status; an interrupted run may be resumed, so it gets none."""


def _session_start(values: Mapping[str, Param], start_time: float) -> Any:
    """The hparams plugin's session start info: the run's hyperparameter values."""
    tb = _tensorboard()
    info = tb.plugin_data.SessionStartInfo(start_time_secs=start_time)
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):  # before int: a bool is an int
            info.hparams[key].bool_value = value
        elif isinstance(value, (int, float)) and math.isfinite(value):
            info.hparams[key].number_value = float(value)
        else:  # strings, and NaN or infinity, which the plugin's JSON cannot carry
            info.hparams[key].string_value = str(value)
    data = tb.plugin_data.HParamsPluginData(session_start_info=info)
    return _hparams_summary(tb.hparams.SESSION_START_INFO_TAG, data)


def _session_end(status: str, end_time: float) -> Any:
    """The hparams plugin's session end info: how the run ended."""
    tb = _tensorboard()
    info = tb.plugin_data.SessionEndInfo(
        status=tb.Status.Value(_STATUS[status]), end_time_secs=end_time
    )
    data = tb.plugin_data.HParamsPluginData(session_end_info=info)
    return _hparams_summary(tb.hparams.SESSION_END_INFO_TAG, data)


def _hparams_summary(tag: str, data: Any) -> Any:
    tb = _tensorboard()
    metadata = tb.hparams.create_summary_metadata(data)
    value = tb.Summary.Value(tag=tag, metadata=metadata, tensor=tb.hparams.NULL_TENSOR)
    return tb.Summary(value=[value])


def _notes(event: RunStarted) -> str:
    rows: dict[str, Param] = {"name": event.name, "project": event.project}
    if event.group:
        rows["group"] = event.group
    if event.tags:
        rows["tags"] = ", ".join(event.tags)
    if event.resumed:
        rows["resumed"] = True
    table = _table(rows)
    return f"{table}\n\n{event.notes}" if event.notes else table


def _artifact(event: ArtifactSaved) -> str:
    rows: dict[str, Param] = {"path": event.path, "kind": event.kind, event.axis: event.step}
    return _table({**rows, **event.metadata})


def _table(rows: Mapping[str, Param]) -> str:
    """A two-column markdown table."""
    lines = ["| key | value |", "| --- | --- |"]
    lines += [f"| {_cell(key)} | {_cell(value)} |" for key, value in rows.items()]
    return "\n".join(lines)


def _cell(value: Param | str) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


OPTIONS = TensorBoardOptions


def build(context: SinkContext, options: TensorBoardOptions) -> TensorBoardSink:
    """Event files in ``<run folder>/<tensorboard.subdir>``."""
    return TensorBoardSink(context.run_dir / options.subdir, options)
