"""The dashboard's JSON routes: runs, one run, its series, and several runs compared."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from telemetry.dashboard.downsample import column_series
from telemetry.dashboard.index import NotFound, RunIndex
from telemetry.dashboard.paths import PathRefused
from telemetry.dashboard.runstate import RunState
from telemetry.params import dotted

MAX_WIDTH = 10_000
MAX_KEYS = 200
Handler = Callable[[Request], Awaitable[Response]]


class JSON(JSONResponse):
    """JSON by orjson: NaN and infinities become null, numpy numbers and odd values text."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str, option=orjson.OPT_SERIALIZE_NUMPY)


class BadRequest(ValueError):
    """A query parameter that is not allowed; its message names it."""


def error(status: int, message: str) -> JSONResponse:
    return JSON({"error": message}, status_code=status)


def guarded(handler: Handler) -> Handler:
    """Turn the dashboard's refusals into JSON errors: 400 bad query, 403 outside, 404 unknown."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except PathRefused as exc:
            return error(403, str(exc))
        except NotFound as exc:
            return error(404, str(exc))
        except BadRequest as exc:
            return error(400, str(exc))

    return run


def _number(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"{name}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise BadRequest(f"{name}={text!r} must be finite")
    return value


def series_query(request: Request) -> tuple[list[str], str, int, float | None, float | None]:
    """``keys, x, width, start, end`` from a series request, each checked."""
    keys = [k for k in request.query_params.get("keys", "").split(",") if k]
    if len(keys) > MAX_KEYS:
        raise BadRequest(f"keys: at most {MAX_KEYS} keys per request, got {len(keys)}")
    axis = request.query_params.get("x", "step")
    if axis not in ("step", "time"):
        raise BadRequest(f"x={axis!r}: allowed are step, time")
    width = _number(request, "width")
    if width is None:
        width = 1000
    if not 10 <= width <= MAX_WIDTH:
        raise BadRequest(f"width={width:g}: allowed is 10 to {MAX_WIDTH}")
    return keys, axis, int(width), _number(request, "start"), _number(request, "end")


def run_series(
    state: RunState, keys: list[str], axis: str, width: int, start: float | None, end: float | None
) -> dict[str, Any]:
    """Per key: its line, its evaluations and its aggregate band, all on the same x."""
    result: dict[str, Any] = {}
    with state.lock:
        for key in keys:
            entry: dict[str, Any] = {}
            line = state.metrics.by_key.get(key)
            if line is not None:
                entry = column_series(line, axis, width, start, end) | {"line": "metrics"}
            evaluation = state.evaluations.by_key.get(key)
            if evaluation is not None:
                points = column_series(evaluation, axis, width, start, end)
                if entry:
                    entry["evaluations"] = {"x": points["x"], "y": points["y"]}
                else:  # a key only evaluations publish: its points are the line
                    entry = points | {"line": "evaluation"}
            mean = state.aggregates.by_key.get(f"{key}/mean")
            std = state.aggregates.by_key.get(f"{key}/std")
            if mean is not None and std is not None and mean.size == std.size:
                means = column_series(mean, axis, width, start, end)
                stds = column_series(std, axis, width, start, end)
                if means["x"] == stds["x"]:
                    entry["aggregates"] = {"x": means["x"], "mean": means["y"], "std": stds["y"]}
            if entry:
                result[key] = entry
    return result


def routes(index: RunIndex) -> list[BaseRoute]:
    """The JSON routes over ``index``."""

    async def runs(request: Request) -> Response:
        return JSON(await anyio.to_thread.run_sync(index.listing))

    async def run(request: Request) -> Response:
        state = await anyio.to_thread.run_sync(index.run, request.path_params["id"])
        with state.lock:
            return JSON(state.details())

    async def series(request: Request) -> Response:
        query = series_query(request)
        state = await anyio.to_thread.run_sync(index.run, request.path_params["id"])
        data = await anyio.to_thread.run_sync(run_series, state, *query)
        return JSON({"series": data, "offset": state.offset})

    async def compare(request: Request) -> Response:
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if not 1 <= len(ids) <= 20:
            raise BadRequest(f"ids: give 1 to 20 run ids, got {len(ids)}")
        states = [await anyio.to_thread.run_sync(index.run, i) for i in ids]
        configs = {}
        for state in states:
            with state.lock:
                configs[state.id] = dotted({**state.details()["config"], **state.hyperparameters})
        names = sorted({name for config in configs.values() for name in config})
        differences = [
            {"key": name, "values": {i: configs[i].get(name) for i in configs}}
            for name in names
            if len({repr(configs[i].get(name)) for i in configs}) > 1
        ]
        keys = sorted({k for s in states for group in s.keys().values() for k in group})
        return JSON({"ids": ids, "keys": keys, "differences": differences})

    return [
        Route("/api/runs", guarded(runs)),
        Route("/api/run/{id:path}/series", guarded(series)),
        Route("/api/compare", guarded(compare)),
        Route("/api/run/{id:path}", guarded(run)),
    ]
