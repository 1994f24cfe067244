"""``import telemetry as wandb``: scripts written against wandb's API, on this pipeline.

``telemetry.init(...)`` starts a run whose events go through a bus on its own event
loop in a daemon thread, into the durable JSON Lines log of a run folder (as
``main.py train`` writes one, so ``main.py replay`` takes it) and the sinks the
settings name (``telemetry.compat.settings``). The run's ``log`` follows wandb's step
rules (``telemetry.compat.run``). A call outside the supported API raises
``UnsupportedAPIError`` naming it.
"""

from telemetry.compat.api import SUPPORTED, AlertLevel, finish, init
from telemetry.compat.artifact import Artifact
from telemetry.compat.errors import UnsupportedAPIError
from telemetry.compat.run import Run

__all__ = ["SUPPORTED", "AlertLevel", "Artifact", "Run", "UnsupportedAPIError", "finish", "init"]
