"""What agents print while they run: a live table in a terminal, JSON lines otherwise."""

from __future__ import annotations

import json
import sys
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table


class Monitor:
    """Receives each trial's start and end; draws them as a table, or prints each as JSON."""

    def __init__(self, metric: str | None, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self._metric = metric
        self._rows: dict[int, dict[str, Any]] = {}
        self._live: Live | None = None
        if self._out.isatty():
            self._live = Live(self._table(), console=Console(file=self._out), auto_refresh=False)

    def __enter__(self) -> Monitor:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()

    def __call__(self, record: dict[str, Any]) -> None:
        number = int(record["trial"])
        row = self._rows.setdefault(number, {"outcome": "running"})
        row.update(record)
        if self._live is None:
            print(json.dumps(record, default=str), file=self._out, flush=True)
        else:
            self._live.update(self._table(), refresh=True)

    def _table(self) -> Table:
        table = Table(title="sweep trials")
        for column in ("trial", "state", "parameters", f"best {self._metric or ''}", "duration"):
            table.add_column(column)
        for number, row in sorted(self._rows.items()):
            best = row.get("best")
            duration = row.get("duration")
            table.add_row(
                str(number),
                str(row.get("outcome", "running")),
                _params(row.get("params", {})),
                "" if best is None else f"{best:.6g}",
                "" if duration is None else f"{duration:.1f} s",
            )
        return table


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in params.items())


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
