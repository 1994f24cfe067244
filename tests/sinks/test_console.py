"""The console: one line per event, never per scalar; JSON when not on a terminal."""

from __future__ import annotations

import io

import orjson

from sinks.console import ConsoleOptions, ConsoleSink
from telemetry.events import Aggregate, Alert, Health, LogRecord, Metrics, RunStarted


def _metrics(seq: int, step: int) -> Metrics:
    values = {f"episode/m{i}": float(i) for i in range(10)}
    return Metrics(run_id="r", seq=seq, time=0.0, step=step, axis="episode", values=values)


async def test_json_lines_when_not_a_terminal() -> None:
    """Piped output is one JSON object per metrics event with at most max_keys values."""
    stream = io.StringIO()
    sink = ConsoleSink(ConsoleOptions(max_keys=4), stream=stream)
    await sink.write([_metrics(1, 0), _metrics(2, 1)])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first = orjson.loads(lines[0])
    assert first["event"] == "episode"
    assert first["step"] == 0
    assert sum(k.startswith("episode/") for k in first) == 4


async def test_every_thins_metrics_lines_and_health_stays_quiet() -> None:
    """console.every=5 prints every fifth step; healthy health events print nothing."""
    stream = io.StringIO()
    sink = ConsoleSink(ConsoleOptions(every=5), stream=stream)
    healthy = Health(
        run_id="r",
        seq=100,
        time=0.0,
        step=1,
        values={"telemetry/x/failed": 0, "telemetry/x/spilled": 0},
    )
    await sink.write([_metrics(i + 1, i) for i in range(20)] + [healthy])
    steps = [orjson.loads(line)["step"] for line in stream.getvalue().splitlines()]
    assert steps == [0, 5, 10, 15]


async def test_pretty_lines_show_aggregates_in_one_line() -> None:
    """In pretty format an aggregate is one readable line with means and trends."""
    stream = io.StringIO()
    sink = ConsoleSink(ConsoleOptions(format="pretty"), stream=stream)
    start = RunStarted(run_id="r", seq=1, time=0.0, name="demo", project="p")
    aggregate = Aggregate(
        run_id="r",
        seq=2,
        time=0.0,
        step=9,
        axis="episode",
        window=10,
        first_step=0,
        values={"reward/mean": 1.5, "reward/std": 0.1, "reward/trend": 0.2},
    )
    await sink.write([start, aggregate])
    await sink.close(1.0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "aggregate" in lines[1]
    assert "reward/mean=1.5" in lines[1]
    assert "0-9" in lines[1]
    assert "reward/std" not in lines[1]


async def test_alerts_and_log_records_print_with_their_level_and_fields() -> None:
    """An alert prints as ALERT with its title, level and key; a log record with its fields."""
    stream = io.StringIO()
    sink = ConsoleSink(ConsoleOptions(), stream=stream)
    alert = Alert(
        run_id="r", seq=1, time=0.0, title="loss is NaN", level="ERROR", key="losses/a", step=7
    )
    record = LogRecord(
        run_id="r",
        seq=2,
        time=0.0,
        level="warning",
        message="slow batch",
        logger="mine",
        fields={"ms": 120, "event": "x"},
    )
    await sink.write([alert, record])
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first == {**first, "event": "ALERT", "level": "ERROR", "title": "loss is NaN"}
    assert (first["key"], first["step"]) == ("losses/a", 7)
    assert second == {
        **second,
        "event": "slow batch",
        "level": "warning",
        "logger": "mine",
        "ms": 120,
        "field_event": "x",
    }
