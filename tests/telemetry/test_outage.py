"""A sink that goes down falls behind onto the durable log and catches up on recovery."""

from __future__ import annotations

from pathlib import Path

import anyio

from sinks.jsonl import JsonlSink
from telemetry.bus import Bus
from telemetry.sink import Delivery
from tests.conftest import OutageSink


async def test_down_sink_catches_up_in_order_exactly_once(tmp_path: Path) -> None:
    """Events published during an outage reach the sink once, in order, after it recovers."""
    log = JsonlSink(tmp_path / "events.jsonl", "r")
    remote = OutageSink()
    delivery = Delivery(capacity=200, overflow="spill", batch_size=100, max_latency=0.01)
    with anyio.fail_after(60):
        async with Bus("r", [log, (remote, delivery)], health_interval=None) as bus:
            for step in range(500):
                bus.log({"x": step}, step=step)
            await anyio.sleep(0.2)
            remote.down = True
            for step in range(500, 5_000):
                bus.log({"x": step}, step=step)
                if step % 250 == 0:
                    await anyio.sleep(0.01)
            lane = next(c for c in bus.lanes if c.name == "remote")
            assert lane.breaker.open
            assert lane.counts.queued <= delivery.capacity + 4096
            remote.down = False
            with anyio.fail_after(20):
                while len(remote.events) < 5_000:
                    await anyio.sleep(0.05)
    seqs = [e.seq for e in remote.events]
    assert seqs == list(range(1, bus.published + 1))
    report = next(s for s in bus.report.sinks if s.name == "remote") if bus.report else None
    assert report is not None
    assert report.delivered == bus.published
    assert report.failed == 0
    assert report.pending == 0


async def test_sink_down_at_open_gets_everything_once_it_comes_up(tmp_path: Path) -> None:
    """A sink that cannot open at first is retried and then receives the whole run."""
    log = JsonlSink(tmp_path / "events.jsonl", "r")
    remote = OutageSink(down_at_open=True)
    with anyio.fail_after(60):
        async with Bus("r", [log, remote], health_interval=None) as bus:
            for step in range(1_000):
                bus.log({"x": step}, step=step)
            await anyio.sleep(0.3)
            assert remote.events == []
            remote.down = False
            with anyio.fail_after(20):
                while len(remote.events) < 1_000:
                    await anyio.sleep(0.05)
    assert [e.seq for e in remote.events] == list(range(1, bus.published + 1))


async def test_sink_that_never_comes_back_leaves_a_replay_command(tmp_path: Path) -> None:
    """Closing with the sink still down is on time and names the replay command."""
    log = JsonlSink(tmp_path / "events.jsonl", "r")
    remote = OutageSink(down_at_open=True)
    with anyio.fail_after(30):
        async with Bus("r", [log, remote], health_interval=None, close_timeout=3) as bus:
            for step in range(100):
                bus.log({"x": step}, step=step)
            started = anyio.current_time()
    assert anyio.current_time() - started < 3.5
    report = next(s for s in bus.report.sinks if s.name == "remote") if bus.report else None
    assert report is not None
    assert report.pending == bus.published
    assert report.replay == f"python main.py replay {tmp_path} sinks=[remote]"
