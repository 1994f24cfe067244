"""Weights & Biases sink: the real wandb client, kept off the event loop and on a leash.

Every wandb call runs in a worker thread under a timeout. Any failure (``init``
refused or timed out, ``log`` raising because the wandb service died, a call
that hangs) is reported to the bus as ``SinkUnavailableError``: the lane falls
behind onto the durable log, retries behind a circuit breaker, and on recovery
resumes the same wandb run (``resume="allow"``, same id) and catches up from
the log with the original steps. A hidden ``_seq`` column in every row, read
back from the resumed run's summary, keeps a row from reaching wandb twice.

An offline run is resumed from what its run files hold (``sinks.wandb_runfile``):
a row handed to wandb that its service had not written when the process was
killed is sent again, and a row it wrote never is, so a sidecar or collector
killed with ``kill -9`` neither loses nor repeats a step.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import structlog

from sinks import wandb_runfile
from sinks.wandb_runfile import APPLIED_KEY, AXIS_SEQ_PREFIX, SEQ_KEY, Held
from telemetry.checks import TIMEOUT, Interval
from telemetry.errors import SinkBehindError, SinkUnavailableError
from telemetry.events import (
    SCALAR_EVENTS,
    Alert,
    ArtifactSaved,
    Event,
    Hyperparameters,
    LogRecord,
    RunFinished,
    RunStarted,
    ScalarEvent,
    SystemInfo,
)
from telemetry.sink import Delivery, SinkContext, fresh

logger = structlog.get_logger("telemetry.wandb")
T = TypeVar("T")
MODES = ("auto", "online", "offline", "disabled")
READS_BACK = ("online", "offline")
"""Modes in which a reopened sink knows what its run holds (see ``WandbSink.reads_back``)."""
WRITER_WAIT = 10.0
"""Seconds a resumed offline run waits for a killed process's wandb service to finish
writing the run's files before reading what they hold."""
ANALYSIS_PREFIX = "analysis/"
"""History keys of a model analysis's views (``main.py analyze --log-to wandb``)."""


@dataclass(kw_only=True)
class WandbOptions(Delivery):
    """Settings of the Weights & Biases sink."""

    mode: str = "auto"
    """online, offline, disabled, or auto: WANDB_MODE, else online with an API key, else offline."""
    project: str | None = None
    """wandb project; default: the run's ``project``."""
    entity: str | None = None
    """wandb entity (user or team); default: the account's."""
    name: str | None = None
    """Run display name; default: the run's ``name``."""
    job_type: str = "train"
    """wandb job type."""
    dir: str | None = None
    """Folder for wandb's own files; default: the run folder."""
    init_timeout: float = 30.0
    """Seconds ``wandb.init`` may take before the sink counts wandb as down."""
    call_timeout: float = 20.0
    """Seconds one batch of ``log`` calls may take before the sink counts wandb as down."""
    finish_timeout: float = 30.0
    """Seconds ``finish`` may take at the end of the run (also bounded by the close deadline)."""
    summary_max: list[str] = field(
        default_factory=lambda: [
            "fitness/*",
            "validation/fitness",
            "validation/win_rate",
            "episode/total_reward",
            "episode/roas",
            "rewards/mean",
            "eval/*/success_rate",
            "eval/correlation",
        ]
    )
    """Key patterns whose summary keeps the maximum besides the last value."""
    summary_min: list[str] = field(
        default_factory=lambda: ["losses/*", "train/*_loss", "eval/mae", "eval/rmse"]
    )
    """Key patterns whose summary keeps the minimum besides the last value."""
    artifacts: bool = True
    """Upload artifact events (checkpoints) as wandb artifacts."""
    batch_size: int = 500
    max_latency: float = 0.5
    """A dashboard, not a log: each wandb ``log`` call wakes wandb's threads, and half a
    second of batching cuts its CPU per row by half (wandb streams every 15 s anyway)."""

    def limits(self) -> dict[str, Interval]:
        timeouts = dict.fromkeys(("init_timeout", "call_timeout", "finish_timeout"), TIMEOUT)
        return {**super().limits(), **timeouts}

    def extra_checks(self) -> list[tuple[str, bool, str]]:
        return [("mode", self.mode in MODES, ", ".join(MODES))]


def resolve_mode(option: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """The wandb mode to use: explicit, else WANDB_MODE, else online only with credentials."""
    if option != "auto":
        return option
    env = environ.get("WANDB_MODE", "").strip().lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if environ.get("WANDB_API_KEY") or _netrc_has_key() else "offline"


def _netrc_has_key() -> bool:
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


class WandbSink:
    """Logs events to a wandb run; see the module docstring for how it degrades."""

    def __init__(self, context: SinkContext, options: WandbOptions | None = None) -> None:
        self.name = "wandb"
        self.context = context
        self.options = options or WandbOptions()
        self.mode = resolve_mode(self.options.mode)
        self.run: Any = None
        self.finished = False
        self.delivered_seq = 0
        self._wandb: Any = None
        self._start: RunStarted | None = None
        self._params: dict[str, Any] = {}
        self._defined: set[str] = set()
        self._open_rows: dict[str, tuple[int, dict[str, Any]]] = {}
        self._reset_service = False
        self._announced = False
        self._hole_checked = False
        self._no_console = False
        self._held: Held | None = None
        self._read_files = False
        self._applied_due = 0

    @property
    def reads_back(self) -> bool:
        """Reopened, it knows what its run holds (online: the run's summary; offline: its
        run files), so a restarted sidecar or collector may hand it everything again."""
        return self.mode in READS_BACK

    # -- the sink protocol --

    async def open(self) -> None:
        # Importing wandb takes a second or two: not on the event loop.
        self._wandb = await anyio.to_thread.run_sync(importlib.import_module, "wandb")

    async def write(self, batch: Sequence[Event]) -> None:
        new = fresh(batch, self.delivered_seq)
        if not new or self.finished:
            return
        for event in new:
            if isinstance(event, RunStarted):
                self._start = event
        if self.run is None:
            if self.mode == "offline" and not self._read_files:
                await anyio.to_thread.run_sync(self._read_held)
            await self._call(self._init, self.options.init_timeout, "init")
            new = fresh(new, self.delivered_seq)  # a resumed run may hold some already
            if not self._hole_checked:
                self._hole_checked = True
                self._check_hole(new)
        new = self._unheld(new)
        body = [e for e in new if not isinstance(e, RunFinished)]
        if body:
            await self._call(lambda: self._write(body), self.options.call_timeout, "log")
        end = next((e for e in new if isinstance(e, RunFinished)), None)
        if end is not None:
            await self._call(lambda: self._end(end), self.options.finish_timeout, "finish")

    async def close(self, timeout: float) -> None:
        if self.run is None or self.finished:
            return
        limit = max(0.1, min(timeout, self.options.finish_timeout))
        try:
            await self._call(lambda: self._end(None), limit, "finish")
        except SinkUnavailableError as exc:
            logger.warning("wandb_finish_incomplete", error=str(exc))

    # -- calls into wandb, each in a worker thread under a timeout --

    async def _call(self, func: Callable[[], T], timeout: float, what: str) -> T:
        try:
            with anyio.fail_after(timeout):
                return await anyio.to_thread.run_sync(func, abandon_on_cancel=True)
        except TimeoutError:
            self._drop_run(after_init=what == "init")
            raise SinkUnavailableError(f"wandb {what} took longer than {timeout:g} s") from None
        except Exception as exc:
            self._drop_run(after_init=what == "init")
            raise SinkUnavailableError(f"wandb {what} failed: {type(exc).__name__}: {exc}") from exc

    def _read_held(self) -> None:
        """What earlier processes' offline files of this run hold (read once, before init)."""
        folder = Path(self.options.dir) if self.options.dir else self.context.run_dir
        found = wandb_runfile.held(folder / "wandb", self.context.run_id, WRITER_WAIT)
        self._read_files = True
        if found.files:
            self._held = found
            logger.info(
                "wandb_offline_resumed", id=self.context.run_id, files=found.files, held=found.top
            )

    def _check_hole(self, new: Sequence[Event]) -> None:
        """The run holds less than the log: a killed process's last rows never reached
        wandb. Its lane reads them back from the log first (``SinkBehindError``)."""
        if not new:
            return
        held = self._held
        if held is not None and not held.finished and new[0].seq > 1:
            # Which of the earlier events an unfinished run lacks only the log can say.
            raise SinkBehindError(0)
        if held is None and 0 < self.delivered_seq < new[0].seq - 1:
            raise SinkBehindError(self.delivered_seq)

    def _unheld(self, new: Sequence[Event]) -> Sequence[Event]:
        """``new`` less what the run files hold; config updates always go (they repeat
        harmlessly, and a resumed run's own file then holds the whole config)."""
        held = self._held
        if held is None or not new:
            return new
        if new[0].seq > held.top:
            self._held = None  # past everything the files hold
            return new
        return [e for e in new if isinstance(e, (Hyperparameters, SystemInfo)) or not held.holds(e)]

    def _drop_run(self, after_init: bool) -> None:
        """Forget a run that failed; the next attempt resumes it with a fresh ``init``.

        After a failed ``init`` wandb's service process can be left unable to start
        another run, so the next attempt tears it down and starts a new one first.
        """
        self.run = None
        self._defined = set()
        self._reset_service = self._reset_service or after_init

    def _init(self) -> None:
        wandb = self._wandb
        if self._reset_service:
            wandb.teardown()
            self._reset_service = False
        start, options, context = self._start, self.options, self.context
        settings = wandb.Settings(
            console="off",
            silent=True,
            init_timeout=options.init_timeout,
            # finish() must not wait for ever on a dead server, and must say so.
            finish_timeout=options.finish_timeout,
            finish_timeout_raises=True,
            x_disable_stats=True,
            x_save_requirements=False,
            disable_git=True,
            save_code=False,
        )
        config = dict(start.config) if start else {}
        config.update(self._params)
        folder = Path(options.dir) if options.dir else context.run_dir
        folder.mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            id=context.run_id,
            resume="allow",
            reinit="create_new",
            mode=self.mode,
            project=options.project or (start.project if start else None),
            entity=options.entity,
            name=options.name or (start.name if start else context.run_name),
            group=start.group if start else None,
            tags=list(start.tags) if start else None,
            notes=start.notes if start else None,
            job_type=options.job_type,
            config=config,
            dir=str(folder),
            settings=settings,
        )
        self.run = run
        self.finished = False
        # A resumed online run says what it holds in its summary: per axis, the last row's
        # seq (a row of another axis may still have been open); a run logged by an older
        # version only the last row's, which then counts for everything.
        summary = _summary(run)
        found = wandb_runfile.from_summary(summary) if self.mode == "online" else None
        if found is not None:
            self._held = found
        elif isinstance(seq := summary.get(SEQ_KEY), (int, float)):
            self.delivered_seq = max(self.delivered_seq, int(seq))
        if not self._announced:
            self._announced = True
            where = run.url if self.mode == "online" else getattr(run, "dir", None)
            logger.info("wandb_run", mode=self.mode, id=context.run_id, at=where)

    def _write(self, events: Sequence[Event]) -> None:
        """Fold scalar events into one open row per axis; a new step of the axis logs the row.

        So every scalar of a step (metrics, evaluation, aggregate) goes out in one
        ``log`` call even when other events come between them or batches split them.
        """
        for event in fresh(events, self.delivered_seq):
            if isinstance(event, SCALAR_EVENTS):
                open_row = self._open_rows.get(event.axis)
                if open_row is not None and open_row[0] != event.step:
                    self._mark_applied()
                    self.run.log(open_row[1])
                    open_row = None
                if open_row is None:
                    open_row = self._open_rows[event.axis] = (event.step, {})
                self._define(event)
                row = open_row[1]
                row.update(event.values)
                row[event.axis] = event.step
                row[SEQ_KEY] = row[AXIS_SEQ_PREFIX + event.axis] = event.seq
            else:
                self._apply(event)
                self._applied_due = event.seq
            self.delivered_seq = event.seq
        self._mark_applied()

    def _mark_applied(self) -> None:
        """Note in the summary the last event applied (not a row) before the next record, so
        a resumed run knows it holds it (``sinks.wandb_runfile``)."""
        if self._applied_due:
            self.run.summary[APPLIED_KEY] = self._applied_due
        self._applied_due = 0

    def _flush_rows(self) -> None:
        self._mark_applied()
        rows, self._open_rows = self._open_rows, {}
        for _, row in sorted(rows.values(), key=lambda item: item[1][SEQ_KEY]):
            self.run.log(row)

    def _end(self, finished: RunFinished | None) -> None:
        """Log the open rows and finish the run (exit code 1 unless it finished)."""
        if self.run is None or self.finished:
            return
        self._flush_rows()
        status = finished.status if finished is not None else "finished"
        if finished is not None:
            self.run.summary[SEQ_KEY] = finished.seq
            self._applied_due = finished.seq
            self._mark_applied()
        self._finish(0 if status in ("finished", "stopped") else 1)
        if finished is not None:
            self.delivered_seq = finished.seq

    def _define(self, event: ScalarEvent) -> None:
        run, axis = self.run, event.axis
        if axis not in self._defined:
            run.define_metric(axis, hidden=True)
            self._defined.add(axis)
        for key in event.values:
            if key not in self._defined:
                run.define_metric(key, step_metric=axis, summary=self._summary_for(key))
                self._defined.add(key)

    def _summary_for(self, key: str) -> str:
        if any(fnmatch.fnmatchcase(key, p) for p in self.options.summary_max):
            return "max,last"
        if any(fnmatch.fnmatchcase(key, p) for p in self.options.summary_min):
            return "min,last"
        return "last"

    def _apply(self, event: Event) -> None:
        run = self.run
        if isinstance(event, Hyperparameters):
            self._params.update(event.values)
            run.config.update(event.values, allow_val_change=True)
        elif isinstance(event, SystemInfo):
            values = {f"system/{k}": v for k, v in event.values.items()}
            self._params.update(values)
            run.config.update(values, allow_val_change=True)
        elif isinstance(event, ArtifactSaved):
            if event.kind == "image":
                self._log_image(event)
            elif event.kind == "table":
                self._log_table(event)
            else:
                self._log_artifact(event)
        elif isinstance(event, Alert):
            # The pipeline rate-limits alerts (alerts.rules[].wait): wandb's own limit is cut to
            # its smallest step, a millisecond (0 would mean its default, a minute).
            text = event.text or event.title
            run.alert(title=event.title, text=text, level=event.level, wait_duration=0.001)
        elif isinstance(event, LogRecord):
            self._console_line(event)

    def _console_line(self, event: LogRecord) -> None:
        """A user's log record as a line of the run's console logs (wandb's "Logs" tab).

        wandb has no public call for it: its own console capture hands each chunk of
        output to the run's ``_console_raw_callback``, written as an ``output_raw`` record
        like captured output. A wandb without that callback skips the line (said once).
        """
        write = getattr(self.run, "_console_raw_callback", None)
        if write is None:
            if not self._no_console:
                self._no_console = True
                logger.info("wandb_log_records_skipped", reason="this wandb has no console hook")
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
        fields = " ".join(f"{k}={v}" for k, v in event.fields.items())
        text = event.message.replace("\n", "\n    ")
        line = f"{stamp} [{event.level}] {event.logger}: {text}{' ' + fields if fields else ''}"
        stream = "stderr" if event.level in ("warning", "error", "critical") else "stdout"
        try:
            write(stream, line + "\n")
        except Exception as exc:  # a console line must never take the metrics down with it
            self._no_console = True
            logger.warning("wandb_log_records_skipped", reason=f"{type(exc).__name__}: {exc}")

    def _log_image(self, event: ArtifactSaved) -> None:
        """An image file as ``wandb.Image`` in the history, under ``analysis/<view>``."""
        path = Path(event.path)
        if not path.is_file():
            logger.warning("wandb_image_missing", name=event.name, path=str(path))
            return
        image = self._wandb.Image(str(path))
        self.run.log({_analysis_key(event): image, event.axis: event.step})

    def _log_table(self, event: ArtifactSaved) -> None:
        """A JSON file of numbers (a view's, under its name when keyed by view): a table of
        every value in the history, and its scalars in the summary."""
        path = Path(event.path)
        try:
            numbers = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            logger.warning(
                "wandb_table_unreadable", name=event.name, path=str(path), error=str(exc)
            )
            return
        view = event.metadata.get("view")
        if isinstance(numbers, dict) and isinstance(view, str) and view in numbers:
            numbers = numbers[view]
        flat = _flatten(numbers)
        key = _analysis_key(event)
        rows = [[name, json.dumps(value)] for name, value in flat.items()]
        table = self._wandb.Table(columns=["key", "value"], data=rows)
        self.run.log({f"{key}/numbers": table, event.axis: event.step})
        for name, value in flat.items():
            if isinstance(value, (int, float, str, bool)):
                self.run.summary[f"{key}/{name}"] = value

    def _log_artifact(self, event: ArtifactSaved) -> None:
        path = Path(event.path)
        if not self.options.artifacts:
            return
        if not path.exists():
            logger.warning("wandb_artifact_missing", name=event.name, path=str(path))
            return
        metadata = {**event.metadata, "step": event.step, "axis": event.axis, "seq": event.seq}
        artifact = self._wandb.Artifact(
            name=_artifact_name(event.name), type=event.kind or "artifact", metadata=metadata
        )
        if path.is_dir():
            artifact.add_dir(str(path))
        else:
            artifact.add_file(str(path))
        try:
            self.run.log_artifact(artifact, aliases=["latest", f"{event.axis}-{event.step}"])
        except Exception as exc:
            # wandb raises here when its GraphQL calls fail; the metrics must keep flowing.
            logger.warning(
                "wandb_artifact_failed",
                name=event.name,
                error=f"{type(exc).__name__}: {exc}",
                note="the file stays in the run folder; replay into a new run to upload it",
            )

    def _finish(self, exit_code: int) -> None:
        run = self.run
        if run is None or self.finished:
            return
        run.finish(exit_code=exit_code)
        self.finished = True
        # finish() can return before wandb's service has written the run file out;
        # tearing the service down waits for it to flush and exit.
        self._wandb.teardown(exit_code)


def _summary(run: Any) -> dict[str, Any]:
    """The run's summary as it is (empty if there is none to read)."""
    try:
        summary = run.summary
        # keys(), not iteration: wandb's Summary has no __iter__ (it would index 0, 1...).
        return {str(key): summary.get(key) for key in summary.keys()}  # noqa: SIM118
    except Exception:  # a fresh or offline run may have no summary to read
        return {}


def _analysis_key(event: ArtifactSaved) -> str:
    view = event.metadata.get("view")
    return ANALYSIS_PREFIX + str(view) if view is not None else event.name


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of ``a/b`` keys; lists and scalars kept as they are."""
    if not isinstance(value, dict):
        return {prefix or "value": value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(_flatten(item, f"{prefix}/{key}" if prefix else str(key)))
    return flat


def _artifact_name(name: str) -> str:
    """wandb artifact names allow letters, digits, dashes, underscores and dots."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name) or "artifact"


OPTIONS = WandbOptions


def build(context: SinkContext, options: WandbOptions) -> WandbSink:
    """The wandb sink for one run."""
    return WandbSink(context, options)
