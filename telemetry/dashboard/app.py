"""The dashboard's ASGI app: the page, its static files and the API over one runs folder."""

from __future__ import annotations

import importlib
import importlib.util
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from telemetry.dashboard import api, live
from telemetry.dashboard.api import error
from telemetry.dashboard.index import RunIndex
from telemetry.dashboard.paths import PathRefused, resolve_under

STATIC = Path(__file__).resolve().parent / "static"
VIEWS_MODULE = "telemetry.dashboard.routes_views"
TOKEN_PARAM = "token"


class TokenGate:
    """Refuses (403) every request but ``/static`` that lacks the token, when one is set.

    The token comes as ``?token=``, as ``Authorization: Bearer``, or as the cookie
    the page's first answer sets, so links and EventSource (no headers) work too.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = (
            request.query_params.get(TOKEN_PARAM)
            or request.headers.get("authorization", "").removeprefix("Bearer ")
            or request.cookies.get("dashboard_token")
            or ""
        )
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            await error(403, "a token is required: open the URL the dashboard printed")(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


def view_routes(runs: Path) -> list[BaseRoute]:
    """The trades, health and sweep routes, when their module is installed."""
    if importlib.util.find_spec(VIEWS_MODULE) is None:
        return []
    module = importlib.import_module(VIEWS_MODULE)
    found: list[BaseRoute] = module.routes(runs)
    return found


def build_app(runs: Path, *, token: str | None = None) -> Starlette:
    """The dashboard over the run and sweep folders under ``runs``; it only reads them."""
    index = RunIndex(runs)

    async def page(request: Request) -> Response:
        response = FileResponse(STATIC / "index.html")
        if token is not None:
            response.set_cookie("dashboard_token", token, httponly=True, samesite="strict")
        return response

    async def static(request: Request) -> Response:
        try:
            path = resolve_under(STATIC, request.path_params["path"])
        except PathRefused as exc:
            return error(403, str(exc))
        if not path.is_file():
            return error(404, f"no static file {request.path_params['path']!r}")
        return FileResponse(path)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Read every log once in the background, so the first page a user opens is quick.
        warm = threading.Thread(target=index.scan, args=(True,), name="dashboard-warm", daemon=True)
        warm.start()
        yield

    routes: list[BaseRoute] = [
        Route("/", page),
        Route("/static/{path:path}", static),
        *live.routes(index),
        *view_routes(runs),
        *api.routes(index),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.index = index
    if token is not None:
        app.add_middleware(TokenGate, token=token)
    return app
