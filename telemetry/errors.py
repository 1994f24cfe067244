"""The few named exceptions of the telemetry pipeline."""

from __future__ import annotations


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
