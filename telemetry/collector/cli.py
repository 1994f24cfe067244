"""``python main.py collect --broker redis://HOST:PORT [--out DIR] [KEY=VALUE ...]``.

Reads every run stream of the broker into one central run folder per run under
``out`` (``telemetry.collector.ingest``) and has each central log delivered to the
sinks from config by a deliverer process per run (``telemetry.collector.supervisor``),
until SIGINT or SIGTERM.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from pathlib import Path

import redis
import structlog

from sinks.redis_sink import valid_url
from telemetry.collector.ingest import Ingest, IngestSettings
from telemetry.collector.settings import CollectSettings, collect_config
from telemetry.collector.supervisor import Deliverers
from telemetry.config import load_config
from telemetry.errors import ConfigError

logger = structlog.get_logger("telemetry.collector")
EXIT_USAGE = 2
EXIT_UNREACHABLE = 1


def collect(broker: str, *, out: Path, overrides: list[str]) -> int:
    """Collect every run of ``broker`` into ``out`` until SIGINT/SIGTERM; the exit status.

    A bad URL or config is one ``error:`` line and status 2; a broker that cannot
    be reached at start, one line and status 1. Once running, a broker that goes
    away is waited for. Status 0 after SIGINT or SIGTERM: the collector's normal end.
    """
    try:
        settings = load_config(collect_config(), None, overrides)
        settings.validate()
        if not valid_url(broker):
            raise ConfigError(f"--broker must be a URL redis://HOST:PORT, got {broker!r}")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    client = redis.Redis.from_url(broker, socket_connect_timeout=2.0, socket_timeout=10.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        print(f"error: cannot reach the broker {broker}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        run(client, settings, out, overrides)
    finally:
        client.close()
    return 0


def run(client: redis.Redis, settings: CollectSettings, out: Path, overrides: list[str]) -> None:
    """The collector's loop in this thread, until SIGINT or SIGTERM (main thread only)."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    deliverers = Deliverers(overrides, settings.sinks)
    consumer = settings.consumer or socket.gethostname()
    ingest = Ingest(
        client,
        out,
        consumer,
        IngestSettings(claim_idle=settings.claim_idle, finish_wait=settings.finish_wait),
        on_run=(lambda _, run_dir: deliverers.want(run_dir)) if settings.sinks else None,
    )
    logger.info("collector_started", consumer=consumer, out=str(out), sinks=settings.sinks)
    try:
        _ingest_until(ingest, deliverers, stop)
    finally:
        deliverers.stop(settings.close_timeout + 5)
    logger.info("collector_stopped", events=ingest.written)


def _ingest_until(ingest: Ingest, deliverers: Deliverers, stop: threading.Event) -> None:
    """Rounds of ``ingest.step`` until ``stop``; a broker that is away is waited for."""
    wait, down = 0.5, False
    while not stop.is_set():
        deliverers.tend()
        try:
            ingest.step()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if not down:
                logger.warning("broker_down", error=str(exc), note="retrying with backoff")
            down = True
            stop.wait(wait)
            wait = min(wait * 2, 5.0)
            continue
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the broker came back without the group
                ingest.forget_groups()
                continue
            logger.warning("broker_refused", error=str(exc))
            stop.wait(wait)
            continue
        if down:
            logger.info("broker_back")
        wait, down = 0.5, False
