"""The collector on loopback with a real redis-server: eight producers, a collector killed
with ``kill -9`` and restarted, two ranks made one run, and the command's refusals."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from telemetry.collector.cli import collect
from telemetry.collector.streams import GROUP
from telemetry.events import Metrics, RunStarted, SystemInfo
from telemetry.reader import LogReader
from tests.collector.common import (
    Producer,
    central_until,
    check_wandb_history,
    line_count,
    local_seqs,
    no_deliverer_left,
    origins,
    start_collector,
    start_producer,
    stop,
    wait_all,
    wait_delivered,
    wandb_rows,
)
from tests.collector.redis_server import RedisServer, free_port, redis_server
from tests.fakes.wandb_file import config


def _eight_producers(url: str, tmp: Path, steps: int, pause: float) -> list[Producer]:
    """Six single-process runs and one run of two ranks."""
    producers = [start_producer(url, tmp / f"p{i}", f"solo{i}", 0, steps, pause) for i in range(6)]
    producers += [
        start_producer(url, tmp / f"dp{r}", "dp", r, steps, pause, world_size=2) for r in (0, 1)
    ]
    return producers


def _stopped_holding_entries(
    server: RedisServer, process: subprocess.Popen[bytes], consumer: str
) -> int:
    """Stop ``process`` (SIGSTOP) at a moment it holds entries it has not acknowledged."""
    with server.client() as client:
        for _ in range(200):
            process.send_signal(signal.SIGSTOP)
            held = 0
            for key in client.scan_iter(match="rltelemetry:run:*"):
                try:
                    consumers = client.xpending(key, GROUP)["consumers"] or []
                except redis.ResponseError:  # a stream no collector has joined yet
                    continue
                for entry in consumers:
                    if entry["name"] in (consumer, consumer.encode()):
                        held += int(entry["pending"])
            if held:
                return held
            process.send_signal(signal.SIGCONT)
            time.sleep(0.02)
    return 0


def _left_in_streams(server: RedisServer, timeout: float) -> int:
    """Poll (bounded) until no stream holds an entry or a pending one; what is left."""
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            left = 0
            for key in client.scan_iter(match="rltelemetry:run:*"):
                left += client.xlen(key) + client.xpending(key, GROUP)["pending"]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)


@pytest.mark.timeout(150)
def test_eight_producers_survive_a_collector_killed_mid_stream(tmp_path: Path) -> None:
    """Killed with kill -9 mid-stream and restarted, the collector leaves every event of
    every run in the central logs once, in order, and in each run's wandb history once."""
    out = tmp_path / "central"
    with redis_server() as server:
        url = server.url()
        collector = start_collector(url, out, "wandb.mode=offline")
        producers = _eight_producers(url, tmp_path, steps=400, pause=0.004)
        deadline = time.monotonic() + 60
        while line_count(out / "solo0" / "events.jsonl") < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        collector.send_signal(signal.SIGKILL)
        collector.wait(timeout=10)
        no_deliverer_left(out, timeout=20)  # none delivers on unwatched, holding its run
        collector = start_collector(url, out, "wandb.mode=offline")
        wait_all([p.process for p in producers], timeout=90)
        expected = local_seqs(producers)
        assert central_until(out, expected, timeout=30) == expected
        wait_delivered(out, list(expected), timeout=60)
        assert stop(collector) == 0
        no_deliverer_left(out, timeout=5)
        with server.client() as client:  # acknowledged and trimmed: nothing left behind
            for key in client.scan_iter(match="rltelemetry:run:*"):
                assert client.xlen(key) == 0
    for run_id in expected:
        check_wandb_history(out / run_id)


@pytest.mark.timeout(120)
def test_two_ranks_make_one_run_with_rank_zero_config_and_per_rank_keys(tmp_path: Path) -> None:
    """Ranks 0 and 1 of one run become one central run: one run_started (rank 0's config),
    rank 1's metrics and system information under rank1/, one wandb run holding both."""
    out = tmp_path / "central"
    with redis_server() as server:
        collector = start_collector(server.url(), out, "wandb.mode=offline")
        ranks = [
            start_producer(server.url(), tmp_path / f"r{r}", "ddp", r, 50, 0, world_size=2)
            for r in (0, 1)
        ]
        wait_all([p.process for p in ranks], timeout=60)
        expected = local_seqs(ranks)
        assert central_until(out, expected, timeout=30) == expected
        wait_delivered(out, ["ddp"], timeout=60)
        assert stop(collector) == 0
    events = [e for _, _, e in origins(out / "ddp" / "events.jsonl")]
    kinds = [e.type for e in events]
    assert kinds.count("run_started") == kinds.count("run_finished") == 1
    assert kinds[-1] == "run_finished"
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.config == {"rank": 0}
    keys = {k for e in events if isinstance(e, Metrics) for k in e.values}
    assert keys == {
        "losses/value",
        "episode/reward",
        "rank1/losses/value",
        "rank1/episode/reward",
    }
    systems = [e.values for e in events if isinstance(e, SystemInfo)]
    assert {"host": "rank-0"} in systems
    assert {"rank1/host": "rank-1"} in systems
    central_seqs = [e.seq for e in LogReader(out / "ddp")]  # restamped: 1, 2, 3...
    assert central_seqs == list(range(1, len(central_seqs) + 1))
    check_wandb_history(out / "ddp")
    files = sorted((out / "ddp").rglob("run-*.wandb"))
    assert config(files[0])["lr"] == 0.01
    assert len(wandb_rows(out / "ddp")) >= 100


@pytest.mark.timeout(120)
def test_a_rank_that_starts_after_rank_zero_ended_still_lands_before_the_run_finished(
    tmp_path: Path,
) -> None:
    """Rank 0 of a world of two ends before rank 1 has published anything (its stream does
    not exist yet): the central run's end waits for rank 1, whose events land before it."""
    out = tmp_path / "central"
    with redis_server() as server:
        collector = start_collector(server.url(), out, "sinks=[]", "finish_wait=60")
        first = start_producer(server.url(), tmp_path / "r0", "late", 0, 30, 0, world_size=2)
        wait_all([first.process], timeout=60)
        central = out / "late" / "events.jsonl"
        deadline = time.monotonic() + 30  # rank 0's lines but its end, held back
        while line_count(central) < 32 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # past the collector's next scan for streams
        second = start_producer(server.url(), tmp_path / "r1", "late", 1, 30, 0, world_size=2)
        wait_all([second.process], timeout=60)
        expected = local_seqs([first, second])
        assert central_until(out, expected, timeout=30) == expected
        assert stop(collector) == 0
    kinds = [e.type for _, _, e in origins(central)]
    assert kinds.count("run_finished") == 1
    assert kinds[-1] == "run_finished"
    ranks = [rank for rank, _, e in origins(central) if isinstance(e, Metrics)]
    assert ranks == [0] * 30 + [1] * 30


def test_collect_refuses_a_bad_url_and_an_unreachable_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed broker URL or config is one line and status 2; no broker, one line and 1."""
    assert collect("http://nowhere:1", out=tmp_path, overrides=[]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --broker must be a URL redis://HOST:PORT, got 'http://nowhere:1'"
    ]
    assert collect("redis://127.0.0.1:1", out=tmp_path, overrides=["sinks=[jsonl]"]) == 2
    assert "sinks cannot list jsonl" in capsys.readouterr().err
    port = free_port()
    assert collect(f"redis://127.0.0.1:{port}", out=tmp_path, overrides=[]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: cannot reach the broker redis://127.0.0.1:{port}")


@pytest.mark.timeout(120)
def test_two_collectors_share_the_streams_and_one_takes_over_a_dead_ones_entries(
    tmp_path: Path,
) -> None:
    """Two collectors in one group on one output folder, one killed with kill -9 and not
    restarted: the other claims its pending entries, and every event lands once, in order."""
    out = tmp_path / "central"
    with redis_server() as server:
        url = server.url()
        first = start_collector(url, out, "sinks=[]", "consumer=first")
        second = start_collector(url, out, "sinks=[]", "consumer=second")
        producers = [
            start_producer(url, tmp_path / f"p{i}", f"shared{i}", 0, 300, 0.005) for i in range(4)
        ]
        deadline = time.monotonic() + 60
        while line_count(out / "shared0" / "events.jsonl") < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _stopped_holding_entries(server, first, "first") > 0
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        wait_all([p.process for p in producers], timeout=60)
        expected = local_seqs(producers)
        assert central_until(out, expected, timeout=30) == expected
        # What the dead one wrote but never acknowledged is claimed after claim_idle (2 s).
        assert _left_in_streams(server, timeout=20) == 0
        assert stop(second) == 0
