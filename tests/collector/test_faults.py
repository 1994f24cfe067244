"""The fault matrix: eight producers on three "hosts" (network namespaces with veth links
to the broker's), a real trainer among them, and in turn: the collector killed with
``kill -9``, the broker killed with ``kill -9`` and restarted from its append-only file
(``appendfsync always``), the broker at ``maxmemory``, a host's link down for 10 s.

After each, every event of every run is in the central logs once, in order, and the
wandb history of each collected run holds each step once. Where network namespaces
are refused, the test says so (``network`` in the test's properties) and runs on
loopback. Long: 2 min 13 s here on a quiet machine, about 5 min under load (``make test-long``).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from telemetry.reader import LogReader, resolve_log_path
from telemetry.replay import identify
from tests.collector.common import (
    Producer,
    central_until,
    check_wandb_history,
    line_count,
    local_seqs,
    start_collector,
    start_producer,
    start_trainer,
    stop,
    wait_all,
    wait_delivered,
)
from tests.collector.netns import Network, hosts
from tests.collector.redis_server import RedisServer, redis_server

pytestmark = pytest.mark.long
HOSTS = 3


@dataclass(slots=True)
class Setup:
    """The broker and where each host reaches it (or loopback for all)."""

    server: RedisServer
    network: Network | None

    def url_for(self, host: int) -> str:
        if self.network is None:
            return self.server.url()
        return self.server.url(self.network.hosts[host].broker_address)

    def prefix_for(self, host: int) -> list[str]:
        return [] if self.network is None else self.network.hosts[host].prefix

    def cut(self, host: int, seconds: float) -> None:
        """The host's link down for ``seconds`` (on loopback: the broker paused instead)."""
        if self.network is not None:
            self.network.hosts[host].link_up(False)
            time.sleep(seconds)
            self.network.hosts[host].link_up(True)
            return
        assert self.server.process is not None
        self.server.process.send_signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.server.process.send_signal(signal.SIGCONT)


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    with hosts(HOSTS) as (network, refused):
        if network is None:
            print(f"network namespaces refused ({refused}): running on loopback")
            with redis_server(appendfsync="always") as server:
                yield Setup(server, None)
            return
        prefix = ["ip", "netns", "exec", network.broker]
        addresses = (network.our_address, *network.addresses[:-1])
        with redis_server(addresses, appendfsync="always", prefix=prefix) as server:
            yield Setup(server, network)


def _kill_collector(setup: Setup, collector: list[subprocess.Popen[bytes]], out: Path) -> None:
    collector[0].send_signal(signal.SIGKILL)
    collector[0].wait(timeout=10)
    collector[0] = start_collector(setup.server.url(), out, "wandb.mode=offline")


def _kill_broker(setup: Setup, collector: list[subprocess.Popen[bytes]], out: Path) -> None:
    setup.server.kill()
    time.sleep(1.0)
    setup.server.start()  # from its append-only file


def _fill_broker(setup: Setup, collector: list[subprocess.Popen[bytes]], out: Path) -> None:
    with setup.server.client() as client:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(used))
        time.sleep(3.0)
        client.config_set("maxmemory", "0")


def _cut_host(setup: Setup, collector: list[subprocess.Popen[bytes]], out: Path) -> None:
    setup.cut(1, 10.0)


Fault = Callable[[Setup, list[subprocess.Popen[bytes]], Path], None]
FAULTS: dict[str, Fault] = {
    "collector_killed": _kill_collector,
    "broker_killed": _kill_broker,
    "broker_full": _fill_broker,
    "host_link_down": _cut_host,
}


def _mid_stream(out: Path, run_ids: list[str], lines: int = 30, timeout: float = 60) -> None:
    """Wait (bounded) until every producer's run has reached the central logs: the fault
    then comes mid-stream, not before the producers have started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sizes = [line_count(out / run_id / "events.jsonl") for run_id in set(run_ids)]
        if min(sizes) >= lines:
            return
        time.sleep(0.1)
    raise AssertionError(f"the producers' runs did not reach the collector: {sizes} lines")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_event_once_after(
    fault: str, setup: Setup, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """Eight producers over three hosts and one fault mid-stream: every run whole, once."""
    record_property("network", "namespaces" if setup.network else "loopback")
    out = tmp_path / "central"
    collector = [start_collector(setup.server.url(), out, "wandb.mode=offline")]
    steps = 700 if fault == "host_link_down" else 300
    producers: list[Producer] = []
    for i in range(7):
        host = i % HOSTS
        run_id, rank = (f"{fault}-dp", i - 5) if i >= 5 else (f"{fault}-{i}", 0)
        producers.append(
            start_producer(
                setup.url_for(host), tmp_path / f"p{i}", run_id, rank, steps, 0.02,
                prefix=setup.prefix_for(host), world_size=2 if i >= 5 else None,
            )
        )  # fmt: skip
    trainer = start_trainer(setup.url_for(2), tmp_path / "trainer", prefix=setup.prefix_for(2))
    _mid_stream(out, [p.run_id for p in producers])
    FAULTS[fault](setup, collector, out)
    wait_all([p.process for p in producers] + [trainer], timeout=150)
    trained = resolve_log_path(next((tmp_path / "trainer").iterdir()))
    expected = local_seqs(producers)
    expected[identify(trained).run_id] = {0: [e.seq for e in LogReader(trained)]}
    assert central_until(out, expected, timeout=60) == expected
    wait_delivered(out, list(expected), timeout=90)
    assert stop(collector[0]) == 0
    for run_id in expected:
        check_wandb_history(out / run_id)
