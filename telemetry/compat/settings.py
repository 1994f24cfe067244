"""Where a script's run sends its events: ``telemetry.yaml``, ``TELEMETRY_*``, ``init(settings=)``.

Later sources win: the defaults, then ``telemetry.yaml`` beside the script (the
``__main__`` file's folder), then the environment, then ``init(settings={...})``.
An environment variable is ``TELEMETRY_`` and the key in capitals, a section's key
after a double underscore: ``TELEMETRY_SINKS=jsonl,console,wandb``,
``TELEMETRY_OUT=runs``, ``TELEMETRY_WANDB__MODE=offline``,
``TELEMETRY_CONSOLE__EVERY=10``. The sweep's own variables (``TELEMETRY_SWEEP_ID``,
``TELEMETRY_TRIAL``, ``TELEMETRY_RUN_DIR``, ``TELEMETRY_PARAMS_FILE``) are not settings.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sinks.registry import LOG_SINK
from sinks.settings import validate_sinks, with_sections
from telemetry.alerts import AlertsSection
from telemetry.checks import COUNT, TIMEOUT, Interval, check_numbers
from telemetry.config import load_config
from telemetry.errors import ConfigError
from telemetry.intake import INTAKE_CAPACITY

LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50, "off": 0}
"""``log_records`` values and the ``logging`` level each stands for (0: none captured)."""
FILE_NAME = "telemetry.yaml"
ENV_PREFIX = "TELEMETRY_"
SWEEP_ENV = frozenset({"SWEEP_ID", "TRIAL", "RUN_DIR", "PARAMS_FILE"})
WANDB_MODES = {"online": "online", "offline": "offline", "disabled": "disabled"}
WANDB_MODES |= {"dryrun": "offline", "run": "online"}


@dataclass
class CompatSettings:
    """What a run of ``import telemetry as wandb`` reads besides the sink sections."""

    out: str = "runs"
    """Folder in which each run gets its own sub-folder (``init(dir=)`` sets it too)."""
    sinks: list[str] | None = None
    """Sinks besides the log; default console, plus wandb when ``mode`` or WANDB_MODE asks."""
    close_timeout: float = 10.0
    """Seconds ``finish`` (and closing at interpreter exit) may take at most."""
    health_interval: float = 0.0
    """Seconds between pipeline health events (0: only at close)."""
    intake_capacity: int = INTAKE_CAPACITY
    """Events published and not yet handed to the sinks at most; past it ``log`` waits."""
    system_interval: float = 10.0
    """Seconds between system metrics (CPU, memory, threads, disk, GPU) under system/; 0 off."""
    log_records: str = "warning"
    """The lowest level of the script's ``logging`` records that become events of the run
    (debug, info, warning, error, critical), or ``off``; below warning it also lowers the
    root logger's level to it while the run lasts (Python's default lets only warnings by)."""
    alerts: AlertsSection = field(default_factory=AlertsSection)

    def validate(self) -> None:
        check_numbers("", self, _LIMITS)
        if self.log_records not in LOG_LEVELS:
            allowed = ", ".join(LOG_LEVELS)
            raise ConfigError(f"log_records must be one of {allowed}, got {self.log_records!r}")
        self.alerts.spec()
        validate_sinks(self, self.sink_names)
        if LOG_SINK not in (self.sinks or []):
            getattr(self, LOG_SINK).validate(LOG_SINK)

    @property
    def sink_names(self) -> list[str]:
        """The durable log first, then the other sinks."""
        return [LOG_SINK, *(n for n in self.sinks or ["console"] if n != LOG_SINK)]


_LIMITS = {
    "close_timeout": TIMEOUT,
    "system_interval": Interval(0.0, text="0 or more"),
    "health_interval": Interval(0.0, text="0 or more"),
    "intake_capacity": COUNT,
}


def script_folder() -> Path:
    """The ``__main__`` file's folder (the working directory for ``python -c`` or a REPL)."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(main_file).resolve().parent if main_file else Path.cwd()


def env_overrides(environ: Mapping[str, str]) -> list[str]:
    """``key=value`` overrides from ``TELEMETRY_*`` variables."""
    out = []
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name[len(ENV_PREFIX) :] in SWEEP_ENV:
            continue
        key = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        out.append(f"{key}={value}")
    return out


def settings_overrides(settings: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``key=value`` overrides from ``init(settings={...})``, nested or dotted."""
    out = []
    for key, value in settings.items():
        if isinstance(value, Mapping):
            out += settings_overrides(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def load_settings(
    given: Mapping[str, Any] | None,
    *,
    mode: str | None,
    folder: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Any:
    """The run's settings (a ``CompatSettings`` with a section per sink), checked.

    ``mode`` (``init(mode=)``, else WANDB_MODE) online or offline sets the wandb sink's
    mode and adds the sink (WANDB_MODE only when no sink list was given); ``disabled``
    removes it.
    A bad value raises ``ConfigError`` naming where it came from.
    """
    schema = with_sections("CompatConfig", CompatSettings)
    if given is not None and not isinstance(given, Mapping):
        raise ConfigError(
            "init(settings=...) takes a dict of telemetry settings "
            f"(out, sinks, close_timeout, wandb.mode...), got {type(given).__name__}"
        )
    path = (folder or script_folder()) / FILE_NAME
    file = path if path.is_file() else None
    stages = [
        (str(path), []),
        ("the TELEMETRY_* environment", env_overrides(environ)),
        ("init(settings=...)", settings_overrides(given or {})),
    ]
    overrides: list[str] = []
    config: Any = None
    for where, more in stages:
        overrides += more
        if config is not None and not more:
            continue
        try:
            config = load_config(schema, file, overrides)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    wanted = mode if mode is not None else environ.get("WANDB_MODE") or None
    if wanted is not None:
        resolved = WANDB_MODES.get(wanted.strip().lower())
        if resolved is None:
            allowed = ", ".join(WANDB_MODES)
            raise ConfigError(f"mode must be one of {allowed}, got {wanted!r}")
        if resolved == "disabled":
            config.sinks = [n for n in config.sink_names if n != "wandb"]
        else:
            config.wandb.mode = resolved
            if config.sinks is None or (mode is not None and "wandb" not in config.sinks):
                config.sinks = [*(config.sinks or ["console"]), "wandb"]
    config.validate()
    return config
