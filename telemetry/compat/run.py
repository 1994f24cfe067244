"""``Run``: what ``init`` returns; ``log`` follows wandb's step rules on a bus in a thread."""

from __future__ import annotations

import glob
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from telemetry.bus import Bus
from telemetry.compat.artifact import Artifact
from telemetry.compat.background import BackgroundBus
from telemetry.compat.config import Config, flat_params
from telemetry.compat.errors import unsupported
from telemetry.compat.metrics import MetricDef, MetricDefs, make_def
from telemetry.compat.summary import Summary, number
from telemetry.errors import ConfigError, InvalidMetricError
from telemetry.events import Alert, ArtifactSaved, Hyperparameters, RunStatus
from telemetry.intake import check_step
from telemetry.params import coerce_params

logger = structlog.get_logger("telemetry.compat")
AXIS = "step"
"""The axis of the run's own step (wandb's ``_step``)."""
SUMMARY_NAME = "summary.json"
LEVELS = ("INFO", "WARN", "ERROR")

RUN_API = [
    "alert",
    "config",
    "define_metric",
    "dir",
    "entity",
    "finish",
    "group",
    "id",
    "job_type",
    "log",
    "log_artifact",
    "name",
    "notes",
    "project",
    "resumed",
    "save",
    "step",
    "summary",
    "tags",
]


class Run:
    """One run: ``log``, ``config``, ``summary``, ``define_metric``, artifacts, ``finish``.

    ``log`` without ``step`` publishes one ``metrics`` event at the run's step and
    counts on; ``commit=False`` merges into the row the next committing ``log`` ends;
    an explicit ``step`` above the current one ends the open row and starts that step
    (its rows commit when a later step starts, as in wandb), one below it is kept on
    its own event at that step and warned about once (wandb drops it).
    """

    def __init__(
        self,
        *,
        background: BackgroundBus,
        config: Config,
        summary: Summary,
        identity: Mapping[str, Any],
        run_dir: Path,
        first_step: int = 0,
    ) -> None:
        self._background = background
        bus: Bus = background.bus
        self._bus = bus
        self._publish = bus.log
        self.config = config
        self.summary = summary
        self._last = summary.last
        self.id: str = bus.run_id
        self.name: str = identity["name"]
        self.project: str = identity["project"]
        self.entity: str | None = identity.get("entity")
        self.group: str | None = identity.get("group")
        self.job_type: str | None = identity.get("job_type")
        self.tags: tuple[str, ...] = tuple(identity.get("tags") or ())
        self.notes: str | None = identity.get("notes")
        self.resumed: bool = bool(identity.get("resumed"))
        self.dir = str(run_dir)
        self._run_dir = run_dir
        self._step = first_step
        self._pending: dict[str, Any] | None = None
        self._metrics = MetricDefs()
        self._plain = True  # no define_metric yet: every key on the run's step, last value kept
        self._warned_back = False
        self._axis_values: dict[str, int] = {}
        self.finished = False
        self.status: RunStatus = "finished"
        self.error: str | None = None
        config.attach(self._config_changed)

    @property
    def step(self) -> int:
        """The step the next committed row gets."""
        return self._step

    # -- logging --

    def log(
        self, data: dict[str, Any], step: int | None = None, commit: bool | None = None
    ) -> None:
        """Log a row of scalars, at the run's step unless ``step`` is given (wandb's rules)."""
        if step is None and commit is not False and self._pending is None and self._plain:
            self._publish(data, step=self._step, axis=AXIS)
            self._step += 1
            self._last.update(data)
            return
        self._log_slow(data, step, commit)

    def _log_slow(self, data: Mapping[str, Any], step: Any, commit: bool | None) -> None:
        if not isinstance(data, Mapping):
            raise InvalidMetricError(
                f"log takes a dict of key to number, got {type(data).__name__}"
            )
        if step is not None:
            step = check_step(step)
            if step < self._step:
                if not self._warned_back:
                    self._warned_back = True
                    logger.warning(
                        "step_went_back",
                        step=step,
                        current=self._step,
                        keys=sorted(data)[:8],
                        kept="on its own event at that step (wandb drops such a row)",
                    )
                self._publish_row(dict(data), step)
                return
            if step > self._step:
                self._commit()
                self._step = step
            commit_now = commit is True
        else:
            commit_now = commit is not False
        if self._pending is None:
            self._pending = dict(data)
        else:
            self._pending.update(data)
        if commit_now:
            self._commit()

    def _commit(self) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            self._publish_row(pending, self._step)
            self._step += 1

    def _publish_row(self, row: dict[str, Any], step: int) -> None:
        if self._plain:
            self._publish(row, step=step, axis=AXIS)
            self._last.update(row)
            return
        metrics = self._metrics
        for name in metrics.step_metrics & row.keys():
            value = number(row[name])
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, int) and value >= 0:
                self._axis_values[name] = value
        own: dict[str, Any] = {}
        axes: dict[str, dict[str, Any]] = {}
        for key, value in row.items():
            axis = metrics.plan(key).axis
            if axis is None or axis not in self._axis_values:
                own[key] = value
            else:
                axes.setdefault(axis, {})[key] = value
                if axis not in row:  # step_sync: the row carries its step metric's last value
                    own[axis] = self._axis_values[axis]
        if own:
            self._publish(own, step=step, axis=AXIS)
        for axis, values in axes.items():
            self._publish(values, step=self._axis_values[axis], axis=axis)
        self.summary.observe({**own, **row}, metrics)

    def define_metric(
        self,
        name: str,
        step_metric: str | None = None,
        step_sync: bool | None = None,
        hidden: bool | None = None,
        summary: str | None = None,
        goal: str | None = None,
        overwrite: bool | None = None,
    ) -> MetricDef:
        """Log ``name`` (or a glob) on ``step_metric``'s axis, and choose what its summary keeps."""
        if not isinstance(step_metric, (str, type(None))):
            step_metric = getattr(step_metric, "name", step_metric)
        metric = make_def(name, step_metric, summary, goal, hidden, step_sync)
        self._metrics.add(metric)
        self._plain = False
        return metric

    # -- other events --

    def _config_changed(self, changed: dict[str, Any]) -> None:
        self._bus.emit(Hyperparameters, values=coerce_params(flat_params(changed)))

    def log_artifact(
        self,
        artifact_or_path: Artifact | str | Path,
        name: str | None = None,
        type: str | None = None,
        aliases: list[str] | None = None,
        tags: list[str] | None = None,
    ) -> Artifact:
        """Publish an artifact event for a file, a folder or an ``Artifact``'s files."""
        if isinstance(artifact_or_path, Artifact):
            artifact = artifact_or_path
        else:
            path = Path(artifact_or_path)
            artifact = Artifact(name or path.name, type or "unspecified")
            (artifact.add_dir if path.is_dir() else artifact.add_file)(path)
        metadata = dict(flat_params(artifact.metadata))
        if artifact.description:
            metadata["description"] = artifact.description
        if aliases:
            metadata["aliases"] = list(aliases)
        where = artifact.local_path(self._run_dir / "artifacts")
        self._bus.emit(
            ArtifactSaved,
            name=artifact.name,
            path=str(where),
            kind=artifact.type,
            step=self._step,
            axis=AXIS,
            metadata=metadata,
        )
        return artifact

    def save(
        self, glob_str: str | Path, base_path: str | Path | None = None, policy: str = "live"
    ) -> list[str]:
        """Copy the files matching ``glob_str`` into the run folder's ``files/``, each an
        artifact event of kind ``file``; returns the copies' paths."""
        pattern = str(glob_str)
        matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
        base = Path(base_path) if base_path is not None else None
        saved = []
        for path in (p for p in matches if p.is_file()):
            inside = path.relative_to(base) if base is not None else Path(path.name)
            target = self._run_dir / "files" / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.resolve() != target.resolve():
                shutil.copy2(path, target)
            self._bus.emit(
                ArtifactSaved,
                name=str(inside),
                path=str(target),
                kind="file",
                step=self._step,
                axis=AXIS,
                metadata={"policy": policy},
            )
            saved.append(str(target))
        return saved

    def alert(self, title: str, text: str, level: Any = None, wait_duration: Any = None) -> None:
        """Publish an ``alert`` event (the console prints it, wandb gets ``run.alert``)."""
        name = str(getattr(level, "value", level) or "INFO").upper()
        if name not in LEVELS:
            raise ConfigError(f"alert level must be one of {', '.join(LEVELS)}, got {level!r}")
        self._bus.emit(Alert, title=title, text=text, level=name, step=self._step, axis=AXIS)

    # -- the end --

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Commit the open row and close the run within its close deadline; never hangs."""
        if self.finished:
            return
        if exit_code not in (None, 0):
            self.status, self.error = "failed", f"exit code {exit_code}"
        self._end()

    def _end(self) -> None:
        self.finished = True
        try:
            self._commit()
        except Exception as exc:  # the run still closes; the bad row is named
            logger.warning("row_not_logged", error=str(exc))
        on_time = self._background.close(self.status, self.error)
        if not on_time:
            logger.warning("run_close_late", run=self.id, run_dir=self.dir)
        try:
            text = json.dumps(self.summary.as_dict(), default=str, allow_nan=True)
            (self._run_dir / SUMMARY_NAME).write_text(text)
        except (OSError, TypeError, ValueError) as exc:
            logger.warning("summary_not_written", error=str(exc))
        from telemetry.compat import api

        api.forget(self)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not self.finished:
            self.mark_exception(exc)
        self.finish()

    def mark_exception(self, exc: BaseException) -> None:
        """The run ends because of ``exc``: interrupted for Ctrl-C, else failed naming it."""
        if isinstance(exc, KeyboardInterrupt):
            self.status, self.error = "interrupted", None
        elif not isinstance(exc, SystemExit) or exc.code not in (None, 0):
            self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise unsupported(f"run.{name}", RUN_API)

    def __repr__(self) -> str:
        return f"<telemetry Run {self.id} {self.name!r} at {self.dir}>"
