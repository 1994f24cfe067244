"""Concurrency: runs started together never share a folder; many publishing threads lose nothing."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import types
from pathlib import Path

import anyio
import pytest

from sinks.jsonl import JsonlSink
from sinks.memory import MemorySink
from telemetry import session
from telemetry.bus import Bus
from telemetry.events import Metrics, RunStarted
from tests.reliability.common import ROOT, assert_no_gap, cli_env, read_log

THREADS = 16
PER_THREAD = 5_000


def test_new_run_folder_from_many_threads_never_shares_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """256 folders made by 32 threads at once, with forced id and time collisions, are distinct."""
    pool = [f"{i:08x}" for i in range(400)]
    rng = random.Random(6)
    lock = threading.Lock()
    drawn = []

    def token_hex(nbytes: int) -> str:
        with lock:
            drawn.append(rng.choice(pool))
            return drawn[-1]

    # The same second and ids from a small pool: collisions are certain, so the retry path runs.
    monkeypatch.setattr(session, "secrets", types.SimpleNamespace(token_hex=token_hex))
    fixed_time = types.SimpleNamespace(strftime=lambda fmt: "20300101-000000")
    monkeypatch.setattr(session, "time", fixed_time)
    made: list[session.RunFolder] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(32)

    def make() -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(8):
                folder = session.new_run_folder(tmp_path, "ppo")
                with lock:
                    made.append(folder)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(made) == 256
    assert len({f.path for f in made}) == 256
    assert len({f.run_id for f in made}) == 256
    assert len(drawn) > 256  # some ids were drawn twice and retried
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.path.name for f in made)


def test_two_cli_runs_started_together_get_their_own_folders(tmp_path: Path) -> None:
    """Two training processes started at the same moment in one out folder write apart."""
    args = [
        sys.executable,
        str(ROOT / "main.py"),
        "train",
        "trainer=ppo",
        "episodes=3",
        "sinks=[jsonl]",
        f"out={tmp_path}",
        "health_interval=0",
    ]
    procs = [
        subprocess.Popen(
            args, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-2000:] for r in results]
    folders = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(folders) == 2
    run_ids = set()
    for folder in folders:
        reader, events = read_log(folder)
        assert reader.problems == []
        assert_no_gap(events)
        run_id = reader.header["run_id"]
        assert folder.name.endswith(f"-ppo-{run_id}")
        assert {e.run_id for e in events} == {run_id}
        assert sum(isinstance(e, RunStarted) for e in events) == 1
        run_ids.add(run_id)
    assert len(run_ids) == 2


async def test_sixteen_threads_lose_nothing_and_keep_their_order(tmp_path: Path) -> None:
    """16 threads x 5,000 events at once: every event delivered once, each thread in order."""
    memory = MemorySink()
    log = JsonlSink(tmp_path / "events.jsonl", "threads")
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def publish(bus: Bus, thread: int) -> None:
        try:
            barrier.wait(timeout=30)
            for i in range(PER_THREAD):
                bus.log({"thread": thread, "i": i}, step=i)
        except BaseException as exc:
            errors.append(exc)

    with anyio.fail_after(120):
        async with Bus("threads", [log, memory], health_interval=None, close_timeout=60) as bus:
            threads = [threading.Thread(target=publish, args=(bus, t)) for t in range(THREADS)]
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads):
                await anyio.sleep(0.01)
    assert errors == []
    assert bus.report is not None
    assert bus.report.deadline_met
    assert bus.report.undelivered == {}
    metrics = [e for e in memory.events if isinstance(e, Metrics)]
    assert len(metrics) == THREADS * PER_THREAD
    assert_no_gap(memory.events)
    for thread in range(THREADS):
        mine = [e.values["i"] for e in metrics if e.values["thread"] == thread]
        assert mine == list(range(PER_THREAD))
    reader, logged = read_log(tmp_path / "events.jsonl")
    assert reader.problems == []
    assert [e.seq for e in logged] == [e.seq for e in memory.events]
