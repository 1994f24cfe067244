"""Server-sent events: a run's new events as they are written, and the runs table's changes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from telemetry.codec import encode
from telemetry.dashboard.api import BadRequest, guarded
from telemetry.dashboard.index import RunIndex
from telemetry.reader import LogTail

POLL_S = 0.05
"""How often a followed log is read: well inside the one second a new point may take."""
RUNS_POLL_S = 1.0
HEARTBEAT_S = 15.0
MAX_MESSAGE_BYTES = 1 << 20
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def message(data: bytes, event: str | None = None) -> bytes:
    """One SSE message carrying ``data`` (a JSON document on one line)."""
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + data + b"\n\n"


def routes(index: RunIndex) -> list[BaseRoute]:
    """The live routes over ``index``."""

    async def run_events(request: Request) -> Response:
        text = request.query_params.get("after", "0")
        if not text.isdigit():
            raise BadRequest(f"after={text!r}: allowed is a byte offset (a whole number)")
        state = await anyio.to_thread.run_sync(index.run, request.path_params["id"])
        after = int(text)
        if after > state.log.stat().st_size:
            raise BadRequest(f"after={after}: the log holds only {state.log.stat().st_size} bytes")
        return StreamingResponse(
            follow(request, LogTail(state.log, after)),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )

    async def runs_events(request: Request) -> Response:
        return StreamingResponse(
            changes(request, index), media_type="text/event-stream", headers=SSE_HEADERS
        )

    return [
        Route("/api/runs/events", guarded(runs_events)),
        Route("/api/run/{id:path}/events", guarded(run_events)),
    ]


async def follow(request: Request, tail: LogTail) -> AsyncIterator[bytes]:
    """Push every event appended to the log from the tail's offset, each with the new offset."""
    quiet = 0.0
    try:
        yield message(orjson.dumps({"offset": tail.offset, "events": [], "problems": 0}))
        while not await request.is_disconnected():
            problems = tail.problems
            events = await anyio.to_thread.run_sync(tail.read, MAX_MESSAGE_BYTES)
            if events or tail.problems != problems:
                body = b",".join(encode(event) for event in events)
                head = b'{"offset":%d,"problems":%d,"events":[' % (
                    tail.offset,
                    tail.problems - problems,
                )
                yield message(head + body + b"]}")
                quiet = 0.0
                continue
            await anyio.sleep(POLL_S)
            quiet += POLL_S
            if quiet >= HEARTBEAT_S:
                yield b": still here\n\n"
                quiet = 0.0
    finally:
        tail.close()


async def changes(request: Request, index: RunIndex) -> AsyncIterator[bytes]:
    """Push the runs table's rows that changed (new runs, new points, a status) every second."""
    sent: dict[str, bytes] = {}
    sweeps_sent = b""
    while not await request.is_disconnected():
        listing = await anyio.to_thread.run_sync(index.listing)
        changed = []
        for row in listing["runs"]:
            encoded = orjson.dumps(row, default=str)
            if sent.get(row["id"]) != encoded:
                sent[row["id"]] = encoded
                changed.append(encoded)
        sweeps = orjson.dumps(listing["sweeps"], default=str)
        if changed or sweeps != sweeps_sent:
            sweeps_sent = sweeps
            yield message(b'{"runs":[' + b",".join(changed) + b'],"sweeps":' + sweeps + b"}")
        await anyio.sleep(RUNS_POLL_S)
