"""A sweep's folder: the sweep file as given, its settings, the engine's storage, the results.

``out/sweeps/<id>/`` holds ``sweep.yaml`` (the file as given), ``sweep.json``
(id, seed, base overrides, storage), ``optuna.journal`` (the default storage),
``results.jsonl`` (one line per ended trial) and ``trials/<number>/`` (each
trial's output, parameters and run folder). An agent on another host names
the sweep by its id and the shared storage; its folder is made from what the
storage holds.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from telemetry.errors import ConfigError
from telemetry.sweep.engine import Engine, open_storage
from telemetry.sweep.spec import SweepSpec, load_sweep

SWEEP_FILE = "sweep.yaml"
META_FILE = "sweep.json"
JOURNAL_FILE = "optuna.journal"
RESULTS_FILE = "results.jsonl"
TRIALS_DIR = "trials"


@dataclass(frozen=True, slots=True)
class SweepFolder:
    """Where a sweep lives, and what every agent of it needs to know."""

    path: Path
    id: str
    seed: int
    overrides: tuple[str, ...]
    """The base config of every trial (``KEY=VALUE``)."""
    storage: str
    """The engine's storage: a journal file, or a database URL shared by several hosts."""

    @property
    def spec(self) -> SweepSpec:
        """The sweep file, parsed."""
        return load_sweep(self.path / SWEEP_FILE)

    @property
    def results(self) -> Path:
        return self.path / RESULTS_FILE

    def trial_folder(self, number: int) -> Path:
        return self.path / TRIALS_DIR / f"{number:04d}"

    def engine(self) -> Engine:
        """A new handle on the sweep's study (one per agent)."""
        return Engine.load(self.spec, open_storage(self.storage), self.id)

    def save(self) -> None:
        meta = {**asdict(self), "path": None, "overrides": list(self.overrides)}
        (self.path / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def create_sweep(
    sweep_file: Path, out: Path, *, seed: int, storage: str | None, overrides: Sequence[str]
) -> tuple[SweepFolder, SweepSpec]:
    """A new sweep folder and its study, holding the sweep's work list."""
    spec = load_sweep(sweep_file)
    sweep_id = secrets.token_hex(4)
    path = (out / "sweeps" / sweep_id).resolve()  # trials run in their own folders
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise ConfigError(f"out: cannot create {path}: {exc.strerror}") from None
    shutil.copyfile(sweep_file, path / SWEEP_FILE)
    folder = SweepFolder(
        path=path,
        id=sweep_id,
        seed=seed,
        overrides=tuple(overrides),
        storage=storage or str(path / JOURNAL_FILE),
    )
    folder.save()
    attrs = {
        "sweep_file": sweep_file.read_text(encoding="utf-8"),
        "overrides": list(overrides),
        "created": time.time(),
    }
    Engine.create(spec, open_storage(folder.storage), sweep_id, seed, attrs).close()
    return folder, spec


def find_sweep(target: str, out: Path, storage: str | None) -> SweepFolder:
    """The sweep named by its folder, by its id under ``out/sweeps``, or by its id in
    ``storage`` (another host's sweep: its folder is made here)."""
    for path in (Path(target), out / "sweeps" / target):
        if (path / META_FILE).is_file():
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
            return SweepFolder(
                path=path.resolve(),
                id=meta["id"],
                seed=int(meta["seed"]),
                overrides=tuple(meta["overrides"]),
                storage=storage or meta["storage"],
            )
    if storage is None:
        raise ConfigError(
            f"sweep {target!r}: no sweep folder there nor under {out / 'sweeps'}; "
            "give its folder, or its id with storage=URL"
        )
    return _from_storage(target, out, storage)


def _from_storage(sweep_id: str, out: Path, storage: str) -> SweepFolder:
    import optuna

    opened = open_storage(storage)
    try:
        attrs = optuna.load_study(study_name=sweep_id, storage=opened).user_attrs
    except KeyError:
        raise ConfigError(f"sweep {sweep_id!r} is not in storage {storage}") from None
    finally:
        if isinstance(opened, optuna.storages.RDBStorage):
            opened.engine.dispose()
    path = (out / "sweeps" / sweep_id).resolve()
    path.mkdir(parents=True, exist_ok=True)
    (path / SWEEP_FILE).write_text(str(attrs["sweep_file"]), encoding="utf-8")
    folder = SweepFolder(
        path=path,
        id=sweep_id,
        seed=int(attrs.get("seed", 0)),
        overrides=tuple(attrs.get("overrides", [])),
        storage=storage,
    )
    folder.save()
    return folder
