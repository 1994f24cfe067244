"""Which files the dashboard may read: only under its runs folder, whatever a URL says."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


class PathRefused(ValueError):
    """A requested path that is not a folder or file under the dashboard's runs folder."""


def resolve_under(root: Path, relative: str) -> Path:
    """``root / relative`` resolved (symlinks followed), refused unless it stays under ``root``.

    ``relative`` comes from a URL: absolute paths, ``..`` parts, backslashes and NUL
    bytes are refused before touching the disk, and the resolved path is checked
    again, so a symlink inside ``root`` pointing out of it is refused too.
    """
    if "\x00" in relative or "\\" in relative:
        raise PathRefused(f"path {relative!r} holds a character that is not allowed")
    parts = PurePosixPath(relative).parts
    if relative.startswith("/") or any(part in ("..", "~") for part in parts):
        raise PathRefused(f"path {relative!r} is outside the runs folder")
    base = root.resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise PathRefused(f"path {relative!r} is outside the runs folder")
    return target


def relative_id(root: Path, path: Path) -> str:
    """The id the dashboard gives ``path`` under ``root``: its posix path relative to it."""
    return path.resolve().relative_to(root.resolve()).as_posix()
