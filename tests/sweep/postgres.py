"""A throwaway PostgreSQL server for the sweep tests, started from the machine's binaries.

``postgres_server()`` runs ``initdb`` into a fresh folder, starts ``postgres``
with ``pg_ctl`` on a free port of 127.0.0.1 (and of any other local address it
is given), trusting connections from those addresses only, creates the
database and, on leaving, stops the server with ``pg_ctl stop -m immediate``
and removes the folder. PostgreSQL refuses to run as root: as root the server
runs as ``nobody``. Missing binaries skip the test, or fail it under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

INSTALL = "apt-get install postgresql"
"""What provides the binaries (Debian, Ubuntu)."""
USER = "sweeps"
"""The database's superuser role, in every URL."""
DATABASE = "sweeps"
SERVER_ACCOUNT = "nobody"
"""The unprivileged account the server runs as when the tests run as root."""
START_TIMEOUT = 30
"""Seconds ``pg_ctl start`` waits for the server to accept connections."""


def find_bin() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``: $PG_BIN, Debian's newest
    /usr/lib/postgresql/N/bin, or where ``initdb`` is on the PATH."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if p.name.isdigit()]
        candidates += [p / "bin" for p in sorted(versions, key=lambda p: -int(p.name))]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def require_bin() -> Path:
    """The binaries' folder; without one, skip the test (fail it when ``CI=true``)."""
    folder = find_bin()
    if folder is not None:
        return folder
    message = f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: {INSTALL}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True, slots=True)
class PostgresServer:
    """A running server: where it listens and how to reach it."""

    root: Path
    """Its folder: ``data/`` (the cluster), ``server.log``, the unix socket."""
    port: int
    hosts: tuple[str, ...]
    """The addresses it listens on, 127.0.0.1 first."""

    def url(self, host: str = "127.0.0.1") -> str:
        """The storage URL of the test database through ``host``."""
        return f"postgresql://{USER}@{host}:{self.port}/{DATABASE}"

    @property
    def log(self) -> str:
        """The server's log so far (connections are logged)."""
        return (self.root / "server.log").read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server(argv: Sequence[str]) -> list[str]:
    """``argv`` run as the server's account (``runuser``) when we are root."""
    if os.geteuid() != 0:
        return list(argv)
    return ["runuser", "-u", SERVER_ACCOUNT, "--", *argv]


def _run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as_server(argv), capture_output=True, text=True, timeout=timeout, check=False
    )


@contextlib.contextmanager
def postgres_server(
    listen: Sequence[str] = (), trust: Sequence[str] = ()
) -> Iterator[PostgresServer]:
    """A new server listening on 127.0.0.1 and the local addresses ``listen``, trusting
    connections from 127.0.0.1, the unix socket and the networks ``trust`` (CIDR)."""
    bin_dir = require_bin()
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(SERVER_ACCOUNT)
        except KeyError:
            pytest.skip(f"running as root and there is no {SERVER_ACCOUNT!r} account to run as")
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, the server's account cannot enter it.
    root = Path(tempfile.mkdtemp(prefix="rlt-pg-"))
    if os.geteuid() == 0:
        os.chown(root, account.pw_uid, account.pw_gid)
    data = root / "data"
    try:
        init = _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=60,
        )
        if init.returncode != 0:
            pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        hba = "".join(f"host all all {network} trust\n" for network in trust)
        with (data / "pg_hba.conf").open("a", encoding="utf-8") as out:
            out.write(hba)
        hosts = ("127.0.0.1", *listen)
        server = _start(bin_dir, root, hosts)
        try:
            _create_database(server)
            yield server
        finally:
            _stop(bin_dir, data)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _start(bin_dir: Path, root: Path, hosts: tuple[str, ...]) -> PostgresServer:
    """Start the server on a free port (another, should one be taken meanwhile)."""
    data = root / "data"
    log = root / "server.log"
    conf = data / "postgresql.conf"
    base = conf.read_text(encoding="utf-8")
    failure = ""
    for _ in range(3):
        port = _free_port()
        seen = log.stat().st_size if log.is_file() else 0
        settings = {
            "listen_addresses": ",".join(hosts),
            "port": str(port),
            "unix_socket_directories": str(root),
            "log_connections": "on",
            "fsync": "off",  # a throwaway cluster: durability costs time for nothing
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        extra = "".join(f"{key} = '{value}'\n" for key, value in settings.items())
        conf.write_text(base + "\n# the test's settings\n" + extra, encoding="utf-8")
        started = _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                str(START_TIMEOUT),
                "start",
            ],
            timeout=START_TIMEOUT + 15,
        )
        if started.returncode == 0:
            return PostgresServer(root=root, port=port, hosts=hosts)
        text = log.read_text(encoding="utf-8", errors="replace")[seen:] if log.is_file() else ""
        failure = f"{started.stdout}\n{started.stderr}\n{text[-3000:]}"
        _stop(bin_dir, data)
        if "could not bind" not in text and "already in use" not in text:
            break
    pytest.fail(f"pg_ctl start failed:\n{failure}")


def _create_database(server: PostgresServer) -> None:
    url = server.url().rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as connection:
        connection.execute(f"CREATE DATABASE {DATABASE}")


def _stop(bin_dir: Path, data: Path) -> None:
    """Stop the server at once (``pg_ctl stop -m immediate``); kill it if that fails."""
    pid_file = data / "postmaster.pid"
    if not pid_file.is_file():
        return
    argv = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "15", "stop"]
    with contextlib.suppress(subprocess.TimeoutExpired):
        if _run(argv, timeout=30).returncode == 0:
            return
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pid_file.read_text().split()[0])  # the postmaster this helper started
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pid_file.exists():
            time.sleep(0.1)
