"""Reading every run stream in one consumer group into the central logs, acknowledging after.

Each round (``Ingest.step``): find new streams (``SCAN``, every second), take over
entries another collector left pending too long (``XAUTOCLAIM``), read this
consumer's own pending entries (``XREADGROUP`` from id 0: a restarted collector
reads what it had been handed first) and then new ones (``>``), and write each
stream's entries to its run's central log. An entry is acknowledged (``XACK``)
and deleted (``XDEL``) only after the central log holds it durably.

The central log decides what is written, not the group: under its lock the
log says which origin ``seq`` of the rank it holds (``CentralLog.held``), entries
at or below it are duplicates and are only acknowledged, and the next entries are
written only if they come right after it (consecutive ``seq``s, or else the
stream itself is asked what follows, ``XRANGE``). So a rank's events reach the
log once and in order even when two collectors were handed parts of one stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import structlog

from telemetry.codec import decode
from telemetry.collector.central import CentralLog
from telemetry.collector.streams import (
    FIELD,
    GROUP,
    KEY_PATTERN,
    WORLD,
    StreamName,
    entry_id,
    parse_key,
    seq_of,
)
from telemetry.events import Event, RunFinished

logger = structlog.get_logger("telemetry.collector")
Entry = tuple[bytes, dict[bytes, bytes] | None]


@dataclass(frozen=True, slots=True)
class IngestSettings:
    """How often the collector looks for streams and idle entries, how much it reads."""

    count: int = 1000
    """Entries per stream per read at most."""
    block: float = 0.2
    """Seconds a read waits for new entries."""
    discover_every: float = 1.0
    claim_every: float = 2.0
    claim_idle: float = 10.0
    """Seconds an entry stays pending with another consumer before this one takes it over."""
    finish_wait: float = 10.0
    """Seconds rank 0's ``run_finished`` waits for the other ranks' ends before it is written."""


@dataclass(slots=True)
class _Stream:
    name: StreamName
    backlog: dict[int, Entry] = field(default_factory=dict)
    pending_from: bytes | None = b"0"
    """Where reading this consumer's own pending entries goes on; None once read."""


class Ingest:
    """One collector's consumer in the group, writing central logs under ``out``."""

    def __init__(
        self,
        client: redis.Redis,
        out: Path,
        consumer: str,
        settings: IngestSettings | None = None,
        on_run: Callable[[str, Path], None] | None = None,
    ) -> None:
        self.client = client
        self.out = out
        self.consumer = consumer
        self.settings = settings or IngestSettings()
        self.written = 0
        self._on_run = on_run
        self._streams: dict[bytes, _Stream] = {}
        self._logs: dict[str, CentralLog] = {}
        self._finish_seen: dict[str, float] = {}
        self._rank_seen: dict[StreamName, float] = {}
        self._next_discover = 0.0
        self._next_claim = 0.0
        self._progressed = False

    def log_of(self, run_id: str) -> CentralLog:
        log = self._logs.get(run_id)
        if log is None:
            log = self._logs[run_id] = CentralLog(self.out / run_id, run_id)
            if self._on_run is not None:
                self._on_run(run_id, log.run_dir)
        return log

    # -- one round --

    def step(self) -> None:
        """Discover, claim, read, write and acknowledge once."""
        now = time.monotonic()
        if now >= self._next_discover:
            self._next_discover = now + self.settings.discover_every
            self.discover()
        if now >= self._next_claim and self._streams:
            self._next_claim = now + self.settings.claim_every
            self._claim()
        self._read_pending()
        # Wait for new entries unless the last round got somewhere with its backlog (what
        # is held back, a run_finished or a rank waiting for rank 0, must not spin).
        self._read_new(block=not self._progressed)
        self._progressed = False
        # Rank 0 first: its run_started opens the central run.
        for key, stream in sorted(self._streams.items(), key=lambda item: item[1].name.rank):
            if stream.backlog and not self._waits_for_rank_zero(stream.name):
                self._progressed |= self._write(key, stream)

    def discover(self) -> None:
        """Join the group on every run stream not yet known (creating the group at id 0)."""
        for key in self.client.scan_iter(match=KEY_PATTERN, count=1000, _type="STREAM"):
            raw = key if isinstance(key, bytes) else str(key).encode()
            name = parse_key(raw)
            if raw in self._streams or name is None:
                continue
            try:
                self.client.xgroup_create(raw, GROUP, id="0")
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._streams[raw] = _Stream(name)
            self.log_of(name.run_id)

    def forget_groups(self) -> None:
        """The broker lost its groups (restarted without them): join every stream again."""
        self._streams = {k: s for k, s in self._streams.items() if s.backlog}
        for stream in self._streams.values():
            stream.pending_from = b"0"
        self._next_discover = 0.0

    def _claim(self) -> None:
        idle_ms = int(self.settings.claim_idle * 1000)
        for key, stream in self._streams.items():
            reply = self.client.xautoclaim(
                key, GROUP, self.consumer, idle_ms, start_id="0-0", count=self.settings.count
            )
            entries: list[Entry] = reply[1] if len(reply) > 1 else []
            if entries:
                logger.info("entries_claimed", stream=key.decode(), entries=len(entries))
            self._take(stream, entries)

    def _read_pending(self) -> None:
        keys = {k: s.pending_from for k, s in self._streams.items() if s.pending_from}
        if not keys:
            return
        got = dict(self._group_read(keys, block=None))
        for key in keys:
            stream = self._streams[key]
            entries = got.get(key, [])
            if not entries:
                stream.pending_from = None  # all of this consumer's pending entries read
                continue
            stream.pending_from = entries[-1][0]
            self._take(stream, entries)

    def _read_new(self, *, block: bool) -> None:
        keys = {k: b">" for k in self._streams}
        if not keys:
            if block:
                time.sleep(self.settings.block)
            return
        wait = int(self.settings.block * 1000) if block else None
        for key, entries in self._group_read(keys, block=wait):
            self._take(self._streams[key], entries)

    def _group_read(
        self, keys: dict[bytes, bytes], block: int | None
    ) -> Iterable[tuple[bytes, list[Entry]]]:
        streams: Any = keys
        reply: Any = self.client.xreadgroup(
            GROUP, self.consumer, streams, count=self.settings.count, block=block
        )
        items = reply.items() if isinstance(reply, dict) else (reply or [])
        for key, entries in items:
            yield (key if isinstance(key, bytes) else str(key).encode()), list(entries)

    @staticmethod
    def _take(stream: _Stream, entries: Iterable[Entry]) -> None:
        for entry, fields in entries:
            stream.backlog[seq_of(entry)] = (entry, fields)

    # -- writing --

    def _write(self, key: bytes, stream: _Stream) -> bool:
        """Write what comes next of the stream's backlog; whether anything was settled."""
        name = stream.name
        log = self.log_of(name.run_id)
        done: list[bytes] = []
        with log.locked():
            held = log.held.get(name.rank, 0)
            backlog = stream.backlog
            done += [backlog.pop(s)[0] for s in sorted(backlog) if s <= held]
            entries = self._next_entries(key, backlog, held)
            events = self._decode(key, entries, done)
            events = self._hold_back_finish(name, log, events, _world(entries))
            log.append(name.rank, events)
            self.written += len(events)
            now_held = log.held.get(name.rank, 0)
            settled = set(done)
            done += [e for e, _ in entries if seq_of(e) <= now_held and e not in settled]
            for entry in done:
                backlog.pop(seq_of(entry), None)
        if done:
            pipe = self.client.pipeline(transaction=False)
            pipe.xack(key, GROUP, *done)
            pipe.xdel(key, *done)
            pipe.execute()
        return bool(done)

    def _next_entries(self, key: bytes, backlog: dict[int, Entry], held: int) -> list[Entry]:
        """The entries right after ``held``: from the backlog while consecutive, else the
        stream's own next ones (a gap: a seq the producer never added, or taken by another)."""
        run: list[Entry] = []
        for seq in sorted(backlog):
            if seq != held + len(run) + 1:
                break
            run.append(backlog[seq])
        if run or not backlog:
            return run
        start = "-" if held == 0 else f"({entry_id(held)}"
        following: Any = self.client.xrange(key, min=start, count=self.settings.count)
        return [e for e in following if seq_of(e[0]) <= max(backlog)]

    @staticmethod
    def _decode(key: bytes, entries: list[Entry], done: list[bytes]) -> list[Event]:
        events: list[Event] = []
        for entry, fields in entries:
            raw = (fields or {}).get(FIELD)
            try:
                event = decode(raw) if raw is not None else None
            except (ValueError, TypeError) as exc:
                logger.warning("entry_unreadable", stream=key.decode(), entry=entry, error=str(exc))
                event = None
            if event is None or isinstance(event, dict) or event.seq != seq_of(entry):
                done.append(entry)  # nothing to write: acknowledged so it is not read again
                continue
            events.append(event)
        return events

    def _waits_for_rank_zero(self, name: StreamName) -> bool:
        """Another rank's events wait for rank 0's first (its run_started and config), for
        ``finish_wait`` seconds at most (a run whose rank 0 never publishes)."""
        log = self.log_of(name.run_id)
        if name.rank == 0 or log.held.get(0, 0) > 0:
            return False
        with log.locked():  # another collector may have written rank 0 meanwhile
            if log.held.get(0, 0) > 0:
                return False
        first_seen = self._rank_seen.setdefault(name, time.monotonic())
        return time.monotonic() - first_seen < self.settings.finish_wait

    def _hold_back_finish(
        self, name: StreamName, log: CentralLog, events: list[Event], world: int
    ) -> list[Event]:
        """Rank 0's ``run_finished`` ends the central run: written once the other ranks (those
        of its world size, and any other seen) have ended too, or ``finish_wait`` seconds
        after it came (a rank that died or never started)."""
        if name.rank != 0:
            return events
        end = next((i for i, e in enumerate(events) if type(e) is RunFinished), None)
        if end is None:
            return events
        if name.run_id not in self._finish_seen:
            self.discover()  # a rank whose stream appeared since the last scan
        others = {s.name.rank for s in self._streams.values() if s.name.run_id == name.run_id}
        others |= set(range(world))
        others.discard(0)
        first_seen = self._finish_seen.setdefault(name.run_id, time.monotonic())
        late = time.monotonic() - first_seen >= self.settings.finish_wait
        if others <= log.finished or late:
            return events
        return events[:end]


def _world(entries: Iterable[Entry]) -> int:
    """The world size a ``run_finished`` entry among ``entries`` gives (1 if none does)."""
    sizes = [(fields or {}).get(WORLD, b"1") for _, fields in entries]
    return max((int(size) for size in sizes if size.isdigit()), default=1)
