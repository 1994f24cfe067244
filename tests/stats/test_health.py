"""A real run's health view equals its log: per-sink counts, system metrics, alerts, records."""

from __future__ import annotations

import json
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest

from sinks.jsonl import JsonlSink
from sinks.memory import MemorySink
from telemetry.alerts import AlertRule, AlertSpec
from telemetry.bus import Bus
from telemetry.records import LogRecordHandler
from telemetry.stats.health import health_view
from telemetry.system import sample_system
from tests.conftest import OutageSink


async def _train(folder: Path, steps: int) -> None:
    log = JsonlSink(folder / "events.jsonl", "health01")
    rules = AlertSpec(rules=(AlertRule(key="losses/*", when="nan", level="ERROR"),))
    remote = OutageSink(down_at_open=True)  # a remote sink down the whole run: it falls behind
    with anyio.fail_after(30):
        async with Bus(
            "health01", [log, remote, MemorySink()], alerts=rules, health_interval=0.05
        ) as bus:
            handler = LogRecordHandler(bus)
            trainer = logging.getLogger("views.trainer")
            trainer.addHandler(handler)
            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(sample_system, bus, 0.05, folder)
                    for step in range(steps):
                        loss = float("nan") if step == steps // 2 else 1.0 / (step + 1)
                        bus.log({"losses/value": loss}, step=step, axis="episode")
                        if step == 3:
                            trainer.warning("learning rate %s looks high", 0.5, extra={"lr": 0.5})
                        await anyio.sleep(0.02)
                    await anyio.sleep(0.12)  # at least two system samples
                    group.cancel_scope.cancel()
                assert await bus.drain()  # the healthy sinks hold everything at the last sample
            finally:
                trainer.removeHandler(handler)
                handler.close()


def write_health_run(folder: Path, steps: int = 25) -> Path:
    """A run folder written by the real bus: log, a remote sink down, a memory sink, health
    every 50 ms, system metrics every 50 ms, a NaN alert rule and one warning record."""
    folder.mkdir(parents=True, exist_ok=True)
    # In a thread of its own: Playwright's sync API, once a browser test has started it,
    # keeps an event loop running in the main thread, where anyio.run would refuse to start.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, _train, folder, steps).result(timeout=60)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_health_run(tmp_path_factory.mktemp("health") / "run")


def logged(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    """The log's events of one type, parsed with plain ``json``."""
    rows = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return [r for r in rows if r["type"] == kind]


def test_each_sink_has_its_counts_at_every_health_sample(run: Path) -> None:
    """Per sink and field, the series is that key's value in each health event, in order."""
    view = health_view(run)
    samples = logged(run, "health")
    assert len(samples) >= 4
    assert view["time"] == [s["time"] for s in samples]
    assert [s["name"] for s in view["sinks"]] == ["jsonl", "remote", "memory"]
    for sink in view["sinks"]:
        for what in ("delivered", "failed", "queued", "spilled", "pending"):
            key = f"telemetry/{sink['name']}/{what}"
            assert sink[what] == [s["values"][key] for s in samples]
    published = [s["values"]["telemetry/published"] for s in samples]
    assert view["pipeline"]["telemetry/published"] == published


def test_the_sink_that_is_down_is_behind_and_the_others_are_not(run: Path) -> None:
    """The remote sink spilled and its pending grew at every sample: flagged, with why; the log
    and the memory sink, drained at the end, are not."""
    view = health_view(run)
    assert view["behind"] == ["remote"]
    remote = next(s for s in view["sinks"] if s["name"] == "remote")
    last = logged(run, "health")[-1]["values"]
    assert remote["delivered"][-1] == 0
    assert f"{last['telemetry/remote/spilled']:g} spilled" in remote["reasons"]
    assert any(r.startswith("pending growing") for r in remote["reasons"])
    assert remote["pending"][-1] == last["telemetry/published"]


def test_system_metrics_alerts_and_records_are_the_logs(run: Path) -> None:
    """The system/ series, the NaN alert and the warning record are as the log holds them."""
    view = health_view(run)
    system = [e for e in logged(run, "metrics") if e["axis"] == "system"]
    assert len(system) >= 2
    assert "system/process_memory_mib" in view["system"]
    for key, series in view["system"].items():
        assert series["x"] == [e["step"] for e in system if key in e["values"]]
        assert series["y"] == [e["values"][key] for e in system if key in e["values"]]
    (alert,) = logged(run, "alert")
    assert view["alerts"] == [{k: alert[k] for k in view["alerts"][0]}]
    assert alert["title"] == "not finite: losses/value"
    (record,) = logged(run, "log_record")
    assert view["records"] == [{k: record[k] for k in view["records"][0]}]
    assert view["records"][0]["message"] == "learning rate 0.5 looks high"
    assert view["records"][0]["fields"]["lr"] == 0.5


def test_a_long_run_is_thinned_without_hiding_a_backlog(run: Path) -> None:
    """Past ``points`` samples, each bucket keeps its last count and its highest pending; the
    behind flag still comes from every sample; system series keep their extremes."""
    samples = logged(run, "health")
    size = -(-len(samples) // 3)
    buckets = [samples[i : i + size] for i in range(0, len(samples), size)]
    view = health_view(run, points=3)
    assert view["thinned"]
    assert view["samples"] == len(samples)
    assert view["time"] == [b[-1]["time"] for b in buckets]
    remote = next(s for s in view["sinks"] if s["name"] == "remote")
    key = "telemetry/remote/"
    assert remote["spilled"] == [b[-1]["values"][key + "spilled"] for b in buckets]
    assert remote["pending"] == [max(s["values"][key + "pending"] for s in b) for b in buckets]
    assert view["behind"] == ["remote"]
    system = [e for e in logged(run, "metrics") if e["axis"] == "system"]
    memory = [e["values"]["system/process_memory_mib"] for e in system]
    kept = health_view(run, points=4)["system"]["system/process_memory_mib"]["y"]
    assert len(memory) >= 6  # the run sampled for longer than 0.3 s
    assert len(kept) == 4
    assert {min(memory), max(memory)} <= set(kept)


def test_a_malformed_line_is_a_problem_and_the_rest_is_read(run: Path, tmp_path: Path) -> None:
    """A line that is not JSON is listed by its number; every health sample is still there."""
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    lines = (copy / "events.jsonl").read_text().splitlines(keepends=True)
    lines.insert(5, "{not json\n")
    (copy / "events.jsonl").write_text("".join(lines))
    view = health_view(copy)
    assert [p["line"] for p in view["problems"]] == [6]
    assert len(view["time"]) == len(logged(run, "health"))


def test_a_file_that_is_not_a_log_is_one_problem(tmp_path: Path) -> None:
    """A log without its schema header gives no series and one problem naming line 1."""
    (tmp_path / "events.jsonl").write_text('{"hello": 1}\n')
    view = health_view(tmp_path)
    assert view["sinks"] == []
    assert [p["line"] for p in view["problems"]] == [1]
    assert "not a rltelemetry.jsonl log" in view["problems"][0]["reason"]
