"""A throwaway ``redis-server`` for the tests, from Debian's package, in a temporary folder.

``redis_server()`` starts ``/usr/bin/redis-server`` with append-only persistence
(``appendfsync`` as asked) on a free port of 127.0.0.1 and any other address it is
given, optionally inside a network namespace; ``kill()`` is ``kill -9``, ``start()``
brings it back from its append-only file. A missing binary skips the test, or
fails it under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

INSTALL = "apt-get install redis-server"
BINARY = "/usr/bin/redis-server"
START_TIMEOUT = 15.0


def require_binary() -> str:
    """The server binary; without one, skip the test (fail it when ``CI=true``)."""
    found = BINARY if Path(BINARY).is_file() else shutil.which("redis-server")
    if found:
        return found
    message = f"redis-server not found: {INSTALL}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(slots=True)
class RedisServer:
    """A running (or killed) server: its folder, port and addresses."""

    binary: str
    root: Path
    port: int
    hosts: tuple[str, ...]
    appendfsync: str
    prefix: tuple[str, ...] = ()
    """Command prefix, such as ``ip netns exec NAME``."""
    process: subprocess.Popen[bytes] | None = field(default=None)

    def url(self, host: str | None = None) -> str:
        return f"redis://{host or self.hosts[0]}:{self.port}"

    def client(self) -> redis.Redis:
        """A client for the test itself (through the namespace's exec when there is one)."""
        return redis.Redis(host=self.hosts[0], port=self.port, socket_timeout=10)

    def start(self) -> None:
        """Start (or restart from the append-only file) and wait until it answers PING."""
        argv = [
            *self.prefix,
            self.binary,
            "--port", str(self.port),
            "--bind", " ".join(self.hosts),
            "--dir", str(self.root),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--protected-mode", "no",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(self.root / "server.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited {self.process.returncode}: {self.log}")
            if self._answers():
                return
            time.sleep(0.05)
        pytest.fail(f"redis-server did not answer within {START_TIMEOUT} s: {self.log}")

    def _answers(self) -> bool:
        if self.prefix:  # our namespace cannot reach it; ask from inside
            done = subprocess.run(
                [*self.prefix, "redis-cli", "-h", self.hosts[0], "-p", str(self.port), "ping"],
                capture_output=True,
                timeout=5,
                check=False,
            )
            return b"PONG" in done.stdout
        try:
            with contextlib.closing(redis.Redis(host=self.hosts[0], port=self.port)) as probe:
                return bool(probe.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """``kill -9``: whatever the append-only file holds is what comes back."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    @property
    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.is_file() else ""


@contextlib.contextmanager
def redis_server(
    hosts: Sequence[str] = ("127.0.0.1",),
    *,
    appendfsync: str = "everysec",
    prefix: Sequence[str] = (),
) -> Iterator[RedisServer]:
    """A new server listening on ``hosts`` (the first is where clients of the test go)."""
    binary = require_binary()
    root = Path(tempfile.mkdtemp(prefix="rlt-redis-"))
    server = RedisServer(binary, root, free_port(), tuple(hosts), appendfsync, tuple(prefix))
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)
