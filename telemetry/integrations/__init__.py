"""Publishing other libraries' training loops on the bus: Stable-Baselines3 and Gymnasium.

Each integration is its own module (``telemetry.integrations.sb3``,
``telemetry.integrations.gym``) that imports its library itself, so
``import telemetry`` never needs them; a missing one raises ``ImportError``
with the command that installs it. Both take a ``Publisher``: a ``Bus``, or
anything with its ``log`` and ``emit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

__all__ = ["Publisher", "check_publisher", "missing"]


class Publisher(Protocol):
    """What the integrations publish through: ``Bus.log`` and ``Bus.emit``."""

    def log(self, values: Mapping[str, Any], *, step: int, axis: str = "step") -> object: ...

    def emit(self, event_type: Any, /, **fields: Any) -> object: ...


def check_publisher(bus: object, who: str) -> Publisher:
    """``bus`` if it can ``log`` and ``emit``, else a ``TypeError`` saying what is allowed."""
    if callable(getattr(bus, "log", None)) and callable(getattr(bus, "emit", None)):
        return cast(Publisher, bus)
    raise TypeError(
        f"{who} publishes through a telemetry Bus (or an object with its "
        f"log(values, step=, axis=) and emit(EventClass, **fields)), got {type(bus).__name__}"
    )


def missing(package: str, install: str) -> ImportError:
    """The error an integration raises when its library is not installed: what to run."""
    return ImportError(f"this integration needs {package}, which is not installed: {install}")
