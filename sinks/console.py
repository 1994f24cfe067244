"""A structlog console: one line per episode, aggregate or evaluation, and a progress bar."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, TextIO, cast

import anyio
import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from telemetry.checks import COUNT, Interval
from telemetry.events import (
    Aggregate,
    Alert,
    ArtifactSaved,
    Evaluation,
    Event,
    Health,
    LogRecord,
    Metrics,
    RunFinished,
    RunStarted,
)
from telemetry.sink import Delivery, SinkContext, fresh


@dataclass(kw_only=True)
class ConsoleOptions(Delivery):
    """Settings of the console sink."""

    format: str = "auto"
    """``pretty`` lines for people, ``json`` lines for machines, ``auto``: pretty on a terminal."""
    every: int = 1
    """Print one metrics line every this many steps of an axis (aggregates always print)."""
    max_keys: int = 6
    """Metric values shown per line at most (the first keys, or those in ``keys``)."""
    keys: list[str] = field(default_factory=list)
    """Metric keys to show; empty shows the first ``max_keys`` of each event."""
    progress: bool = True
    """Show a progress bar on a terminal when the run's config says how many steps it has."""

    def limits(self) -> dict[str, Interval]:
        return {**super().limits(), "every": COUNT, "max_keys": COUNT}

    def extra_checks(self) -> list[tuple[str, bool, str]]:
        return [("format", self.format in ("auto", "pretty", "json"), "auto, pretty or json")]


@dataclass(slots=True)
class _ProgressState:
    total: int
    axis: str | None = None
    steps_seen: set[int] = field(default_factory=set)


class ConsoleSink:
    """Summarises events for a person at a terminal, or as JSON lines for a log collector.

    Never one line per scalar: a metrics event becomes one line with its first
    few values, every ``every`` steps. Lines print above the progress bar.
    """

    def __init__(
        self, options: ConsoleOptions | None = None, stream: IO[str] | None = None
    ) -> None:
        self.name = "console"
        self.options = options or ConsoleOptions()
        self._stream = stream or sys.stderr
        self._console = Console(file=self._stream, soft_wrap=True)
        fmt = self.options.format
        self.pretty = fmt == "pretty" or (fmt == "auto" and self._console.is_terminal)
        renderer: Any = (
            structlog.dev.ConsoleRenderer(colors=self._console.is_terminal)
            if self.pretty
            else structlog.processors.JSONRenderer()
        )
        target = _RichWriter(self._console) if self.pretty else self._stream
        self._logger = structlog.wrap_logger(
            structlog.PrintLogger(cast(TextIO, target)),
            processors=[
                structlog.processors.TimeStamper(fmt="%H:%M:%S" if self.pretty else "iso"),
                renderer,
            ],
        ).bind()  # bind() resolves the lazy proxy once instead of on every call
        self._progress: Progress | None = None
        self._task: Any = None
        self._state: _ProgressState | None = None
        self._last_printed: dict[str, int] = {}
        self._last_seq = 0

    async def open(self) -> None:
        return None

    async def write(self, batch: Sequence[Event]) -> None:
        # Rendering costs ~10 us an event: in a worker thread, so a burst never
        # holds the event loop (and with it the pump and every other lane).
        await anyio.to_thread.run_sync(self._write_blocking, batch)

    def _write_blocking(self, batch: Sequence[Event]) -> None:
        for event in fresh(batch, self._last_seq):
            self._last_seq = event.seq
            self._show(event)

    def _show(self, event: Event) -> None:
        if isinstance(event, Metrics):
            self._advance(event)
            if self._due(event.axis, event.step):
                self._logger.info(event.axis, step=event.step, **self._pick(event.values))
        elif isinstance(event, Aggregate):
            self._logger.info(
                "aggregate",
                axis=event.axis,
                steps=f"{event.first_step}-{event.step}",
                **self._pick(
                    {k: v for k, v in event.values.items() if k.endswith(("/mean", "/trend"))}
                ),
            )
        elif isinstance(event, Evaluation):
            self._logger.info(
                "evaluation", name=event.name, step=event.step, **self._pick(event.values)
            )
        elif isinstance(event, Health):
            troubled = {
                k: v for k, v in event.values.items() if k.endswith(("/failed", "/spilled")) and v
            }
            if troubled:
                self._logger.warning("telemetry_health", **troubled)
        elif isinstance(event, ArtifactSaved):
            self._logger.info("artifact", name=event.name, kind=event.kind, path=event.path)
        elif isinstance(event, RunStarted):
            self._logger.info(
                "run_started",
                run=event.name,
                run_id=event.run_id,
                project=event.project,
                resumed=event.resumed,
            )
            self._start_progress(event)
        elif isinstance(event, RunFinished):
            self._stop_progress()
            self._logger.info("run_finished", run_id=event.run_id, status=event.status)
        elif isinstance(event, Alert):
            where = {"key": event.key, "step": event.step} if event.key else {}
            say = getattr(self._logger, _ALERT_METHODS[event.level])
            say("ALERT", level=event.level, title=event.title, text=event.text, **where)
        elif isinstance(event, LogRecord):
            say = getattr(self._logger, event.level if event.level in _LEVELS else "info")
            fields = {f"field_{k}" if k == "event" else k: v for k, v in event.fields.items()}
            say(event.message, **{**fields, "level": event.level, "logger": event.logger})

    def _due(self, axis: str, step: int) -> bool:
        last = self._last_printed.get(axis)
        if last is not None and step - last < self.options.every and step >= last:
            return False
        self._last_printed[axis] = step
        return True

    def _pick(self, values: dict[str, Any]) -> dict[str, Any]:
        keys = self.options.keys or tuple(values)[: self.options.max_keys]
        if not self.pretty:
            return {k: values[k] for k in keys if k in values}  # JSON keeps full precision
        return {k: _fmt(values[k]) for k in keys if k in values}

    def _start_progress(self, event: RunStarted) -> None:
        total = event.config.get("episodes")
        if not (self.options.progress and self.pretty and self._console.is_terminal):
            return
        if not isinstance(total, int) or total <= 0:
            return
        self._state = _ProgressState(total=total)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._task = self._progress.add_task(event.name, total=total)
        self._progress.start()

    def _advance(self, event: Metrics) -> None:
        state, progress = self._state, self._progress
        if state is None or progress is None:
            return
        if state.axis is None:
            state.axis = event.axis
        if event.axis == state.axis and event.step not in state.steps_seen:
            state.steps_seen.add(event.step)
            progress.update(self._task, completed=min(len(state.steps_seen), state.total))

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    async def close(self, timeout: float) -> None:
        self._stop_progress()


class _RichWriter:
    """A file-like target for structlog that prints through rich, above any progress bar."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def write(self, text: str) -> None:
        text = text.rstrip("\n")
        if text:
            self._console.print(Text.from_ansi(text), highlight=False)

    def flush(self) -> None:
        self._console.file.flush()


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return value


OPTIONS = ConsoleOptions


def build(context: SinkContext, options: ConsoleOptions) -> ConsoleSink:
    """The console on standard error."""
    return ConsoleSink(options)


_ALERT_METHODS = {"INFO": "info", "WARN": "warning", "ERROR": "error"}
_LEVELS = ("debug", "info", "warning", "error", "critical")
