"""``python main.py dashboard``: serve the dashboard over a runs folder until interrupted."""

from __future__ import annotations

import ipaddress
import secrets
import sys
from pathlib import Path

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def access_token(host: str, token: str | None) -> str | None:
    """The token the server requires: the one given, or a new one for a non-loopback host."""
    if token is not None or is_loopback(host):
        return token
    return secrets.token_urlsafe(24)


def page_url(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(
    runs: Path, *, host: str = "127.0.0.1", port: int = 8502, token: str | None = None
) -> int:
    """Serve the dashboard over ``runs`` until Ctrl-C; the exit status (2: bad usage)."""
    if not runs.is_dir():
        print(f"error: --runs {runs}: no such folder", file=sys.stderr)
        return 2
    if not 0 < port < 65536:
        print(f"error: --port {port}: allowed is 1 to 65535", file=sys.stderr)
        return 2
    import uvicorn

    from telemetry.dashboard.app import build_app

    token = access_token(host, token)
    print(f"dashboard over {runs.resolve()} at {page_url(host, port, token)}", flush=True)
    # Open live streams (a browser tab) must not hold Ctrl-C up.
    uvicorn.run(
        build_app(runs, token=token),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    return 0
