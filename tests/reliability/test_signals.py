"""SIGINT and SIGTERM mid-run: the run closes in time, flushed, and says it was interrupted."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from telemetry.events import Metrics, RunFinished
from tests.reliability.common import ROOT, assert_no_gap, cli_env, json_lines, read_log

CLOSE_TIMEOUT = 5.0
WITH_STUCK_SINK = """
import sys
from sinks.registry import SinkSpec, register_sink
from telemetry.sink import Delivery
from tests.conftest import StuckSink
register_sink("stuck", SinkSpec(options=Delivery, build=lambda context, options: StuckSink()))
import main
sys.exit(main.cli(sys.argv[1:]))
"""


def _wait_for_metrics(out: Path, count: int, process: subprocess.Popen[bytes]) -> Path:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before the signal"
        for log in out.glob("*/events.jsonl"):
            if log.read_bytes().count(b'"type":"metrics"') >= count:
                return log
        time.sleep(0.05)
    raise AssertionError(f"no {count} metrics events in {out} within 90 s")


@pytest.mark.parametrize(
    ("signum", "status", "stuck"),
    [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, False), (signal.SIGTERM, 143, True)],
    ids=["SIGINT", "SIGTERM", "SIGTERM-with-a-hung-sink"],
)
def test_signal_mid_run_closes_flushed_and_interrupted(
    tmp_path: Path, signum: signal.Signals, status: int, stuck: bool
) -> None:
    """The run stops within close_timeout, its log ends run_finished interrupted, exit 128+N."""
    out = tmp_path / "runs"
    stderr_path = tmp_path / "stderr.txt"
    command = ["-c", WITH_STUCK_SINK] if stuck else [str(ROOT / "main.py")]
    sinks = "[jsonl,console,memory,stuck]" if stuck else "[jsonl,console,memory]"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                *command,
                "train",
                "trainer=ppo",
                "episodes=2000",
                f"sinks={sinks}",
                "console.format=json",
                f"close_timeout={CLOSE_TIMEOUT}",
                "health_interval=1",
                f"out={out}",
            ],
            cwd=ROOT,
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            log = _wait_for_metrics(out, 15, process)
            sent, sent_wall = time.monotonic(), time.time()
            process.send_signal(signum)
            returncode = process.wait(timeout=CLOSE_TIMEOUT + 30)
            took = time.monotonic() - sent
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    text = stderr_path.read_text()
    assert returncode == status, text[-3000:]
    assert "Traceback" not in text
    records = json_lines(text)
    saved = next(r for r in records if r.get("event") == "run_saved")
    closed = datetime.fromisoformat(saved["timestamp"]).timestamp() - sent_wall
    print(
        f"\n[signals] {signum.name} stuck={stuck}: closed {closed:.2f} s and exited "
        f"{took:.2f} s after the signal, status {returncode}"
    )
    assert closed < CLOSE_TIMEOUT + 0.5  # the close deadline (one episode may finish first)
    assert took < CLOSE_TIMEOUT + 3.0  # plus the interpreter's exit

    reader, events = read_log(log)
    assert reader.problems == []
    assert_no_gap(events)
    assert isinstance(events[-1], RunFinished)
    assert events[-1].status == "interrupted"
    assert sum(isinstance(e, Metrics) for e in events) >= 15

    # The console sink was flushed: it printed the run's end, after the last metrics event.
    finished = [r for r in records if r.get("event") == "run_finished"]
    assert [r["status"] for r in finished] == ["interrupted"]
    # Every working sink got everything: only the hung one is reported behind, with the
    # command that delivers what it missed; the saved count is the log's.
    behind = [r for r in records if r.get("event") in ("sink_behind", "sink_isolated")]
    if stuck:
        assert [(r["event"], r["sink"]) for r in behind] == [("sink_behind", "stuck")]
        assert behind[0]["undelivered"] == len(events)
        assert behind[0]["replay"] == f"python main.py replay {log.parent} sinks=[stuck]"
        assert took > CLOSE_TIMEOUT - 0.5  # it waited for the hung sink up to the deadline
    else:
        assert behind == []
    assert saved["events"] == len(events)
