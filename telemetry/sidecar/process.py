"""The sidecar process, started, watched and started again by a thread of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import structlog

from telemetry.sidecar.child import LATE

logger = structlog.get_logger("telemetry")

GUARD = Path(__file__).resolve().parent.parent / "sweep" / "orphan_guard.py"
"""Execs the sidecar with ``PR_SET_PDEATHSIG``: it dies with the thread that started it."""
RESTART_AFTER = 2.0
"""Seconds between a sidecar's death and its restart: what a backend's own service was
handed by the dead one reaches the backend first (wandb's lives on to upload it), so the
restarted sink's resumed run says what it holds."""


class SidecarProcess:
    """``python -m telemetry.sidecar RUN_DIR``, kept running until it exits when told to.

    A watcher thread starts it, waits for it, and starts it again ``RESTART_AFTER``
    seconds after it died (``kill -9``), ``restarts`` times at most. The thread
    lives as long as the sidecar: ``PR_SET_PDEATHSIG`` ends the sidecar with the
    thread that started it, and so with this process.
    """

    def __init__(self, run_dir: str, sinks: list[str], *, restarts: int) -> None:
        self.run_dir = run_dir
        self.sinks = sinks
        self.restarts_left = restarts
        self.restarts = 0
        """Times it was started again after it died."""
        self.late = False
        """It ended with some sink not closed within its deadline (or was stopped)."""
        self.current: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sidecar-watcher", daemon=True)

    @property
    def ended(self) -> bool:
        """It will not run again: it exited when told to, died too often, or was stopped."""
        return self._started.is_set() and not self._thread.is_alive()

    def start(self) -> None:
        """Start the watcher, which starts the sidecar; returns once it has (a few ms)."""
        self._thread.start()
        self._started.wait(timeout=30.0)

    def tell(self, line: str) -> bool:
        """Send the running sidecar a command line; False if it is not running."""
        process = self.current
        if process is None or process.poll() is not None or process.stdin is None:
            return False
        try:
            process.stdin.write(line.encode() + b"\n")
            process.stdin.flush()
        except (OSError, ValueError):
            return False  # it died meanwhile: the watcher starts it again
        return True

    def stop(self) -> None:
        """Stop it now (the close deadline passed) and keep it stopped."""
        self._stopping.set()
        process = self.current
        if process is not None and process.poll() is None:
            self.late = True
            process.kill()  # what it did not deliver stays in the log, named in the report
        self._thread.join(timeout=5.0)

    def _watch(self) -> None:
        try:
            process = self._spawn()
        finally:
            self._started.set()
        while True:
            code = process.wait()
            if process.stdin is not None:
                process.stdin.close()
            if code in (0, LATE) or self._stopping.is_set():
                self.late |= code == LATE
                return
            if self.restarts_left <= 0:
                logger.error("sidecar_gave_up", exit_code=code, sinks=self.sinks)
                return
            logger.warning("sidecar_died", exit_code=code, sinks=self.sinks, pid=process.pid)
            if self._stopping.wait(RESTART_AFTER):
                return
            self.restarts_left -= 1
            self.restarts += 1
            process = self._spawn()
            logger.info("sidecar_restarted", sinks=self.sinks, pid=process.pid)

    def _spawn(self) -> subprocess.Popen[bytes]:
        """Start the sidecar sharing this process's terminal and module path."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        argv = [sys.executable, str(GUARD), sys.executable, "-m", "telemetry.sidecar"]
        process = subprocess.Popen([*argv, self.run_dir], stdin=subprocess.PIPE, env=env)
        self.current = process
        return process
