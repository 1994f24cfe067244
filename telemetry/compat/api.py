"""The module-level API of ``import telemetry as wandb``: ``init`` and the current run's calls.

As in wandb, ``init`` points the package's ``log``, ``config``, ``summary``... at the
new run (plain attributes: ``wandb.log`` costs no lookup through a wrapper) and
``finish`` puts back the ones that say ``init`` must come first.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
import yaml
from omegaconf import OmegaConf

from sinks.settings import build_sinks
from telemetry.bus import Bus, RunInfo
from telemetry.compat.artifact import Artifact
from telemetry.compat.background import BackgroundBus
from telemetry.compat.config import Config, as_mapping, plain
from telemetry.compat.errors import unsupported
from telemetry.compat.run import AXIS, SUMMARY_NAME, Run
from telemetry.compat.settings import LOG_LEVELS, load_settings
from telemetry.compat.summary import Summary
from telemetry.errors import ConfigError, LogFormatError
from telemetry.events import Metrics, RunStarted
from telemetry.reader import LOG_NAME, LogReader
from telemetry.session import CONFIG_NAME, RunFolder, existing_run_folder
from telemetry.sink import SinkContext

logger = structlog.get_logger("telemetry.compat")


class AlertLevel(enum.StrEnum):
    """How urgent an ``alert`` is, by wandb's names."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


RUN_BOUND = ("alert", "config", "define_metric", "log", "log_artifact", "save", "summary")
"""Package attributes that are the current run's own after ``init``."""
STATIC = ("AlertLevel", "Artifact", "finish", "init", "run")
SUPPORTED = (*RUN_BOUND, *STATIC)
RESUME = ("allow", "must", "never", "auto")
REINIT = ("default", "return_previous", "finish_previous", "create_new")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

_REINIT_WORDS: dict[bool | None, str] = {
    True: "finish_previous",
    False: "return_previous",
    None: "default",
}
_active: list[Run] = []
_lock = threading.Lock()
_hooked = False


class _BeforeInit:
    """``wandb.config`` (or ``summary``, ``log``...) before ``init``: any use says so."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise ConfigError(f"call init() before using {self._name} (wandb.init() first)")

    __call__ = __getitem__ = __setitem__ = __iter__ = __len__ = _refuse

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        self._refuse()

    def __repr__(self) -> str:
        return f"<{self._name}: call init() first>"


def before_init(name: str) -> Any:
    """What a run-bound name is before ``init`` (``run`` is None, as in wandb)."""
    return None if name == "run" else _BeforeInit(f"telemetry.{name}")


def _package() -> Any:
    return sys.modules["telemetry"]


def _bind(run: Run | None) -> None:
    package = vars(_package())
    for name in RUN_BOUND:
        if run is None:
            package.pop(name, None)
        else:
            package[name] = getattr(run, name)
    if run is None:
        package.pop("run", None)
    else:
        package["run"] = run


def forget(run: Run) -> None:
    """``run`` has finished: the package's names follow the run before it, or none."""
    with _lock:
        if run in _active:
            _active.remove(run)
        _bind(_active[-1] if _active else None)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run (nothing if there is none)."""
    run = _active[-1] if _active else None
    if run is not None:
        run.finish(exit_code)


def init(
    project: str | None = None,
    entity: str | None = None,
    name: str | None = None,
    id: str | None = None,
    config: Any = None,
    tags: Sequence[str] | None = None,
    group: str | None = None,
    notes: str | None = None,
    job_type: str | None = None,
    mode: str | None = None,
    resume: bool | str | None = None,
    dir: str | os.PathLike[str] | None = None,
    reinit: bool | str | None = None,
    anonymous: str | None = None,
    settings: Mapping[str, Any] | None = None,
    **others: Any,
) -> Run:
    """Start a run whose events go through the pipeline; see ``telemetry.compat``."""
    if others:
        raise unsupported(f"init({next(iter(others))}=...)", _INIT_ARGS)
    previous = _active[-1] if _active else None
    if previous is not None:
        choice = reinit if isinstance(reinit, str) else _REINIT_WORDS[reinit]
        if choice not in REINIT:
            raise ConfigError(f"reinit must be True, False or one of {', '.join(REINIT)}")
        if choice == "return_previous":
            return previous
        if choice in ("default", "finish_previous"):
            previous.finish()
    environ = os.environ
    sweep = environ.get("TELEMETRY_SWEEP_ID")
    options = load_settings(settings, mode=mode, environ=environ)
    out = Path(environ["TELEMETRY_RUN_DIR"]) if sweep and "TELEMETRY_RUN_DIR" in environ else None
    out = out or (Path(dir) if dir is not None else Path(options.out))
    project = project or environ.get("WANDB_PROJECT") or "uncategorized"
    entity = entity or environ.get("WANDB_ENTITY")
    if sweep:
        group, job_type = sweep, "sweep"
    folder = _folder(out, id, resume, name or project)
    given = as_mapping(config)
    locked = _sweep_params(environ) if sweep else {}
    saved = _saved(folder)
    run_config = Config({**saved.get("config", {}), **given}, locked=locked)
    name = name or saved.get("init", {}).get("name")
    if not name:
        name = f"{sweep}-{environ.get('TELEMETRY_TRIAL', '0')}" if sweep else f"run-{folder.run_id}"
    identity = {
        "name": name,
        "project": project,
        "entity": entity,
        "group": group,
        "job_type": job_type,
        "tags": list(tags or ()),
        "notes": notes,
        "resumed": folder.resumed,
    }
    for key, value in (("project", project), ("entity", entity), ("job_type", job_type)):
        if value is not None and getattr(options.wandb, key, None) in (None, "train"):
            setattr(options.wandb, key, value)
    _save_config(folder, options, identity, run_config.as_dict())
    context = SinkContext(
        run_id=folder.run_id, run_dir=folder.path, run_name=name, resumed=folder.resumed
    )
    info = RunInfo(
        name=name,
        project=project,
        tags=tuple(tags or ()),
        group=group,
        notes=notes,
        config=plain(run_config.as_dict()),
        resumed=folder.resumed,
    )
    bus = Bus(
        folder.run_id,
        build_sinks(options, options.sink_names, context),
        run=info,
        health_interval=options.health_interval or None,
        close_timeout=options.close_timeout,
        first_seq=folder.last_seq,
        intake_capacity=options.intake_capacity,
        alerts=options.alerts.spec(),
    )
    background = BackgroundBus(
        bus,
        system_interval=options.system_interval,
        log_level=LOG_LEVELS[options.log_records],
    )
    background.start(timeout=60.0)
    summary = Summary(saved.get("summary"))
    run = Run(
        background=background,
        config=run_config,
        summary=summary,
        identity=identity,
        run_dir=folder.path,
        first_step=_next_step(folder),
    )
    with _lock:
        _active.append(run)
        _bind(run)
    _hook()
    return run


_INIT_ARGS = [
    "anonymous",
    "config",
    "dir",
    "entity",
    "group",
    "id",
    "job_type",
    "mode",
    "name",
    "notes",
    "project",
    "reinit",
    "resume",
    "settings",
    "tags",
]


def _folder(out: Path, run_id: str | None, resume: bool | str | None, label: str) -> RunFolder:
    """The run's folder: a new one, or with ``resume`` and an ``id`` the one of that run."""
    choice = resume if isinstance(resume, str) or resume is None else ("auto" if resume else None)
    if choice is not None and choice not in RESUME:
        raise ConfigError(f"resume must be True, False or one of {', '.join(RESUME)}")
    if run_id is not None and not _ID.fullmatch(str(run_id)):
        raise ConfigError(f"id must be 1 to 64 letters, digits, '-' or '_', got {run_id!r}")
    found = sorted(out.glob(f"*-{run_id}")) if run_id and out.is_dir() else []
    found = [p for p in found if (p / LOG_NAME).is_file()]
    if found and choice in ("allow", "must", "auto"):
        return existing_run_folder(found[-1])
    if found:
        raise ConfigError(
            f"run {run_id} already exists ({found[-1]}); pass resume='allow' to continue it"
        )
    if choice == "must":
        raise ConfigError(f"resume='must': no run {run_id!r} under {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"out: cannot create {out}: {exc.strerror}") from None
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.")[:40] or "run"
    while True:
        chosen = run_id or secrets.token_hex(4)
        path = out / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{chosen}"
        try:
            path.mkdir()
        except FileExistsError:
            if run_id:
                raise ConfigError(f"run folder {path} already exists") from None
            continue
        return RunFolder(path=path, run_id=chosen)


def _sweep_params(environ: Mapping[str, str]) -> dict[str, Any]:
    path = environ.get("TELEMETRY_PARAMS_FILE")
    if not path:
        return {}
    try:
        params = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"TELEMETRY_PARAMS_FILE {path}: {exc}") from None
    if not isinstance(params, dict):
        raise ConfigError(f"TELEMETRY_PARAMS_FILE {path} does not hold a JSON object")
    return params


def _saved(folder: RunFolder) -> dict[str, Any]:
    """What a resumed run's folder says of it: config, init arguments, summary."""
    if not folder.resumed:
        return {}
    saved: dict[str, Any] = {}
    try:
        loaded = yaml.safe_load((folder.path / CONFIG_NAME).read_text()) or {}
        saved = {k: loaded.get(k) or {} for k in ("config", "init")}
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    with contextlib.suppress(OSError, ValueError):
        saved["summary"] = json.loads((folder.path / SUMMARY_NAME).read_text())
    return saved


def _save_config(folder: RunFolder, options: Any, identity: dict[str, Any], config: Any) -> None:
    document = OmegaConf.to_container(OmegaConf.structured(options))
    assert isinstance(document, dict)
    document.update(init=plain(identity), config=plain(config))
    (folder.path / CONFIG_NAME).write_text(yaml.safe_dump(document, sort_keys=False))


def _next_step(folder: RunFolder) -> int:
    """A resumed run's step continues after the last row its log holds, as wandb's ``_step``."""
    if not folder.resumed:
        return 0
    last = -1
    try:
        for event in LogReader(folder.path):
            if isinstance(event, Metrics) and event.axis == AXIS:
                last = max(last, event.step)
            elif isinstance(event, RunStarted):
                continue
    except LogFormatError:
        pass
    return last + 1


# -- the end of the process: runs never finished are finished, within their deadline --


def _hook() -> None:
    global _hooked
    if _hooked:
        return
    _hooked = True
    atexit.register(_at_exit)
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        for run in list(_active):
            run.mark_exception(exc)
        previous(kind, exc, tb)

    sys.excepthook = excepthook
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM: end as ``interrupted`` through the normal exit, so the run closes."""
    for run in list(_active):
        run.status, run.error = "interrupted", None
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(128 + signum)


def _at_exit() -> None:
    for run in reversed(list(_active)):
        run._end()


__all__ = [
    "SUPPORTED",
    "AlertLevel",
    "Artifact",
    "before_init",
    "finish",
    "forget",
    "init",
    "unsupported",
]
