"""Reading a wandb run file (``run-<id>.wandb``) back in tests: the package's reader
(``sinks.wandb_runfile``) and the config and run file lookups the tests use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sinks.wandb_runfile import history, records

__all__ = ["config", "history", "records", "run_file"]


def config(path: Path) -> dict[str, Any]:
    """The run config as the file last sets it."""
    values: dict[str, Any] = {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            for item in record.config.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "run":
            for item in record.run.config.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values


def run_file(folder: Path) -> Path:
    """The single ``run-*.wandb`` file under ``folder``."""
    found = sorted(folder.rglob("run-*.wandb"))
    if len(found) != 1:
        raise AssertionError(f"expected one wandb run file under {folder}, found {found}")
    return found[0]
