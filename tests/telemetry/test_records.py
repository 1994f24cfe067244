"""Users' log records into the run (telemetry.records), read back from real logs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import structlog
from wandb.proto import wandb_internal_pb2

from sinks.jsonl import JsonlSink
from sinks.wandb_sink import WandbOptions, WandbSink
from telemetry.bus import Bus, RunInfo
from telemetry.events import LogRecord
from telemetry.reader import LogReader
from telemetry.records import LogRecordHandler, RunRecords, to_run
from telemetry.sink import SinkContext
from tests.fakes.wandb_file import records, run_file

STDOUT = wandb_internal_pb2.OutputRawRecord.OutputType.STDOUT
STDERR = wandb_internal_pb2.OutputRawRecord.OutputType.STDERR


def read(run_dir: Path) -> list[LogRecord]:
    """The log records of the run's log."""
    return [e for e in LogReader(run_dir / "events.jsonl") if isinstance(e, LogRecord)]


def bus_for(run_dir: Path, *sinks: object) -> Bus:
    """A bus writing the run's log (and ``sinks``)."""
    return Bus("rec", [JsonlSink(run_dir / "events.jsonl", "rec"), *sinks], health_interval=None)  # type: ignore[list-item]


@pytest.fixture
def user_logger() -> Iterator[logging.Logger]:
    """A standard-library logger of the user's, cleaned up after the test."""
    log = logging.getLogger("user.train")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


async def test_logging_records_reach_the_log_with_level_and_extra_fields(
    tmp_path: Path, user_logger: logging.Logger
) -> None:
    """A ``logging`` record keeps its level, message, logger name and ``extra`` fields."""
    with anyio.fail_after(20):
        async with bus_for(tmp_path) as bus:
            user_logger.addHandler(LogRecordHandler(bus))
            user_logger.warning("lr %s too high", 0.5, extra={"lr": 0.5, "epoch": 3, "ok": True})
            user_logger.debug("below the handler's level")

            def from_thread() -> None:
                user_logger.info("from a worker", extra={"shape": (2, 3), "none": None})

            await anyio.to_thread.run_sync(from_thread)
            try:
                raise ValueError("boom")
            except ValueError:
                user_logger.exception("step failed")
    first, second, third = read(tmp_path)
    expected = ("warning", "lr 0.5 too high", "user.train")
    assert (first.level, first.message, first.logger) == expected
    assert first.fields == {"lr": 0.5, "epoch": 3, "ok": True}
    assert second.message == "from a worker"
    assert second.fields == {"shape": "(2, 3)", "none": None}
    assert third.level == "error"
    assert "ValueError: boom" in str(third.fields["exception"])


async def test_structlog_records_reach_the_log_and_pass_through(tmp_path: Path) -> None:
    """A structlog event becomes a record with its other keys as fields; the chain goes on."""
    seen: list[dict[str, object]] = []

    def keep(_: object, __: str, event_dict: dict[str, object]) -> dict[str, object]:
        seen.append(dict(event_dict))
        raise structlog.DropEvent

    with anyio.fail_after(20):
        async with bus_for(tmp_path) as bus:
            log = structlog.wrap_logger(
                structlog.PrintLogger(),
                processors=[structlog.processors.add_log_level, to_run(bus), keep],
            )
            log.info("episode_done", reward=1.5, steps=200, tag="a", obj=object)
            log.warn("slow", seconds=2)
            log.debug("not at info")
    first, second = read(tmp_path)
    assert (first.level, first.message) == ("info", "episode_done")
    assert first.logger == __name__
    assert first.fields["reward"] == 1.5
    assert first.fields["steps"] == 200
    assert first.fields["obj"] == "<class 'object'>"
    assert (second.level, second.fields) == ("warning", {"seconds": 2})
    assert [e["event"] for e in seen] == ["episode_done", "slow", "not at info"]


async def test_a_flood_is_bounded_and_the_excess_counted_and_said(
    tmp_path: Path, user_logger: logging.Logger
) -> None:
    """Past ``per_second`` records of one logger the rest are dropped, counted and reported."""
    with anyio.fail_after(20):
        async with bus_for(tmp_path) as bus:
            handler = LogRecordHandler(bus, per_second=20)
            user_logger.addHandler(handler)
            other = logging.getLogger("user.other")
            other.addHandler(handler)
            for i in range(1000):
                user_logger.info("flood %d", i)
            other.warning("another logger has its own allowance")
            handler.close()
            other.removeHandler(handler)
    got = read(tmp_path)
    flood = [r for r in got if r.message.startswith("flood")]
    assert 20 <= len(flood) <= 40  # a second boundary may fall inside the loop
    assert handler.records.dropped == 1000 - len(flood)
    (said,) = [r for r in got if r.message == "log_records_dropped"]
    assert (said.level, said.logger) == ("warning", "user.train")
    assert said.fields == {"dropped": handler.records.dropped, "per_second": 20}
    assert any(r.logger == "user.other" for r in got)


async def test_the_pipelines_own_loggers_and_nested_records_are_left_out(tmp_path: Path) -> None:
    """Records of ``telemetry.*`` loggers, and ones logged while publishing, never recurse."""
    with anyio.fail_after(20):
        async with bus_for(tmp_path) as bus:
            core = RunRecords(bus)
            assert not core.publish("warning", "own", "telemetry.bus")
            assert not core.publish("warning", "own", "sinks.wandb")
            handler = LogRecordHandler(bus)
            own = logging.getLogger("telemetry.test_records")
            own.addHandler(handler)
            try:
                own.warning("the pipeline talking")
            finally:
                own.removeHandler(handler)
            assert core.publish("info", "user", "user")
    assert [r.message for r in read(tmp_path)] == ["user"]


async def test_records_before_open_and_after_close_are_counted_not_raised(
    tmp_path: Path,
) -> None:
    """A record the bus cannot take never raises or waits: it is counted in ``refused``."""
    bus = bus_for(tmp_path)
    core = RunRecords(bus)
    assert not core.publish("info", "early", "user")
    with anyio.fail_after(20):
        async with bus:
            pass
    done = threading.Event()

    def late() -> None:
        core.publish("info", "late", "user")
        done.set()

    await anyio.to_thread.run_sync(late)
    assert done.is_set()
    assert core.refused == 2
    assert read(tmp_path) == []


async def test_log_records_land_in_the_wandb_run_console_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each record is an ``output_raw`` line of the offline wandb run file."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    context = SinkContext(run_id="rec", run_dir=tmp_path, run_name="records")
    sink = WandbSink(context, WandbOptions(mode="offline"))
    with anyio.fail_after(120):
        async with Bus(
            "rec",
            [JsonlSink(tmp_path / "events.jsonl", "rec"), sink],
            run=RunInfo(name="records"),
            health_interval=None,
        ) as bus:
            bus.log({"x/y": 1.0}, step=0, axis="step")
            core = RunRecords(bus)
            core.publish("info", "hello from the user", "user.train", {"reward": 1.5})
            core.publish("error", "it broke", "user.train")
    lines = [
        (r.output_raw.output_type, r.output_raw.line)
        for r in records(run_file(tmp_path))
        if r.WhichOneof("record_type") == "output_raw"
    ]
    text = "".join(line for _, line in lines)
    assert "[info] user.train: hello from the user reward=1.5\n" in text
    assert "[error] user.train: it broke\n" in text
    assert {kind for kind, line in lines if "[info] user.train" in line} == {STDOUT}
    assert {kind for kind, line in lines if "[error] user.train" in line} == {STDERR}
