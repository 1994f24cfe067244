"""Collector benchmark: eight producer processes through Redis into the central logs.

``python benchmarks/collector.py [--quick] [--appendfsync everysec|always] [--json FILE]``

- **Throughput**: eight producer processes (each a real Bus with its own JSON Lines
  log and the redis sink) publish steps of 8 scalars as fast as they can; the
  figure is events per second from the first publish until the central logs hold
  every event (written and fsynced by a collector, acknowledged). Against it, the
  local JSON Lines rate: one in-process bus with the log alone, the same steps.
- **Latency**: the eight producers publish at a steady 200 steps per second each;
  for every event, the time from its publish (the bus's ``time`` stamp) until the
  collector's central log holds it durably; p50 and p99.

A throwaway ``redis-server`` (Debian's) runs in a temporary folder with
append-only persistence; the collector runs in this process (its ingest loop,
with no sinks after the central logs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import anyio
import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sinks.jsonl import JsonlSink  # noqa: E402 (after the path set-up for a script run)
from sinks.redis_sink import RedisOptions, RedisSink  # noqa: E402
from telemetry.bus import Bus  # noqa: E402
from telemetry.collector.central import CentralLog  # noqa: E402
from telemetry.collector.ingest import Ingest  # noqa: E402
from telemetry.events import Event  # noqa: E402
from telemetry.pump import SinkItem  # noqa: E402

PRODUCERS = 8
STEADY_AFTER = 2.0
KEYS = [f"bench/k{i}" for i in range(8)]


# -- the producer process --


async def produce(url: str, run_dir: Path, run_id: str, steps: int, rate: float) -> None:
    """Publish ``steps`` steps (``rate`` per second, 0: as fast as possible), then wait
    until the broker holds them all."""
    options = RedisOptions(url=url, timeout=5.0)
    redis_sink = RedisSink(run_id, options)
    sinks: list[SinkItem] = [JsonlSink(run_dir / "events.jsonl", run_id), (redis_sink, options)]
    async with Bus(run_id, sinks, health_interval=None, close_timeout=120) as bus:
        started = time.perf_counter()
        for step in range(steps):
            values = {key: step * 0.5 for key in KEYS}
            if rate:
                wait = started + step / rate - time.perf_counter()
                if wait > 0:
                    await anyio.sleep(wait)
                await bus.alog(values, step=step)
            elif step % 1000 == 999:
                await bus.alog(values, step=step)
            else:
                bus.log(values, step=step)
        with anyio.fail_after(300):
            while redis_sink.delivered_seq < bus.published:  # noqa: ASYNC110 (a counter)
                await anyio.sleep(0.01)


# -- the collector side --


class TimedLog(CentralLog):
    """A central log that notes, for every event it writes, publish-to-durable latency."""

    latencies: ClassVar[list[tuple[float, float]]] = []
    """(seconds since the run's first event, latency) of every event written."""

    def append(self, rank: int, events: Sequence[Event]) -> int:
        written = super().append(rank, events)
        now = time.time()
        if events:
            first = self.__dict__.setdefault("first_time", events[0].time)
            TimedLog.latencies.extend((e.time - first, now - e.time) for e in events)
        return written


class TimedIngest(Ingest):
    def log_of(self, run_id: str) -> CentralLog:
        log = self._logs.get(run_id)
        if log is None:
            log = self._logs[run_id] = TimedLog(self.out / run_id, run_id)
        return log


def _collect_until(ingest: Ingest, target: int, timeout: float) -> float:
    """Run the ingest loop until it has written ``target`` events; when it got there."""
    deadline = time.monotonic() + timeout
    while ingest.written < target:
        if time.monotonic() > deadline:
            raise AssertionError(f"collector wrote {ingest.written} of {target} events")
        ingest.step()
    return time.perf_counter()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_broker(root: Path, appendfsync: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    argv = ["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--dir", str(root), "--appendonly", "yes", "--appendfsync", appendfsync]
    argv += ["--save", "", "--maxmemory-policy", "noeviction", "--logfile", str(root / "log")]
    server = subprocess.Popen(argv)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    return server, f"redis://127.0.0.1:{port}"


def _through_redis(
    url: str, root: Path, steps: int, rate: float, tag: str
) -> tuple[float, int, list[tuple[float, float]]]:
    """Eight producers and a collector: (seconds from first publish to all held, events,
    latencies)."""
    client = redis.Redis.from_url(url)
    ingest = TimedIngest(client, root / f"central-{tag}", f"bench-{tag}")
    TimedLog.latencies = []
    argv = [sys.executable, __file__, "--produce", url]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    producers = [
        subprocess.Popen(
            [*argv, str(root / f"{tag}-p{i}"), f"{tag}{i}", str(steps), str(rate)], env=env
        )
        for i in range(PRODUCERS)
    ]
    # Each producer publishes steps + 0 events of its own: its bus has no run info.
    target = PRODUCERS * (steps + 1)  # + the health event each bus publishes at close
    ready = root / f"{tag}-p0" / "events.jsonl"
    while not ready.exists():  # the clock starts at the first publish, not at imports
        ingest.step()
    started = time.perf_counter()
    ended = _collect_until(ingest, target, timeout=600)
    for producer in producers:
        if producer.wait(timeout=300) != 0:
            raise AssertionError(f"producer exited {producer.returncode}")
    client.close()
    return ended - started, target, list(TimedLog.latencies)


async def _local_jsonl(root: Path, steps: int) -> float:
    """Events per second of one in-process bus with the log alone (the same steps)."""
    bus = Bus("local", [JsonlSink(root / "local" / "events.jsonl", "local")], health_interval=None)
    started = time.perf_counter()
    async with bus:
        for step in range(steps):
            values = {key: step * 0.5 for key in KEYS}
            if step % 1000 == 999:
                await bus.alog(values, step=step)
            else:
                bus.log(values, step=step)
    return bus.published / (time.perf_counter() - started)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(quick: bool, appendfsync: str) -> dict[str, Any]:
    steps = 5_000 if quick else 50_000
    latency_steps = 800 if quick else 2_000
    root = Path(tempfile.mkdtemp(prefix="rlt-bench-collector-"))
    server, url = _start_broker(root, appendfsync)
    try:
        seconds, events, _ = _through_redis(url, root, steps, 0.0, "t")
        _, _, latencies = _through_redis(url, root, latency_steps, 200.0, "l")
        local = anyio.run(_local_jsonl, root, steps * PRODUCERS)
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(root, ignore_errors=True)
    every = [latency for _, latency in latencies]
    # After each run's first 2 s: without the new stream's discovery (SCAN every second)
    # and the producers' start-up, which overlap.
    steady = [latency for since, latency in latencies if since >= STEADY_AFTER]
    return {
        "producers": PRODUCERS,
        "appendfsync": appendfsync,
        "events": events,
        "redis_events_per_s": events / seconds,
        "local_jsonl_events_per_s": local,
        "latency_events": len(latencies),
        "latency_p50_ms": 1000 * statistics.median(every),
        "latency_p99_ms": 1000 * _quantile(every, 0.99),
        "steady_latency_p50_ms": 1000 * statistics.median(steady),
        "steady_latency_p99_ms": 1000 * _quantile(steady, 0.99),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--produce"]:
        url, run_dir, run_id, steps, rate = args[1:6]
        anyio.run(produce, url, Path(run_dir), run_id, int(steps), float(rate))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events (a smoke run)")
    parser.add_argument("--appendfsync", choices=("everysec", "always"), default="everysec")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    options = parser.parse_args(args)
    figures = measure(options.quick, options.appendfsync)
    print(
        f"collector ({figures['producers']} producers, appendfsync {figures['appendfsync']}): "
        f"{figures['redis_events_per_s']:,.0f} events/s through Redis into the central logs "
        f"vs {figures['local_jsonl_events_per_s']:,.0f} events/s local JSON Lines; "
        f"publish to central log p50 {figures['latency_p50_ms']:.1f} ms, "
        f"p99 {figures['latency_p99_ms']:.1f} ms ({figures['latency_events']:,} events; "
        f"after each run's first {STEADY_AFTER:.0f} s: p50 {figures['steady_latency_p50_ms']:.1f} "
        f"ms, p99 {figures['steady_latency_p99_ms']:.1f} ms)"
    )
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
