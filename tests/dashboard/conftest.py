"""Fixtures for the dashboard's tests: the app served on a free loopback port, and Chromium."""

from __future__ import annotations

import itertools
import math
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "dashboard" / "screenshots"


def need(what: str, present: bool, install: str) -> None:
    """Fail under CI=true, else skip, when a service the test needs is missing."""
    if present:
        return
    message = f"{what} is missing: {install}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """``serve(runs_dir, token=None) -> base_url``: the real app under uvicorn in a thread."""
    import uvicorn

    from telemetry.dashboard.app import build_app

    servers: list[tuple[Any, threading.Thread]] = []

    def start(runs: Path, token: str | None = None) -> str:
        port = free_port()
        config = uvicorn.Config(
            build_app(runs, token=token), host="127.0.0.1", port=port, log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not start within 10 s")
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (never a downloaded browser).

    Module-scoped: Playwright's sync API runs an event loop on the main thread while the
    browser is open, and every later ``anyio.run`` or asyncio test would fail under it.
    """
    need("chromium", shutil.which("chromium") is not None, "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page whose console errors and page errors fail the test at teardown."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    new_page.on("pageerror", lambda exc: errors.append(str(exc)))
    new_page.console_errors = errors
    yield new_page
    context.close()
    assert not errors, f"errors in the browser console: {errors}"


def screenshot(page: Any, name: str) -> Path:
    """Write a screenshot of the page to NAME.png, in the README's folder only when asked.

    ``make screenshots`` sets ``SCREENSHOTS=docs``; otherwise the pictures go to a
    temporary folder, so that ``make test`` leaves the tracked ones alone.
    """
    if os.environ.get("SCREENSHOTS") == "docs":
        folder = DOCS_SCREENSHOTS
    else:
        folder = Path(tempfile.gettempdir()) / "rltelemetry-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path


# --- run logs for the dashboard's tests, written by the real bus and JSON Lines sink ---


def reward(step: int) -> float:
    """A made-up learning curve with noise, the same for every test."""
    return round(math.sin(step / 7.0) + step / 20.0, 6)


def loss(step: int) -> float:
    return round(1.0 / (1.0 + step), 6)


async def record_run(
    folder: Path,
    run_id: str,
    *,
    steps: int,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    tags: tuple[str, ...] = (),
    group: str | None = None,
    shift: float = 0.0,
) -> Path:
    """A run folder whose log the real ``Bus`` wrote through a ``JsonlSink``: config,
    hyperparameters, ``episode/reward`` and ``losses/loss`` per step, an evaluation every
    10 steps, aggregates every 10 steps, an artifact; ``shift`` moves the reward curve."""
    from sinks.jsonl import JsonlSink
    from telemetry.aggregate import AggregateSpec
    from telemetry.bus import Bus, RunInfo
    from telemetry.events import ArtifactSaved, Evaluation, Hyperparameters

    info = RunInfo(
        name=name or run_id,
        tags=tags,
        group=group,
        config={"trainer": "ppo", "seed": 0, **(config or {})},
    )
    bus = Bus(
        run_id,
        [JsonlSink(folder / "events.jsonl", run_id)],
        run=info,
        aggregate=AggregateSpec(every=10, axis="episode", keys=("episode/reward",)),
        health_interval=None,
    )
    async with bus:
        await bus.aemit(Hyperparameters, values={"lr": 0.001, **(config or {})})
        for step in range(steps):
            await bus.alog(
                {"episode/reward": reward(step) + shift, "losses/loss": loss(step)},
                step=step,
                axis="episode",
            )
            if step % 10 == 9:
                await bus.aemit(
                    Evaluation,
                    step=step,
                    axis="episode",
                    name="validation",
                    values={"episode/reward": reward(step) + shift + 0.5},
                )
        await bus.aemit(
            ArtifactSaved,
            name="checkpoint",
            path="checkpoints/last.pt",
            kind="checkpoint",
            step=steps - 1,
            axis="episode",
            metadata={"episode": steps - 1},
        )
    return folder


class LiveRun:
    """A run still training: a real ``Bus`` with its JSON Lines sink open on a thread of its
    own; ``log`` publishes from the caller's thread, as a trainer's worker thread does."""

    def __init__(self, folder: Path, run_id: str) -> None:
        self.folder = folder
        self.run_id = run_id
        self.bus: Any = None
        self._opened = threading.Event()
        self._stop: Any = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        import anyio

        from sinks.jsonl import JsonlSink
        from telemetry.bus import Bus, RunInfo

        async def run() -> None:
            self._stop = anyio.Event()
            sink = JsonlSink(self.folder / "events.jsonl", self.run_id)
            info = RunInfo(name=self.run_id, config={"trainer": "ppo"})
            async with Bus(self.run_id, [sink], run=info, health_interval=None) as bus:
                self.bus = bus
                self.loop_token = anyio.lowlevel.current_token()
                self._opened.set()
                await self._stop.wait()

        anyio.run(run)

    def __enter__(self) -> LiveRun:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        if not self._opened.wait(10):
            raise RuntimeError("the live run's bus did not open within 10 s")
        return self

    def log(self, values: dict[str, float], step: int) -> None:
        self.bus.log(values, step=step, axis="episode")

    def __exit__(self, *exc: object) -> None:
        import anyio.from_thread

        anyio.from_thread.run_sync(self._stop.set, token=self.loop_token)
        self._thread.join(timeout=15)


def make_run(folder: Path, run_id: str, **options: Any) -> Path:
    """``record_run`` from sync code, on a thread of its own (Playwright's sync API keeps an
    event loop running on the test's thread)."""
    import anyio

    failures: list[BaseException] = []

    def main() -> None:
        try:
            anyio.run(lambda: record_run(folder, run_id, **options))
        except BaseException as exc:  # handed to the test's thread
            failures.append(exc)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join(timeout=30)
    if failures:
        raise failures[0]
    return folder


def write_big_log(folder: Path, points: int) -> Path:
    """A log of ``points`` steps of two keys, formatted directly (the bus takes minutes for
    a million steps): the bytes the JSON Lines sink writes, checked against the codec."""
    from telemetry.codec import encode, header
    from telemetry.events import Metrics, RunStarted

    folder.mkdir(parents=True, exist_ok=True)
    start = 1_800_000_000.0
    with (folder / "events.jsonl").open("wb") as handle:
        handle.write(header("big", start) + b"\n")
        started = RunStarted(run_id="big", seq=1, time=start, name="big", project="p")
        handle.write(encode(started) + b"\n")
        template = (
            '{"type":"metrics","run_id":"big","seq":%d,"time":%r,"step":%d,"axis":"episode",'
            '"values":{"episode/reward":%r,"losses/loss":%r}}'
        )
        for first in range(0, points, 100_000):
            lines = [
                template % (step + 2, start + step * 0.01, step, reward(step), loss(step))
                for step in range(first, min(points, first + 100_000))
            ]
            handle.write("\n".join(lines).encode() + b"\n")
        handle.flush()
        with (folder / "events.jsonl").open("rb") as written:
            lines = [line.rstrip(b"\n").decode() for line in itertools.islice(written, 2, 1002)]
        for step in range(min(points, 1000)):  # the codec writes these very bytes
            event = Metrics(
                run_id="big",
                seq=step + 2,
                time=start + step * 0.01,
                step=step,
                axis="episode",
                values={"episode/reward": reward(step), "losses/loss": loss(step)},
            )
            assert lines[step].encode() == encode(event), lines[step]
    return folder
