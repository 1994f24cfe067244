"""A model-based test: random publishing, stalls, outages, errors, flushes and crashes.

The bus runs on an event loop in a background thread (an anyio blocking
portal); each hypothesis rule is synchronous and drives it from the test
thread, as a trainer's thread would. Two remote-like sinks (``spill`` lanes
with small queues, so they fall behind onto the log) are switched between
working, stalled (``write`` does not return), down (``SinkUnavailableError``:
the lane falls behind and retries behind its breaker) and erroring (any other
exception: retried, then counted failed, and the sink isolated after three
failed batches in a row). A crash closes the bus with a 0.2 s deadline and
opens a new one on the same log with ``first_seq`` = the log's last seq, as
``resume`` does; the backends stay as they were (a down one is still down).

Invariants, for every sink of every bus: what it received is a subsequence of
what that bus published, same events, strictly increasing ``seq`` (duplicates
only as the sink contract allows, and then removed by ``seq``), and exactly
the published ones in order when it never failed; ``delivered`` is what it
holds; ``published = delivered + failed + pending`` with none negative; after a
flush nothing is pending but for stalled or down sinks. The log reads back
with no problem and no gap across crashes, each event as published.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from tenacity import wait_exponential_jitter

from sinks.jsonl import JsonlOptions, JsonlSink
from sinks.memory import MemorySink
from telemetry import retry as retry_module
from telemetry.bus import Bus, CloseReport
from telemetry.errors import SinkUnavailableError
from telemetry.events import Event, Metrics
from telemetry.reader import LogReader
from telemetry.session import existing_run_folder
from telemetry.sink import Delivery

RUN = "model"
SWITCHABLE = ("remote", "local")
MODES = ("ok", "stalled", "down", "error")
DELIVERY = {
    "remote": Delivery(
        capacity=40,
        overflow="spill",
        batch_size=25,
        max_latency=0.005,
        max_retries=1,
        isolate_after=3,
    ),
    "local": Delivery(
        capacity=300,
        overflow="spill",
        batch_size=100,
        max_latency=0.02,
        max_retries=2,
        isolate_after=3,
    ),
}


class Switchable:
    """A remote-like sink the test switches between ok, stalled, down and error."""

    def __init__(self, name: str, mode: str) -> None:
        self.name = name
        self.mode = mode
        self.events: list[Event] = []
        self.writes: list[list[int]] = []  # the seqs of every accepted write, duplicates kept
        self.ever_failed = False

    async def open(self) -> None:
        if self.mode == "down":
            raise SinkUnavailableError(f"{self.name} is down")

    async def write(self, batch: Sequence[Event]) -> None:
        while self.mode == "stalled":
            await anyio.sleep(0.002)
        if self.mode == "down":
            raise SinkUnavailableError(f"{self.name} is down")
        if self.mode == "error":
            self.ever_failed = True
            raise RuntimeError(f"{self.name} refused the batch")
        self.writes.append([e.seq for e in batch])
        for event in batch:
            if not self.events or event.seq > self.events[-1].seq:
                self.events.append(event)

    async def close(self, timeout: float) -> None:
        return None


class BusMachine(RuleBasedStateMachine):
    """Drives one run (and its restarts) through random faults."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="bus-model-"))
        self.log_path = self.tmp / "events.jsonl"
        self._portal_cm = start_blocking_portal(backend="asyncio")
        self.portal = self._portal_cm.__enter__()
        self.modes = dict.fromkeys(SWITCHABLE, "ok")
        self.logged: dict[int, dict[str, Any]] = {}  # what earlier buses left in the log
        self.step = 0
        self.crashes = 0
        self._open_bus(first_seq=0)

    # -- the bus's lifetime --

    def _open_bus(self, first_seq: int) -> None:
        self.first_seq = first_seq
        self.published: dict[int, dict[str, Any] | None] = {}  # None: close's health event
        self.sinks = {name: Switchable(name, self.modes[name]) for name in SWITCHABLE}
        self.memory = MemorySink()
        options = JsonlOptions(fsync_interval=0.05, max_latency=0.005, batch_size=200)
        self.jsonl = JsonlSink(self.log_path, RUN, options)
        self.bus = Bus(
            RUN,
            [
                (self.jsonl, options),
                self.memory,
                *[(sink, DELIVERY[name]) for name, sink in self.sinks.items()],
            ],
            health_interval=None,
            close_timeout=10.0,
            first_seq=first_seq,
        )
        self._bus_cm = self.portal.wrap_async_context_manager(self.bus)
        self._bus_cm.__enter__()

    def _close_bus(self, deadline: float) -> CloseReport:
        self.bus.close_timeout = deadline
        started = time.monotonic()
        self._bus_cm.__exit__(None, None, None)
        took = time.monotonic() - started
        report = self.bus.report
        assert report is not None
        assert took < deadline + 1.0, f"close took {took:.2f} s with a {deadline} s deadline"
        # Closing publishes one health event of its own.
        assert report.published == len(self.published) + 1
        self.published[self.first_seq + report.published] = None
        by_name = {s.name: s for s in report.sinks}
        for name, sink in [*self.sinks.items(), ("memory", self.memory)]:
            s = by_name[name]
            assert min(s.delivered, s.failed, s.pending) >= 0, s
            assert s.delivered + s.failed + s.pending == report.published
            assert s.delivered == len(sink.events), (name, s, len(sink.events))
        self._check_received()
        return report

    def teardown(self) -> None:
        try:
            if self.bus.report is None:  # not after a failed close
                self._close_bus(1.0)
                self._check_log(complete=False)
        finally:
            if self.bus.report is None:  # a check failed mid-close: the bus must still go
                with contextlib.suppress(BaseException):
                    self.bus.close_timeout = 0.2
                    self._bus_cm.__exit__(None, None, None)
            self._portal_cm.__exit__(None, None, None)
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- rules --

    @rule(count=st.integers(1, 400), keys=st.integers(1, 4), paced=st.booleans())
    def publish(self, count: int, keys: int, paced: bool = True) -> None:
        """``count`` events in one burst, or ``paced`` (a short pause every 10: many chunks)."""
        for i in range(count):
            values = {f"k/{i}": self.step * 10 + i for i in range(keys)}
            seq = self.bus.log(values, step=self.step, axis="episode")
            self.published[seq] = values
            self.step += 1
            if paced and i % 10 == 9:
                time.sleep(0.001)
        assert list(self.published) == list(
            range(self.first_seq + 1, self.first_seq + len(self.published) + 1)
        )

    @rule(name=st.sampled_from(SWITCHABLE), mode=st.sampled_from(MODES))
    def switch(self, name: str, mode: str) -> None:
        """Stall, take down, break or recover one backend."""
        self.modes[name] = mode
        self.sinks[name].mode = mode

    @rule()
    def flush(self) -> None:
        """Wait until every lane that can make progress has nothing pending."""
        waiting = ["jsonl", "memory"] + [n for n in SWITCHABLE if self.modes[n] in ("ok", "error")]

        def pending() -> dict[str, int]:
            health = self.bus.health()
            return {n: health[f"telemetry/{n}/pending"] for n in waiting}

        deadline = time.monotonic() + 30
        while any(self.portal.call(pending).values()):
            assert time.monotonic() < deadline, f"not drained in 30 s: {self.portal.call(pending)}"
            time.sleep(0.005)
        for name in SWITCHABLE:
            if self.modes[name] == "ok" and not self.sinks[name].ever_failed:
                assert [e.seq for e in self.sinks[name].events] == list(self.published), name
        assert [e.seq for e in self.memory.events] == list(self.published)
        self._check_log(complete=True)

    @rule()
    def recover_all(self) -> None:
        """Every backend works again."""
        for name in SWITCHABLE:
            self.switch(name, "ok")

    @precondition(lambda self: self.crashes < 3)
    @rule(down=st.sampled_from(("none", *SWITCHABLE)))
    def crash_and_restart(self, down: str) -> None:
        """Close abruptly (0.2 s deadline), then reopen the log as resume does.

        ``down`` names a backend that goes down just before the crash and is still
        down when the new bus opens.
        """
        if down != "none":
            self.switch(down, "down")
        self.crashes += 1
        self._close_bus(0.2)
        self._check_log(complete=False)
        folder = existing_run_folder(self.tmp)
        assert folder.run_id == RUN
        self.logged.update(self._log_events_of_this_bus())
        assert folder.last_seq == max(self.logged, default=0)
        self._open_bus(first_seq=folder.last_seq)

    # -- invariants --

    @invariant()
    def counts_add_up(self) -> None:
        def snapshot() -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
            counts = {c.name: c.counts.delivered for c in self.bus.lanes}
            failed = {c.name: c.counts.failed for c in self.bus.lanes}
            lengths = {n: len(s.events) for n, s in self.sinks.items()}
            lengths["memory"] = len(self.memory.events)
            return counts, failed, lengths

        counts, failed, lengths = self.portal.call(snapshot)
        published = len(self.published)
        for name, held in lengths.items():
            assert counts[name] == held, (name, counts[name], held)
            assert counts[name] + failed[name] <= published, name
        self.portal.call(self._check_received)

    # -- checks --

    def _check_received(self) -> None:
        for name, sink in [*self.sinks.items(), ("memory", self.memory)]:
            seqs = [e.seq for e in sink.events]
            assert seqs == sorted(set(seqs)), f"{name}: not strictly increasing"
            # The contract allows a sink to be handed a seq again (it skips it); within one
            # bus the lanes never do that: every write carries only new seqs.
            raw = [seq for write in getattr(sink, "writes", []) for seq in write]
            assert raw == sorted(set(raw)), f"{name}: a seq was written twice"
            for event in sink.events:
                assert event.seq in self.published, f"{name} got seq {event.seq} not published"
                expected = self.published[event.seq]
                if expected is None:
                    assert event.type == "health"
                else:
                    assert isinstance(event, Metrics), name
                    assert event.values == expected, name
            if not getattr(sink, "ever_failed", False):
                assert seqs == list(range(self.first_seq + 1, self.first_seq + len(seqs) + 1)), (
                    f"{name}: not the published events in order"
                )

    def _log_events_of_this_bus(self) -> dict[int, dict[str, Any]]:
        reader = LogReader(self.log_path)
        return {e.seq: e.values for e in reader if e.seq > self.first_seq}  # type: ignore[union-attr]

    def _check_log(self, *, complete: bool) -> None:
        reader = LogReader(self.log_path)
        events = list(reader)
        assert reader.problems == []
        seqs = [e.seq for e in events]
        assert seqs == list(range(1, len(seqs) + 1))
        mine = [e for e in events if e.seq > self.first_seq]
        assert [e.seq for e in events if e.seq <= self.first_seq] == list(self.logged)
        for event in events:
            expected = self.published if event.seq > self.first_seq else self.logged
            if isinstance(event, Metrics):
                assert event.values == expected[event.seq], event.seq
            else:  # the health event every close publishes
                assert event.type == "health"
        if complete:
            assert [e.seq for e in mine] == list(self.published)


def test_random_faults_keep_every_count_true(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random publish/stall/outage/error/flush/crash sequences keep every count and order true."""
    # A down sink is retried after 10-60 ms here, not 0.5-30 s: the same breaker, faster.
    monkeypatch.setattr(
        retry_module,
        "BREAKER_WAIT",
        wait_exponential_jitter(multiplier=0.01, max=0.05, jitter=0.01),
    )
    run_state_machine_as_test(
        BusMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            derandomize=True,
        ),
    )


def _scenario(monkeypatch: pytest.MonkeyPatch, *steps: tuple[str, tuple[Any, ...]]) -> BusMachine:
    """Run the model through fixed steps, checking the invariants after each, as hypothesis does."""
    monkeypatch.setattr(
        retry_module,
        "BREAKER_WAIT",
        wait_exponential_jitter(multiplier=0.01, max=0.05, jitter=0.01),
    )
    machine = BusMachine()
    try:
        machine.counts_add_up()
        for name, args in steps:
            getattr(machine, name)(*args)
            machine.counts_add_up()
    except BaseException:
        with contextlib.suppress(BaseException):
            machine.teardown()
        raise
    machine.teardown()
    return machine


def test_outage_across_a_restart_delivers_only_the_new_runs_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backend down when the resumed bus opens later gets only the events of that bus."""
    _scenario(
        monkeypatch,
        ("publish", (50, 2)),
        ("crash_and_restart", ("remote",)),
        ("publish", (30, 1)),
        ("recover_all", ()),
        ("flush", ()),
    )


def test_a_sink_isolated_while_behind_counts_each_event_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lane that falls behind, then fails until isolated, counts every event once."""
    _scenario(
        monkeypatch,
        ("switch", ("remote", "stalled")),
        ("publish", (400, 1)),
        ("switch", ("remote", "error")),
        ("flush", ()),  # isolated by now, still behind on the log
        ("publish", (400, 1)),
        ("flush", ()),
    )


def test_a_down_sink_that_then_fails_until_isolated_counts_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lane behind its breaker that then errors until isolated leaves nothing pending."""
    _scenario(
        monkeypatch,
        ("switch", ("remote", "down")),
        ("publish", (300, 1)),
        ("flush", ()),  # the others drain; remote has fallen behind onto the log
        ("switch", ("remote", "error")),
        ("publish", (300, 1)),  # spilled while its retries fail, before it is isolated
        ("flush", ()),  # remote: isolated, every event counted failed, none pending
        ("publish", (50, 1)),
        ("flush", ()),
    )
