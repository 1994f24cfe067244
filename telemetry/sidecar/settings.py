"""The run's ``sidecar`` config section: where sinks run unless their section says."""

from __future__ import annotations

from dataclasses import dataclass

from telemetry.checks import Interval, check_numbers
from telemetry.errors import ConfigError

DEFAULTS = ("auto", "in", "sidecar")
PRIORITIES = ("idle", "low", "normal")


@dataclass
class SidecarSection:
    """Where sinks whose section says ``process=auto`` run, and how often a sidecar restarts."""

    default: str = "auto"
    """``in``: every sink in the training process; ``sidecar``: sinks that can move (wandb,
    TensorBoard, console, an added sink; not the log, memory or, unless asked, redis) in a
    sidecar process that follows the log; ``auto``: ``sidecar`` when the run has a sink
    that can move other than the console (wandb, TensorBoard, an added sink), else ``in``."""
    restarts: int = 5
    """Times a sidecar that died (``kill -9``) is started again in one run at most."""
    priority: str = "idle"
    """CPU priority of the sidecar and what it starts (wandb's service): ``idle`` (Linux's
    ``SCHED_IDLE``: it runs only on a core the trainer leaves idle; elsewhere as ``low``),
    ``low`` (nice 19) or ``normal``. It falls behind on the log while training takes
    every core and catches up as cores free up (at the latest while the run closes)."""

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is not allowed."""
        if self.default not in DEFAULTS:
            allowed = ", ".join(DEFAULTS)
            raise ConfigError(f"sidecar.default must be {allowed}, got {self.default!r}")
        if self.priority not in PRIORITIES:
            allowed = ", ".join(PRIORITIES)
            raise ConfigError(f"sidecar.priority must be one of {allowed}, got {self.priority!r}")
        check_numbers("sidecar", self, {"restarts": Interval(0, integer=True, text="0 or more")})
