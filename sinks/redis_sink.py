"""Redis Streams sink: forwards a run's events to one stream per run and rank, for a collector.

Each event becomes one entry of ``rltelemetry:run:<run_id>:rank:<rank>`` whose id is
derived from its ``seq`` (``<seq>-1``) and whose ``event`` field is its JSON line,
exactly as the log writes it. Redis refuses an explicit id at or below the stream's
top, so a batch retried after a lost reply is refused instead of stored twice: the
sink takes that refusal as "already delivered". A batch is one ``MULTI``/``EXEC``,
so an out-of-memory refusal (``maxmemory`` with ``noeviction``) stores none of it
and no later entry can overtake an earlier one.

A broker that is down, full or unreachable is an outage: the sink raises
``SinkUnavailableError``, its lane falls behind onto the durable log and catches
up when the broker takes entries again. redis-py's blocking calls run in a worker
thread, with short connect and reply timeouts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import redis

from telemetry.checks import TIMEOUT, Interval
from telemetry.codec import encode
from telemetry.collector.streams import FIELD, WORLD, entry_id, stream_key
from telemetry.errors import ConfigError, SinkUnavailableError
from telemetry.events import Event, RunFinished
from telemetry.sink import Delivery, SinkContext, fresh

SCHEMES = ("redis", "rediss", "unix")
_ALREADY_HELD = "equal or smaller than the target stream top"


@dataclass(kw_only=True)
class RedisOptions(Delivery):
    """Settings of the Redis Streams sink."""

    url: str | None = None
    """The broker, ``redis://HOST:PORT[/DB]``; required when ``sinks`` lists redis."""
    rank: int | None = None
    """This process's rank in a multi-process run; default: $RANK (torch.distributed), else 0."""
    world_size: int | None = None
    """Ranks in the run; default: $WORLD_SIZE (torch.distributed), else unknown. Rank 0's
    ``run_finished`` carries it, so the collector ends the central run only once every rank
    has ended, a rank not yet started included (unknown: the ranks it has seen)."""
    connect_timeout: float = 2.0
    """Seconds to connect before the broker counts as unreachable."""
    timeout: float = 5.0
    """Seconds one batch may wait for the broker's reply before it counts as down."""

    def limits(self) -> dict[str, Interval]:
        return {**super().limits(), "connect_timeout": TIMEOUT, "timeout": TIMEOUT}

    def extra_checks(self) -> list[tuple[str, bool, str]]:
        rank_ok = self.rank is None or (isinstance(self.rank, int) and self.rank >= 0)
        world = self.world_size
        world_ok = world is None or (isinstance(world, int) and world >= 1)
        return [
            ("url", valid_url(self.url), "a broker URL redis://HOST:PORT (required for redis)"),
            ("rank", rank_ok, "an integer >= 0"),
            ("world_size", world_ok, "an integer >= 1"),
        ]


def valid_url(url: str | None) -> bool:
    """A URL redis-py can connect to: ``redis://``, ``rediss://`` or ``unix://``, with a host."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return False
    if parts.scheme not in SCHEMES:
        return False
    return bool(parts.path) if parts.scheme == "unix" else bool(parts.hostname)


def resolve_rank(
    option: int | None, environ: os._Environ[str] | dict[str, str] = os.environ
) -> int:
    """The rank to publish under: the option, else $RANK as torch.distributed sets it, else 0."""
    if option is not None:
        return option
    return _from_env(environ, "RANK", "redis.rank", minimum=0) or 0


def resolve_world_size(
    option: int | None, environ: os._Environ[str] | dict[str, str] = os.environ
) -> int | None:
    """The run's number of ranks: the option, else $WORLD_SIZE, else None (unknown)."""
    if option is not None:
        return option
    return _from_env(environ, "WORLD_SIZE", "redis.world_size", minimum=1)


def _from_env(
    environ: os._Environ[str] | dict[str, str], variable: str, key: str, minimum: int
) -> int | None:
    text = environ.get(variable, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < minimum:
        raise ConfigError(
            f"{key}: the {variable} environment variable must be {minimum} or more, got {text!r}"
        )
    return int(text)


class RedisSink:
    """Adds events to the run's stream; see the module docstring for how it degrades."""

    def __init__(self, run_id: str, options: RedisOptions) -> None:
        if not valid_url(options.url):
            raise ConfigError(
                f"redis.url must be a broker URL redis://HOST:PORT, got {options.url!r}"
            )
        self.name = "redis"
        self.options = options
        self.rank = resolve_rank(options.rank)
        self.world_size = resolve_world_size(options.world_size)
        self.key = stream_key(run_id, self.rank)
        self.delivered_seq = 0
        self._client: redis.Redis | None = None

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self._open)

    def _open(self) -> None:
        assert self.options.url is not None
        client = redis.Redis.from_url(
            self.options.url,
            socket_connect_timeout=self.options.connect_timeout,
            socket_timeout=self.options.timeout,
        )
        try:
            client.ping()
        except redis.RedisError as exc:
            client.close()
            raise SinkUnavailableError(self._explain(exc)) from exc
        self._client = client

    async def write(self, batch: Sequence[Event]) -> None:
        new = fresh(batch, self.delivered_seq)
        if new:
            await anyio.to_thread.run_sync(self._add, new)

    def _add(self, events: Sequence[Event]) -> None:
        client = self._client
        if client is None:
            raise SinkUnavailableError("the redis sink is not open")
        pipe = client.pipeline(transaction=True)
        for event in events:
            fields: dict[Any, Any] = {FIELD: encode(event)}
            if self.world_size is not None and type(event) is RunFinished:
                fields[WORLD] = str(self.world_size).encode()
            pipe.xadd(self.key, fields, id=entry_id(event.seq))
        try:
            replies: list[Any] = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            raise SinkUnavailableError(self._explain(exc)) from exc
        for reply in replies:
            # An id at or below the top: the broker has that event already (a retry).
            if isinstance(reply, redis.ResponseError) and _ALREADY_HELD not in str(reply):
                raise SinkUnavailableError(self._explain(reply))
        self.delivered_seq = events[-1].seq

    def _explain(self, exc: Exception) -> str:
        text = str(exc)
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or text.startswith("OOM"):
            text = "the broker is full (maxmemory reached, noeviction): " + text
        return f"redis broker {_safe(self.options.url)}: {type(exc).__name__}: {text}"

    async def close(self, timeout: float) -> None:
        client, self._client = self._client, None
        if client is not None:
            await anyio.to_thread.run_sync(client.close, abandon_on_cancel=True)


def _safe(url: str | None) -> str:
    """The URL without a password, for messages."""
    parts = urlsplit(url or "")
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@") if url else ""
    return url or ""


OPTIONS = RedisOptions


def build(context: SinkContext, options: RedisOptions) -> RedisSink:
    """The run's stream on the broker at ``redis.url``, under this process's rank."""
    return RedisSink(context.run_id, options)
