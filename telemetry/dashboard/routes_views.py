"""The dashboard's routes for the trades, health and sweep views (JSON, read-only).

``/api/run/{id}/trades`` and ``/api/run/{id}/health`` read one run's log,
``/api/sweep/{id}`` one sweep folder, all through ``telemetry.stats``; every id from a
URL goes through ``resolve_under`` (403 outside the runs folder), an id naming no run
or sweep is a 404, and a malformed log line is listed as a problem, never a 500.
A view is kept until its files change (size and modification time), so a page that
asks again does not read the log again.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from telemetry.dashboard.paths import PathRefused, relative_id, resolve_under
from telemetry.errors import LogFormatError, TelemetryError
from telemetry.events import TradeClosed
from telemetry.reader import LOG_NAME, LogReader
from telemetry.stats.health import health_view
from telemetry.stats.sweeps import sweep_view
from telemetry.stats.trades import trade_statistics, trade_views
from telemetry.sweep.folder import JOURNAL_FILE, META_FILE, RESULTS_FILE

CACHED = 32
"""Views kept at most (the least recently asked for go first)."""


def _json(content: Any, status: int = 200) -> Response:
    # orjson writes NaN and infinities as null: JSON has neither.
    return Response(
        orjson.dumps(content, default=str, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
    )


class _Missing(LookupError):
    """An id that names no run or sweep under the runs folder."""


def trades_view(run_dir: Path) -> dict[str, Any]:
    """The trade views' data and statistics of the run, and the log's problem lines."""
    reader = LogReader(run_dir)
    trades: list[TradeClosed] = []
    problems: list[dict[str, Any]] = []
    try:
        trades = [event for event in reader if isinstance(event, TradeClosed)]
    except LogFormatError as exc:
        problems.append({"line": 1, "reason": str(exc)})
    problems.extend({"line": p.line, "reason": p.reason} for p in reader.problems)
    statistics = {
        key: value if math.isfinite(value) else None
        for key, value in trade_statistics(trades).items()
    }
    return {"views": trade_views(trades), "statistics": statistics, "problems": problems}


class _Views:
    """The views of the runs folder ``root``, each kept until its files change."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._kept: OrderedDict[tuple[str, Path], tuple[Any, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def run_folder(self, run_id: str) -> Path:
        folder = resolve_under(self.root, run_id)
        if not (folder / LOG_NAME).is_file():
            raise _Missing(f"no run {run_id!r} under the runs folder")
        return folder

    def sweep_folder(self, sweep_id: str) -> Path:
        folder = resolve_under(self.root, sweep_id)
        if not (folder / META_FILE).is_file():
            raise _Missing(f"no sweep {sweep_id!r} under the runs folder")
        return folder

    def view(
        self, kind: str, folder: Path, files: Sequence[str], make: Callable[[Path], dict[str, Any]]
    ) -> dict[str, Any]:
        signature = tuple(_stamp(folder / name) for name in files)
        key = (kind, folder)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept[0] == signature:
                self._kept.move_to_end(key)
                return kept[1]
        value = make(folder)
        with self._lock:
            self._kept[key] = (signature, value)
            while len(self._kept) > CACHED:
                self._kept.popitem(last=False)
        return value

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        folder = self.sweep_folder(sweep_id)
        files = (META_FILE, RESULTS_FILE, JOURNAL_FILE)
        try:
            data = dict(self.view("sweep", folder, files, sweep_view))
        except (TelemetryError, ValueError, KeyError) as exc:  # sweep.json unreadable
            raise _Missing(f"sweep {sweep_id!r}: {META_FILE} cannot be read ({exc})") from None
        data["sweep"] = relative_id(self.root, folder)
        data["trials"] = [self._with_run_id(t) for t in data["trials"]]
        data["best"] = None if data["best"] is None else self._with_run_id(data["best"])
        return data

    def _with_run_id(self, trial: dict[str, Any]) -> dict[str, Any]:
        """The trial with the dashboard id of its run (None outside the runs folder)."""
        run_id = None
        if trial.get("run_dir"):
            path = Path(trial["run_dir"]).resolve()
            if path == self.root or self.root in path.parents:
                run_id = relative_id(self.root, path)
        return {**trial, "run_id": run_id}


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


Handler = Callable[[Request], Awaitable[Response]]


def _answer(work: Callable[[str], dict[str, Any]]) -> Handler:
    """A handler running ``work(id)`` in a worker thread, its refusals as JSON errors."""

    async def handle(request: Request) -> Response:
        try:
            return _json(await anyio.to_thread.run_sync(work, request.path_params["id"]))
        except PathRefused as exc:
            return _json({"error": str(exc)}, 403)
        except _Missing as exc:
            return _json({"error": str(exc)}, 404)

    return handle


def routes(root: Path) -> list[BaseRoute]:
    """The trades, health and sweep routes over the runs folder ``root``; they must come
    before a catch-all ``/api/run/{id:path}`` route."""
    views = _Views(root)

    def trades(run_id: str) -> dict[str, Any]:
        return views.view("trades", views.run_folder(run_id), (LOG_NAME,), trades_view)

    def health(run_id: str) -> dict[str, Any]:
        return views.view("health", views.run_folder(run_id), (LOG_NAME,), health_view)

    return [
        Route("/api/run/{id:path}/trades", _answer(trades)),
        Route("/api/run/{id:path}/health", _answer(health)),
        Route("/api/sweep/{id:path}", _answer(views.sweep)),
    ]
