"""The pipeline's own log lines (warnings, summaries): readable on a terminal, JSON otherwise."""

from __future__ import annotations

import logging
import sys

import structlog

_ROUTED = ("wandb",)
"""Standard-library loggers of client libraries whose warnings we print through structlog."""


class _ToStructlog(logging.Handler):
    """Re-emits a standard-library log record as a structlog line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            structlog.get_logger(record.name).log(
                record.levelno, "library_log", library=record.name, message=record.getMessage()
            )
        except Exception:  # a log line must never raise into the library that wrote it
            self.handleError(record)


def configure_logging(level: int = logging.INFO) -> None:
    """Route structlog to standard error, pretty on a terminal and JSON lines when piped.

    wandb's own warnings come through the same renderer instead of raw prints.
    """
    pretty = sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if pretty
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S" if pretty else "iso"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    for name in _ROUTED:
        library = logging.getLogger(name)
        library.handlers = [h for h in library.handlers if not isinstance(h, _ToStructlog)]
        handler = _ToStructlog(level=logging.WARNING)
        library.addHandler(handler)
        library.propagate = False
