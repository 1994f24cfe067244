"""The redis sink against a real redis-server: ids from seq, outages ridden out from the log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import redis

from sinks.jsonl import JsonlSink
from sinks.redis_sink import RedisOptions, RedisSink, resolve_rank, resolve_world_size
from telemetry.bus import Bus
from telemetry.codec import decode
from telemetry.collector.streams import FIELD, seq_of, stream_key
from telemetry.errors import ConfigError
from telemetry.events import Metrics
from telemetry.pump import SinkItem
from tests.collector.redis_server import RedisServer, redis_server


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server(appendfsync="always") as running:
        yield running


def _metrics(run_id: str, seqs: range) -> list[Metrics]:
    return [
        Metrics(run_id=run_id, seq=s, time=time.time(), step=s, axis="step", values={"x": s})
        for s in seqs
    ]


def _stream_seqs(server: RedisServer, run_id: str, rank: int = 0) -> list[int]:
    with server.client() as client:
        entries = client.xrange(stream_key(run_id, rank))
    for entry_id, fields in entries:
        event = decode(fields[FIELD])
        assert not isinstance(event, dict)
        assert event.seq == seq_of(entry_id)
    return [seq_of(entry_id) for entry_id, _ in entries]


async def test_a_retried_add_is_refused_not_stored_twice(server: RedisServer) -> None:
    """A second sink re-sending events the stream holds adds only the new ones."""
    first = RedisSink("r1", RedisOptions(url=server.url()))
    await first.open()
    await first.write(_metrics("r1", range(1, 6)))
    await first.close(1.0)
    again = RedisSink("r1", RedisOptions(url=server.url()))  # knows nothing: a restart
    await again.open()
    await again.write(_metrics("r1", range(3, 9)))
    await again.close(1.0)
    assert _stream_seqs(server, "r1") == list(range(1, 9))


def test_url_is_required_and_the_rank_comes_from_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing or malformed URL is refused naming redis.url; RANK gives the rank."""
    for url in (None, "", "http://x:1", "redis://:notaport"):
        with pytest.raises(ConfigError, match=r"redis\.url must be"):
            RedisOptions(url=url).validate("redis")
    assert resolve_rank(None, {"RANK": "3"}) == 3
    assert resolve_rank(2, {"RANK": "3"}) == 2
    assert resolve_rank(None, {}) == 0
    assert resolve_world_size(None, {"WORLD_SIZE": "4"}) == 4
    assert resolve_world_size(None, {}) is None
    with pytest.raises(ConfigError, match=r"redis\.world_size: the WORLD_SIZE .* 1 or more"):
        resolve_world_size(None, {"WORLD_SIZE": "0"})
    with pytest.raises(ConfigError, match=r"redis\.world_size.*an integer >= 1"):
        RedisOptions(url="redis://h:1", world_size=0).validate("redis")


async def _publish(bus: Bus, steps: range, pause: float = 0.002) -> None:
    for step in steps:
        bus.log({"x": float(step)}, step=step)
        await anyio.sleep(pause)


async def _caught_up(server: RedisServer, bus: Bus, run_id: str) -> None:
    """Wait (bounded) until the stream holds everything published, as a longer run would."""
    with anyio.fail_after(20):
        while len(_stream_seqs(server, run_id)) < bus.published:
            await anyio.sleep(0.1)


async def test_broker_down_then_up_the_lane_catches_up_every_event_once(
    server: RedisServer, tmp_path: Path
) -> None:
    """With the broker killed mid-run and restarted, the stream ends holding every seq once."""
    options = RedisOptions(url=server.url(), timeout=1.0)
    sinks: list[SinkItem] = [
        JsonlSink(tmp_path / "events.jsonl", "down1"),
        (RedisSink("down1", options), options),
    ]
    with anyio.fail_after(60):
        async with Bus("down1", sinks, health_interval=None, close_timeout=30) as bus:
            await _publish(bus, range(0, 200))
            server.kill()
            await _publish(bus, range(200, 400))
            server.start()
            await _publish(bus, range(400, 500))
            await _caught_up(server, bus, "down1")
    assert bus.report is not None
    assert not bus.report.undelivered
    assert _stream_seqs(server, "down1") == list(range(1, bus.published + 1))


async def test_a_full_broker_is_an_outage_then_recovery(
    server: RedisServer, tmp_path: Path
) -> None:
    """maxmemory with noeviction refuses adds (OOM); once it has room the lane catches up."""
    with server.client() as client:
        options = RedisOptions(url=server.url())
        sinks: list[SinkItem] = [
            JsonlSink(tmp_path / "events.jsonl", "full1"),
            (RedisSink("full1", options), options),
        ]
        with anyio.fail_after(60):
            async with Bus("full1", sinks, health_interval=None, close_timeout=30) as bus:
                await _publish(bus, range(0, 100))
                used = int(client.info("memory")["used_memory"])
                client.config_set("maxmemory", str(used))
                await _publish(bus, range(100, 300))
                await anyio.sleep(0.5)
                held_while_full = len(_stream_seqs(server, "full1"))
                client.config_set("maxmemory", "0")
                await _publish(bus, range(300, 350))
                await _caught_up(server, bus, "full1")
    assert held_while_full < 300
    assert bus.report is not None
    assert not bus.report.undelivered
    assert _stream_seqs(server, "full1") == list(range(1, bus.published + 1))
    with server.client() as client:
        client.config_set("maxmemory", "1")
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.xadd("probe", {"a": "b"})
