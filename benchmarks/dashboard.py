"""Dashboard figures: publish-to-page latency, time to first chart of a 1M-point run, and
the server's memory for 20 runs of 100,000 points, beside TensorBoard's and Trackio's
refresh intervals.

Run from the repository root: ``.venv/bin/python benchmarks/dashboard.py [--quick]``.
The server runs in its own process (``telemetry.dashboard.cli.serve``), as a user runs it;
the trainer is a real ``Bus`` with its JSON Lines sink in this process; the page is
Debian's Chromium driven by Playwright.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from tests.dashboard.conftest import CHROMIUM, CHROMIUM_ARGS, LiveRun, write_big_log  # noqa: E402

KEY = "episode/reward"
CHART = f'[data-testid="chart"][data-key="{KEY}"][data-drawn="true"]'
MIB = 1 << 20
SERVE = (
    "import sys; from pathlib import Path; from telemetry.dashboard.cli import serve; "
    "sys.exit(serve(Path(sys.argv[1]), port=int(sys.argv[2])))"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(runs: Path) -> Iterator[tuple[str, psutil.Process]]:
    """The dashboard in its own process over ``runs``: its URL and its process."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(runs), str(port)], cwd=ROOT, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/api/runs", timeout=30)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the dashboard did not start within 30 s") from None
                time.sleep(0.05)
        yield base, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_count(base: str, count: int, timeout: float = 300) -> None:
    """Wait until the server has read every run's ``count`` points."""
    deadline = time.monotonic() + timeout
    while True:
        runs = httpx.get(f"{base}/api/runs", timeout=60).json()["runs"]
        if runs and all(r["metrics"].get(KEY, {}).get("count") == count for r in runs):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server had not read {count} points within {timeout} s")
        time.sleep(0.1)


def latency(browser: Any, points: int) -> list[float]:
    """Seconds from ``bus.log`` to the point on the open page, per point."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        with LiveRun(runs / "live", "live") as run, server(runs) as (base, _):
            run.log({KEY: 0.0}, step=0)
            run.bus.flush_from_thread()
            page = browser.new_page()
            page.goto(f"{base}/#/run/live")
            page.wait_for_selector(CHART, timeout=30_000)
            seconds = []
            for step in range(1, points + 1):
                published = time.perf_counter()
                run.log({KEY: float(step)}, step=step)
                page.wait_for_function(
                    f"window.__charts[{KEY!r}].__chartData[0].x.at(-1) === {step}",
                    polling=5,
                    timeout=10_000,
                )
                seconds.append(time.perf_counter() - published)
                time.sleep(0.1)  # each point on its own, as a trainer's steps come
            page.close()
    return seconds


def first_chart(browser: Any, points: int) -> tuple[float, float, float]:
    """``(partial, complete, warm)`` seconds: from opening the run on a server that has just
    started (has read nothing) to its first chart (of what is read so far) and to the whole
    log drawn, and opening the run once the server holds it."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        write_big_log(runs / "big", points)
        with server(runs) as (base, _):
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(f"{base}/#/run/big")
            page.wait_for_selector(CHART, timeout=300_000)
            partial = time.perf_counter() - started
            page.wait_for_selector('[data-testid="loading"]', state="detached", timeout=600_000)
            complete = time.perf_counter() - started
            page.close()
            warm = []
            for _ in range(3):
                page = browser.new_page()
                opened = time.perf_counter()
                page.goto(f"{base}/#/run/big")
                page.wait_for_selector(CHART, timeout=30_000)
                warm.append(time.perf_counter() - opened)
                page.close()
    return partial, complete, statistics.median(warm)


def memory(browser: Any, runs_count: int, points: int) -> tuple[float, float, float]:
    """MiB of the server's RSS: started, every log read, and every run opened in turn."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        for i in range(runs_count):
            write_big_log(runs / f"run-{i:02d}", points)
        with server(runs) as (base, process):
            started = process.memory_info().rss / MIB
            wait_count(base, points)
            read = process.memory_info().rss / MIB
            page = browser.new_page()
            for i in range(runs_count):
                page.goto(f"{base}/#/run/run-{i:02d}")
                page.wait_for_selector(CHART, timeout=60_000)
            page.close()
            return started, read, process.memory_info().rss / MIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    args = parser.parse_args()
    points, big, runs_count, run_points = (
        (20, 100_000, 4, 20_000) if args.quick else (60, 1_000_000, 20, 100_000)
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        seconds = latency(browser, points)
        partial, complete, warm = first_chart(browser, big)
        started, read, after = memory(browser, runs_count, run_points)
        browser.close()
    ms = sorted(s * 1000 for s in seconds)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    rows = [
        (
            "publish to point on the page, p50",
            f"{p50:.0f} ms",
            "TensorBoard 5 s backend reload + 30 s page reload; Trackio 1 s polling",
        ),
        (f"publish to point on the page, p99 ({len(ms)} points)", f"{p99:.0f} ms", ""),
        (f"first chart, {big:,}-point run, server already holding it", f"{warm:.2f} s", ""),
        (
            f"first chart, {big:,}-point run, server just started (part read)",
            f"{partial:.2f} s",
            "",
        ),
        (f"whole {big:,}-point run drawn, server just started", f"{complete:.2f} s", ""),
        (
            f"server RSS, {runs_count} runs x {run_points:,} points, each opened",
            f"{after:.0f} MiB",
            f"(just started {started:.0f} MiB, every log read {read:.0f} MiB)",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'figure'.ljust(width)}  {'value':>9}  anchor")
    for name, value, anchor in rows:
        print(f"{name.ljust(width)}  {value:>9}  {anchor}")


if __name__ == "__main__":
    main()
