"""Users' own log records into the run: a ``logging.Handler`` and a structlog processor.

Each record becomes a ``LogRecord`` event (level, message, logger name, fields), so it lands
in the durable log, on the console and, where wandb is a sink, in the wandb run's console
logs. ::

    import logging, structlog
    from telemetry.records import LogRecordHandler, to_run

    logging.getLogger().addHandler(LogRecordHandler(bus))           # standard library
    structlog.configure(processors=[structlog.processors.add_log_level, to_run(bus),
                                    structlog.dev.ConsoleRenderer()])  # structlog

Fields: a structlog event dict's keys besides ``event`` (the message), ``level``, ``logger``
and ``timestamp``; a ``logging.LogRecord``'s ``extra=`` attributes. Values stay str, int,
float, bool or None; anything else becomes its ``str`` (at most ``MAX_TEXT`` characters, as
the message). An exception (``exc_info``) becomes the field ``exception``, its traceback.

Bounded like everything else: at most ``per_second`` records per logger name in each second
(the rest counted in ``dropped`` and said in one ``log_records_dropped`` warning record when
that logger next gets a record through, or at ``close``); never waits (a record that would
wait for room in a full intake, or comes before the bus opens or after it closes, is counted
in ``refused`` and dropped); the pipeline's own loggers (``telemetry.*``, ``sinks.*``) and a
record logged while one is being published (the pipeline logging about it) are left out.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Mapping, MutableMapping
from typing import Any

from telemetry.bus import Bus
from telemetry.events import LogRecord, Param
from telemetry.values import MAX_KEY_LENGTH

__all__ = ["LogRecordHandler", "RunRecords", "StructlogToRun", "to_run"]

PER_SECOND = 100
"""Records per logger name per second let through by default."""
MAX_TEXT = 4096
"""Characters of a message or a text field kept at most."""
MAX_LOGGERS = 1000
"""Logger names rate-limited apart at most; the rest share one allowance."""
OWN_LOGGERS = ("telemetry", "sinks")
"""Packages whose loggers are the pipeline's own: their records never become events."""
LEVELS = ("debug", "info", "warning", "error", "critical")
_NUMBERS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_STRUCTLOG_NAMES = {"warn": "warning", "exception": "error", "fatal": "critical", "msg": "info"}
_STRUCTLOG_KEYS = frozenset(
    ("event", "level", "logger", "logger_name", "timestamp", "exc_info", "_record")
) | {"_from_structlog"}
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)

_inside = threading.local()
"""Set while this thread publishes a record: a record logged meanwhile is the pipeline's."""


def level_name(number: int) -> str:
    """The ``LogRecord`` level of a ``logging`` level number (custom ones round down)."""
    name = "debug"
    for candidate in LEVELS:
        if number >= _NUMBERS[candidate]:
            name = candidate
    return name


def is_own(logger: str) -> bool:
    """Whether ``logger`` is one of the pipeline's own (``telemetry``, ``sinks`` and below)."""
    return any(logger == p or logger.startswith(p + ".") for p in OWN_LOGGERS)


class _Window:
    __slots__ = ("count", "dropped", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0
        self.dropped = 0


class RunRecords:
    """Publishes log records as ``LogRecord`` events: rate-limited, bounded, never waiting.

    The shared core of ``LogRecordHandler`` and ``to_run``; safe from any thread.
    """

    def __init__(self, bus: Bus, *, per_second: int = PER_SECOND) -> None:
        if isinstance(per_second, bool) or not isinstance(per_second, int) or per_second < 1:
            raise ValueError(f"per_second must be an int of 1 or more, got {per_second!r}")
        self.bus = bus
        self.per_second = per_second
        self.published = 0
        """Records published."""
        self.dropped = 0
        """Records over a logger's ``per_second``."""
        self.refused = 0
        """Records the bus could not take at once (full, not open yet, closed)."""
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def publish(
        self, level: str, message: str, logger: str, fields: Mapping[str, Any] | None = None
    ) -> bool:
        """Publish one record unless it is the pipeline's own or over the rate; True if sent."""
        if getattr(_inside, "active", False) or is_own(logger):
            return False
        _inside.active = True
        try:
            report = self._admit(logger)
            if report is None:
                return False
            if report:
                self._send_dropped(logger, report)
            return self._send(level, _text(message), logger, _fields(fields or {}))
        finally:
            _inside.active = False

    def close(self) -> None:
        """Say how many records each logger had dropped that no later record reported."""
        with self._lock:
            pending = [(name, w.dropped) for name, w in self._windows.items() if w.dropped]
            for name, _ in pending:
                self._windows[name].dropped = 0
        for name, dropped in pending:
            self._send_dropped(name, dropped)

    def _admit(self, logger: str) -> int | None:
        """None: over the rate (counted); else the drops to report first (0: none)."""
        now = time.monotonic()
        with self._lock:
            key = logger if logger in self._windows or len(self._windows) < MAX_LOGGERS else "*"
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(now)
            report = 0
            if now - window.start >= 1.0:
                window.start, window.count = now, 0
                report, window.dropped = window.dropped, 0
            if window.count >= self.per_second:
                window.dropped += 1
                self.dropped += 1
                return None
            window.count += 1
            return report

    def _send_dropped(self, logger: str, dropped: int) -> None:
        fields: dict[str, Param] = {"dropped": dropped, "per_second": self.per_second}
        self._send("warning", "log_records_dropped", logger, fields)

    def _send(self, level: str, message: str, logger: str, fields: dict[str, Param]) -> bool:
        bus = self.bus
        try:
            if _would_wait(bus):
                raise _Full
            bus.emit(LogRecord, level=level, message=message, logger=logger, fields=fields)
        except Exception:  # full, not open or closed: a log call must never raise or wait
            with self._lock:
                self.refused += 1
            return False
        with self._lock:
            self.published += 1
        return True


class _Full(Exception):
    """The intake has no room: publishing now would wait."""


def _would_wait(bus: Bus) -> bool:
    # The bus has no non-waiting emit: a publisher off the loop waits while the intake is
    # full, so look first (on the loop's own thread emit never waits).
    intake = bus._intake
    return not intake.on_loop_thread() and intake.size + intake.held >= intake.capacity


def _text(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _fields(values: Mapping[Any, Any]) -> dict[str, Param]:
    out: dict[str, Param] = {}
    for key, value in values.items():
        name = key if isinstance(key, str) and key else str(key) or "_"
        name = name[:MAX_KEY_LENGTH]
        if value is None or isinstance(value, (bool, str)):
            out[name] = value if not isinstance(value, str) else _text(value)
        elif isinstance(value, float) or (isinstance(value, int) and -(2**63) <= value < 2**63):
            out[name] = value
        elif type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
            item = value.item()
            out[name] = item if isinstance(item, (bool, int, float)) else _text(item)
        else:
            out[name] = _text(value)
    return out


def _exception_text(exc_info: Any) -> str | None:
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[0] is not None:
        return "".join(traceback.format_exception(*exc_info)).rstrip()
    return None


class LogRecordHandler(logging.Handler):
    """A ``logging.Handler`` publishing each record it takes as a ``LogRecord`` event.

    ``level``: the least level passed on (``logging.INFO``); ``per_second``: records per
    logger name per second. ``close()`` reports drops not yet said. Counters: ``records``.
    """

    def __init__(self, bus: Bus, level: int = logging.INFO, *, per_second: int = PER_SECOND):
        super().__init__(level)
        self.records = RunRecords(bus, per_second=per_second)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}
            if record.exc_info:
                exception = _exception_text(record.exc_info)
                if exception is not None:
                    fields["exception"] = exception
            if record.stack_info:
                fields["stack"] = record.stack_info
            level = level_name(record.levelno)
            self.records.publish(level, record.getMessage(), record.name, fields)
        except Exception:  # a log call must never raise into the code that made it
            self.records.refused += 1

    def close(self) -> None:
        self.records.close()
        super().close()


class StructlogToRun:
    """A structlog processor publishing each event dict as a ``LogRecord``; passes it on.

    Put it after ``add_log_level`` (else the level is the method name) and before the
    renderer. The logger name is the event dict's ``logger`` (``add_logger_name``), else the
    wrapped logger's ``name``, else the calling module's ``__name__``.
    """

    __slots__ = ("_least", "records")

    def __init__(self, bus: Bus, level: str = "info", *, per_second: int = PER_SECOND) -> None:
        if level not in _NUMBERS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
        self._least = _NUMBERS[level]
        self.records = RunRecords(bus, per_second=per_second)

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        try:
            self._publish(logger, method_name, event_dict)
        except Exception:  # a log call must never raise into the code that made it
            self.records.refused += 1
        return event_dict

    def _publish(self, logger: Any, method_name: str, event_dict: Mapping[str, Any]) -> None:
        raw = str(event_dict.get("level") or method_name).lower()
        level = _STRUCTLOG_NAMES.get(raw, raw)
        if level not in _NUMBERS:
            level = "info"
        if _NUMBERS[level] < self._least or getattr(_inside, "active", False):
            return
        name = event_dict.get("logger") or event_dict.get("logger_name")
        name = name or getattr(logger, "name", None) or _caller_module()
        fields = {k: v for k, v in event_dict.items() if k not in _STRUCTLOG_KEYS}
        exception = _exception_text(event_dict.get("exc_info"))
        if exception is not None:
            fields["exception"] = exception
        self.records.publish(level, _text(event_dict.get("event", "")), str(name), fields)

    def close(self) -> None:
        """Report drops not yet said."""
        self.records.close()


def to_run(bus: Bus, level: str = "info", *, per_second: int = PER_SECOND) -> StructlogToRun:
    """A structlog processor sending the records of ``level`` and above into ``bus``'s run."""
    return StructlogToRun(bus, level, per_second=per_second)


def _caller_module() -> str:
    """The module of the first frame outside structlog and this module: who logged."""
    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not (module.startswith("structlog") or module == __name__):
            return str(module)
        frame = frame.f_back  # type: ignore[assignment]
    return ""
