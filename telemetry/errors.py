"""The few named exceptions of the telemetry pipeline."""

from __future__ import annotations

import errno

_WRITE_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.EISDIR: "it is a directory",
    # mkdir of a file's folder where a file is: EEXIST (or ENOTDIR further down).
    errno.EEXIST: "a part of its path is a file, not a folder",
    errno.ENOTDIR: "a part of its path is a file, not a folder",
}


def write_failure(exc: OSError) -> str:
    """Why a file could not be written, in the words a user needs ("the disk is full")."""
    return _WRITE_REASONS.get(exc.errno or 0, exc.strerror or str(exc))


def describe(exc: BaseException) -> str:
    """``Type: message`` of the one error inside nested exception groups, or of ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


class TelemetryError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class InvalidMetricError(TelemetryError, ValueError):
    """A metric key or value that cannot be recorded; the message names the key."""


class ConfigError(TelemetryError, ValueError):
    """A configuration key or value that is not allowed; the message names it."""


class UnknownSinkError(ConfigError):
    """A sink name that is not in the registry; the message lists the known ones."""


class BusClosedError(TelemetryError, RuntimeError):
    """An event published after the bus stopped its intake."""


class LogFormatError(TelemetryError, ValueError):
    """A JSON Lines log that cannot be read at all (wrong format, future schema)."""


class SinkUnavailableError(TelemetryError, RuntimeError):
    """A sink that cannot be opened or written; contained by the bus, never raised to trainers."""


class CheckpointError(TelemetryError, OSError):
    """A checkpoint that could not be written; the message names its path and the reason."""


class SinkBehindError(TelemetryError):
    """A sink that holds events only up to ``held``, before the batch it was handed.

    A resumed run's backend may lack the previous process's last events, which
    the log holds: its lane reads them back from the log, from ``held + 1``.
    """

    def __init__(self, held: int) -> None:
        super().__init__(f"the sink holds events up to seq {held} only")
        self.held = held
