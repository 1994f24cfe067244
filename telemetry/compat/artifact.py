"""``Artifact``: files and folders a run saves, published as ``artifact`` events."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from telemetry.compat.errors import unsupported
from telemetry.errors import ConfigError

ARTIFACT_API = ("add_dir", "add_file", "description", "metadata", "name", "type")


class Artifact:
    """A named set of files with metadata, as ``wandb.Artifact`` (files and folders only)."""

    def __init__(
        self,
        name: str,
        type: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not name:
            raise ConfigError("Artifact: name must be a non-empty string")
        self.name = name
        self.type = type
        self.description = description
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.entries: list[tuple[str, Path]] = []
        """``(name inside the artifact, local path)``, in the order added."""

    def add_file(self, local_path: str | Path, name: str | None = None, **_: Any) -> Path:
        """Add one file; ``name`` is its name inside the artifact (default: its own)."""
        path = Path(local_path)
        if not path.is_file():
            raise ConfigError(f"Artifact {self.name!r}: add_file: {path} is not a file")
        self.entries.append((name or path.name, path.resolve()))
        return path

    def add_dir(self, local_path: str | Path, name: str | None = None, **_: Any) -> None:
        """Add a folder and everything in it; ``name`` is its prefix inside the artifact."""
        path = Path(local_path)
        if not path.is_dir():
            raise ConfigError(f"Artifact {self.name!r}: add_dir: {path} is not a folder")
        self.entries.append((name or "", path.resolve()))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise unsupported(f"Artifact.{name}", ARTIFACT_API)

    def local_path(self, folder: Path) -> Path:
        """One path holding the artifact: its only entry, or a copy of all in ``folder``."""
        if (len(self.entries) == 1 and not self.entries[0][0].strip("/")) or (
            len(self.entries) == 1 and self.entries[0][1].is_file()
        ):
            return self.entries[0][1]
        if not self.entries:
            raise ConfigError(f"Artifact {self.name!r} holds no files; add_file or add_dir first")
        target = folder / self.name
        for inside, path in self.entries:
            where = target / inside if inside else target
            if path.is_dir():
                shutil.copytree(path, where, dirs_exist_ok=True)
            else:
                where.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, where)
        return target
