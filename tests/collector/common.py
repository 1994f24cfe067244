"""Helpers of the collector tests: producer and collector processes, and the checks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import psutil

from telemetry.collector.origin import is_marker, parse_ranges
from telemetry.collector.ranks import RANK_ZERO_ONLY
from telemetry.events import Event, LogRecord, Metrics
from telemetry.reader import LogReader
from tests.fakes.wandb_file import history

ROOT = Path(__file__).resolve().parents[2]
STARTED: list[subprocess.Popen[bytes]] = []
"""Every process a test started; the ``_reap`` fixture kills what is left after each test."""


def _popen(argv: Sequence[str], **variables: str) -> subprocess.Popen[bytes]:
    environ = {**env(), **variables}
    process = subprocess.Popen(list(argv), cwd=ROOT, env=environ, stdin=subprocess.DEVNULL)
    STARTED.append(process)
    return process


def reap() -> None:
    """Kill (``kill -9``) and wait for every process still running."""
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def env() -> dict[str, str]:
    """The environment of child processes: wandb offline, no account."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WANDB_MODE": "offline",
        "WANDB_API_KEY": "",
        "NETRC": "/nonexistent",
        "WANDB_SILENT": "true",
    }


@dataclass(frozen=True, slots=True)
class Producer:
    """One producer process: its run, rank and local run folder (its own log)."""

    run_id: str
    rank: int
    run_dir: Path
    process: subprocess.Popen[bytes]


def start_producer(
    url: str,
    run_dir: Path,
    run_id: str,
    rank: int,
    steps: int,
    pause: float,
    prefix: Sequence[str] = (),
    world_size: int | None = None,
) -> Producer:
    """A producer process; ``world_size`` is its ``WORLD_SIZE`` (as torch.distributed sets)."""
    argv = [*prefix, sys.executable, "-m", "tests.collector.producer", url, str(run_dir)]
    argv += [run_id, str(rank), str(steps), str(pause)]
    variables = {"WORLD_SIZE": str(world_size)} if world_size is not None else {}
    process = _popen(argv, **variables)
    return Producer(run_id, rank, run_dir, process)


def start_trainer(url: str, out: Path, prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """A real tiny training run publishing through the redis sink."""
    argv = [*prefix, sys.executable, str(ROOT / "main.py"), "train", "trainer=ppo", "episodes=4"]
    argv += [f"out={out}", "sinks=[redis]", f"redis.url={url}", "system_interval=0"]
    return _popen(argv)


def start_collector(
    url: str, out: Path, *overrides: str, prefix: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    argv = [*prefix, sys.executable, "-m", "telemetry.collector", "--broker", url]
    argv += ["--out", str(out), "claim_idle=2", "finish_wait=3", *overrides]
    return _popen(argv)


def deliverers_of(out: Path) -> list[int]:
    """Pids of deliverer processes delivering a run under ``out``."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        argv = process.info["cmdline"] or []
        if "telemetry.collector.deliverer" in argv and any(a.startswith(str(out)) for a in argv):
            found.append(process.pid)
    return found


def no_deliverer_left(out: Path, timeout: float) -> None:
    """Within ``timeout`` s, no deliverer of a run under ``out`` is alive (they die with
    their collector: SIGTERM by ``PR_SET_PDEATHSIG``, then what their log holds)."""
    deadline = time.monotonic() + timeout
    while (left := deliverers_of(out)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"deliverers outlived their collector: {left}"


def line_count(path: Path) -> int:
    """Lines in a file so far (0 before it exists)."""
    if not path.is_file():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def wait_all(processes: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    """Every process exits 0 within ``timeout`` seconds (together)."""
    deadline = time.monotonic() + timeout
    for process in processes:
        code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
        assert code == 0, f"{process.args!r} exited {code}"


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM, then its exit status."""
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=timeout)


def origins(central: Path) -> list[tuple[int, int, Event]]:
    """Every event of a central log as (rank, origin seq, event), markers resolved."""
    out: list[tuple[int, int, Event]] = []
    rank, seqs, seen = 0, None, 0
    for event in LogReader(central):
        if is_marker(event):
            assert isinstance(event, LogRecord)
            rank = int(event.fields["rank"] or 0)
            seqs, seen = parse_ranges(str(event.fields["seqs"])), 0
            continue
        if seqs is None:
            out.append((0, event.seq, event))
        else:
            out.append((rank, seqs[seen], event))
            seen += 1
    return out


def central_until(
    out: Path, expected: dict[str, dict[int, list[int]]], timeout: float
) -> dict[str, dict[int, list[int]]]:
    """Poll (bounded) until every central log holds what ``expected`` lists; the last seen."""
    deadline = time.monotonic() + timeout
    seen: dict[str, dict[int, list[int]]] = {}
    while time.monotonic() < deadline:
        seen = {}
        for run_id in expected:
            path = out / run_id / "events.jsonl"
            by_rank: dict[int, list[int]] = {}
            if path.is_file():
                for rank, seq, _ in origins(path):
                    by_rank.setdefault(rank, []).append(seq)
            seen[run_id] = by_rank
        if seen == expected:
            return seen
        time.sleep(0.3)
    return seen


def wait_delivered(out: Path, run_ids: Sequence[str], timeout: float) -> None:
    """Poll (bounded) until each run's wandb cursor has reached its central log's end."""
    deadline = time.monotonic() + timeout
    left = list(run_ids)
    while left and time.monotonic() < deadline:
        for run_id in list(left):
            cursor = out / run_id / ".collector" / "cursors" / "wandb.json"
            # A marker line can follow the run's end (a rank's consumed run_finished read
            # in the same batch as rank 0's): sinks never get it; the deliverer ends at
            # run_finished.
            last = [e.seq for e in LogReader(out / run_id) if not is_marker(e)][-1]
            if cursor.is_file() and orjson.loads(cursor.read_bytes())["seq"] >= last:
                left.remove(run_id)
        time.sleep(0.3)
    assert not left, f"wandb did not catch up with {left} within {timeout} s"


def local_seqs(producers: Sequence[Producer]) -> dict[str, dict[int, list[int]]]:
    """What each producer's own log holds, by run and rank: what the central logs must hold."""
    expected: dict[str, dict[int, list[int]]] = {}
    for producer in producers:
        # Another rank's run_started, hyperparameters and run_finished have no line.
        seqs = [
            e.seq
            for e in LogReader(producer.run_dir)
            if producer.rank == 0 or not isinstance(e, RANK_ZERO_ONLY)
        ]
        expected.setdefault(producer.run_id, {})[producer.rank] = seqs
    return expected


def wandb_rows(central_run: Path) -> list[dict[str, object]]:
    """The history rows of every offline wandb run file of a collected run (a deliverer
    stopped and started again resumes the run in a file of its own)."""
    files = sorted(central_run.rglob("run-*.wandb"))
    assert files, f"no wandb run file under {central_run}"
    return [row for path in files for row in history(path)]


def check_wandb_history(central_run: Path) -> None:
    """The offline wandb run of a collected run holds each metrics step of each rank once."""
    rows = wandb_rows(central_run)
    for rank, _, event in origins(central_run / "events.jsonl"):
        if not isinstance(event, Metrics):
            continue
        key = next(iter(event.values))
        matching = [r for r in rows if r.get(event.axis) == event.step and key in r]
        assert len(matching) == 1, (central_run.name, rank, event.axis, event.step, key)
        assert matching[0][key] == event.values[key]
