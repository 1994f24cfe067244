"""An offline wandb run resumed after its process was killed: every row once, none lost.

The kill comes where a resume by what wandb was handed goes wrong: wandb's
service writes its file in blocks from a buffer, and is stopped (``SIGSTOP``)
and then killed with its client, so the file holds a prefix of what the
client handed it: most rows and the first alert, not the rest. A resumed sink is handed
the whole log again (as a restarted sidecar or collector hands it) and must
send exactly what the run files lack.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import anyio
import psutil
import pytest

from sinks.wandb_runfile import SEQ_KEY, Held, history, records, run_files
from sinks.wandb_sink import WandbOptions, WandbSink
from telemetry.events import Metrics
from telemetry.reader import LogReader
from telemetry.sink import SinkContext
from tests.fakes.wandb_server import FakeWandbServer, online_env, wandb_online, wandb_server
from tests.sinks.wandb_child import MORE, RUN_ID, STEPS

__all__ = ["wandb_online", "wandb_server"]

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NETRC": str(tmp_path / "no-netrc")}
    env.pop("WANDB_API_KEY", None)
    env.pop("WANDB_MODE", None)
    return env


def _wandb_core(parent: int) -> psutil.Process:
    (core,) = [p for p in psutil.Process(parent).children() if "wandb-core" in p.name()]
    return core


def _until(stdout: IO[bytes], word: bytes) -> None:
    """Read the child's output (its log lines too) until a line ``word``."""
    for line in stdout:
        if line.strip() == word:
            return
    raise AssertionError(f"the child ended before printing {word!r}")


def _killed_run(tmp_path: Path) -> None:
    """Run the child: the first part written by wandb, the second handed but never written."""
    argv = [sys.executable, "-m", "tests.sinks.wandb_child", str(tmp_path)]
    with subprocess.Popen(
        argv, cwd=ROOT, env=_env(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as child:
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            _until(child.stdout, b"first")
            core = _wandb_core(child.pid)
            core.send_signal(signal.SIGSTOP)  # what it is handed from now on is never written
            child.stdin.write(b"go\n")
            child.stdin.flush()
            _until(child.stdout, b"second")
            child.kill()
            core.kill()
        finally:
            child.kill()


def _rows(tmp_path: Path) -> list[dict[str, object]]:
    return [row for path in run_files(tmp_path / "wandb", RUN_ID) for row in history(path)]


async def test_a_killed_offline_run_resumes_with_every_step_once(tmp_path: Path) -> None:
    _killed_run(tmp_path)
    (first,) = run_files(tmp_path / "wandb", RUN_ID)
    before = history(first)
    written = {r["step"] for r in before if "step" in r}
    assert 0 < len(written) < STEPS, "the file must hold some rows, not all"
    assert not any("eval/score" in r for r in before), "the eval row was never closed"

    log = list(LogReader(tmp_path))
    context = SinkContext(run_id=RUN_ID, run_dir=tmp_path, run_name="killed")
    sink = WandbSink(context, WandbOptions(mode="offline"))
    assert sink.reads_back
    with anyio.fail_after(120):
        await sink.open()
        for start in range(0, len(log), 25):
            await sink.write(log[start : start + 25])
        await sink.close(60)

    rows = _rows(tmp_path)
    for event in (e for e in log if isinstance(e, Metrics)):
        matching = [r for r in rows if r.get(event.axis) == event.step]
        assert len(matching) == 1, (event.axis, event.step, len(matching))
        for key, value in event.values.items():
            assert matching[0][key] == value, (event.axis, event.step, key)
    alerts = [
        r.alert.title
        for path in run_files(tmp_path / "wandb", RUN_ID)
        for r in records(path)
        if r.WhichOneof("record_type") == "alert"
    ]
    assert sorted(alerts) == ["early", "late"], alerts
    assert len({r["step"] for r in rows if "step" in r}) == STEPS + MORE


def test_a_torn_run_file_reads_as_its_whole_records(tmp_path: Path) -> None:
    """A file cut anywhere (a writer killed mid-record) reads as a prefix of its records."""
    _killed_run(tmp_path)
    (path,) = run_files(tmp_path / "wandb", RUN_ID)
    whole = [r.SerializeToString() for r in records(path)]
    data = path.read_bytes()
    torn = tmp_path / "torn.wandb"
    for cut in (8, 100, len(data) // 3, len(data) // 2 + 5, len(data) - 1):
        torn.write_bytes(data[:cut])
        got = [r.SerializeToString() for r in records(torn)]
        assert got == whole[: len(got)], cut
    assert len(whole) > 50


def test_held_counts_an_axis_only_up_to_its_last_written_row(tmp_path: Path) -> None:
    _killed_run(tmp_path)
    held = Held()
    for path in run_files(tmp_path / "wandb", RUN_ID):
        held.read(path)
    log = list(LogReader(tmp_path))
    episodes = [e for e in log if isinstance(e, Metrics) and e.axis == "step"]
    written = {r["step"] for r in history(run_files(tmp_path / "wandb", RUN_ID)[0]) if "step" in r}
    assert held.axes["step"] == max(e.seq for e in episodes if e.step in written)
    assert "eval" not in held.axes
    assert not held.finished
    assert held.applied >= next(e.seq for e in log if e.type == "alert")


def _killed_online_run(tmp_path: Path, server: FakeWandbServer) -> None:
    """Run the child online until the server holds its first part (every closed ``step`` row
    and a summary as far as the last), then kill it and its wandb service with ``kill -9``."""
    argv = [sys.executable, "-m", "tests.sinks.wandb_child", str(tmp_path), "online"]
    env = {**_env(tmp_path), **online_env(server, wandb_dir=tmp_path / "wandb-online")}
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
    with subprocess.Popen(argv, cwd=ROOT, env=env, **pipes) as child:  # type: ignore[call-overload]
        assert child.stdout is not None
        try:
            _until(child.stdout, b"first")
            core = _wandb_core(child.pid)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _uploaded(server):
                time.sleep(0.1)
            assert _uploaded(server), (len(server.history(RUN_ID)), server.summary(RUN_ID))
            child.kill()
            core.kill()
        finally:
            child.kill()


def _uploaded(server: FakeWandbServer) -> bool:
    rows = server.history(RUN_ID)
    summary = server.summary(RUN_ID) or {}
    top = max((int(r[SEQ_KEY]) for r in rows if SEQ_KEY in r), default=0)
    # The last step's row stays open: no later step closed it.
    return len(rows) == STEPS - 1 and summary.get(SEQ_KEY) == top


async def test_a_killed_online_run_resumes_with_another_axis_row_still_open(
    tmp_path: Path, wandb_online: FakeWandbServer
) -> None:
    """The eval row was open (never logged) when the run was killed, the step rows after it
    all uploaded: resumed and handed the whole log, the run gets the eval row, once, and
    no step row again (by the last row's seq alone the eval row would be skipped)."""
    _killed_online_run(tmp_path, wandb_online)
    assert not any("eval/score" in r for r in wandb_online.history(RUN_ID))

    log = list(LogReader(tmp_path))
    context = SinkContext(run_id=RUN_ID, run_dir=tmp_path, run_name="killed")
    sink = WandbSink(context, WandbOptions(mode="online", dir=str(tmp_path / "resumed")))
    with anyio.fail_after(120):
        await sink.open()
        for start in range(0, len(log), 25):
            await sink.write(log[start : start + 25])
        await sink.close(60)

    rows = wandb_online.history(RUN_ID)
    for event in (e for e in log if isinstance(e, Metrics)):
        matching = [r for r in rows if r.get(event.axis) == event.step]
        assert len(matching) == 1, (event.axis, event.step, len(matching))
        for key, value in event.values.items():
            assert matching[0][key] == value, (event.axis, event.step, key)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
