"""The trades, health and sweep endpoints of the real app: the logs' values, refusals, problems."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from telemetry.dashboard.app import build_app
from tests.reports.logs import logged_trades, random_trades, write_run
from tests.stats.test_health import write_health_run
from tests.stats.test_sweeps import results, shared_sweep


def in_thread(write: Callable[..., Path], *args: Any, **kwargs: Any) -> Path:
    """``write(...)`` in a thread of its own: after a browser test, Playwright's sync API
    keeps an event loop running in this one, where the bus's anyio.run would not start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(write, *args, **kwargs).result(timeout=60)


def make_runs(factory: pytest.TempPathFactory) -> Path:
    """A runs folder with a trading run (``trading``), a run whose remote sink was down
    (``pipeline``) and a sweep with stopped trials (``sweeps/grid``)."""
    root = factory.mktemp("runs")
    in_thread(write_run, root / "trading", "trade01", trades=random_trades(5, 60))
    write_health_run(root / "pipeline")
    shutil.copytree(shared_sweep(factory), root / "sweeps" / "grid")
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_runs(tmp_path_factory)


@pytest.fixture
def client(runs: Path) -> Iterator[TestClient]:
    with TestClient(build_app(runs)) as test_client:
        yield test_client


def get(client: TestClient, path: str, status: int = 200) -> Any:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def test_trades_are_the_logs_trades(client: TestClient, runs: Path) -> None:
    """Cumulative P&L, win rate and long/short counts equal those of the log's trade lines."""
    data = get(client, "/api/run/trading/trades")
    pnl = [t["pnl"] for t in logged_trades(runs / "trading")]
    assert data["views"]["count"] == len(pnl) == 60
    assert data["views"]["cumulative_pnl"]["y"] == pytest.approx([0, *itertools.accumulate(pnl)])
    assert data["statistics"]["win_rate"] == pytest.approx(sum(p > 0 for p in pnl) / len(pnl))
    longs = sum(t["direction"] == 1 for t in logged_trades(runs / "trading"))
    assert data["views"]["long_short"]["long"]["trades"] == longs
    assert data["problems"] == []


def test_health_flags_the_sink_that_was_down(client: TestClient, runs: Path) -> None:
    """The remote sink is behind; its pending series is the log's, sample by sample."""
    data = get(client, "/api/run/pipeline/health")
    assert data["behind"] == ["remote"]
    lines = (runs / "pipeline" / "events.jsonl").read_text().splitlines()
    samples = [r for r in map(json.loads, lines) if r["type"] == "health"]
    remote = next(s for s in data["sinks"] if s["name"] == "remote")
    assert remote["pending"] == [s["values"]["telemetry/remote/pending"] for s in samples]
    assert data["alerts"][0]["level"] == "ERROR"
    assert data["records"][0]["logger"] == "views.trainer"


def test_the_sweep_lists_its_trials_with_links_to_their_runs(
    client: TestClient, runs: Path
) -> None:
    """Every ended trial, stopped ones flagged, each with the id of its run under the runs
    folder (the copy's, not where the sweep first ran), which the health route opens."""
    data = get(client, "/api/sweep/sweeps/grid")
    ended = results(runs / "sweeps" / "grid")
    assert [(t["number"], t["state"]) for t in data["trials"]] == [
        (r["trial"], r["outcome"]) for r in sorted(ended, key=lambda r: r["trial"])
    ]
    assert [t["stopped"] for t in data["trials"]] == [
        t["state"] == "stopped" for t in data["trials"]
    ]
    assert any(t["stopped"] for t in data["trials"])
    assert data["sweep"] == "sweeps/grid"
    for trial in data["trials"]:
        assert trial["run_id"] == f"sweeps/grid/trials/{trial['number']:04d}"
        assert get(client, f"/api/run/{trial['run_id']}/health")["problems"] == []
    assert set(data["importance"]["values"]) == {"kind", "x"}
    assert data["best"]["number"] == min(ended, key=lambda r: r["best"])["trial"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/run/nothing/trades",
        "/api/run/nothing/health",
        "/api/sweep/nothing",
        "/api/sweep/trading",  # a run, not a sweep
        "/api/run/sweeps/grid/health",  # a sweep, not a run
    ],
)
def test_an_unknown_id_is_a_404_naming_it(client: TestClient, path: str) -> None:
    """An id that names no run (or no sweep) under the runs folder is a JSON 404."""
    assert "under the runs folder" in get(client, path, 404)["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/run/..%2F..%2Fetc/health",
        "/api/run/%2Fetc/trades",
        "/api/sweep/..%2Foutside",
        "/api/run/escape/health",  # a symlink inside the runs folder pointing out of it
    ],
)
def test_a_path_outside_the_runs_folder_is_refused(
    client: TestClient, runs: Path, tmp_path: Path, path: str
) -> None:
    """Whatever the URL says, nothing outside the runs folder is read: 403 with the reason."""
    outside = tmp_path / "outside"
    in_thread(write_run, outside, "out01", trades=random_trades(1, 3))
    link = runs / "escape"
    if not link.is_symlink():
        link.symlink_to(outside, target_is_directory=True)
    try:
        assert "outside the runs folder" in get(client, path, 403)["error"]
    finally:
        link.unlink()


def test_malformed_lines_are_problems_and_new_trades_are_read(
    client: TestClient, runs: Path, tmp_path: Path
) -> None:
    """A torn line and a line that is no event are listed, not a 500; trades appended after
    a first request are in the next answer."""
    folder = runs / "appended"
    in_thread(write_run, folder, "app01", trades=random_trades(2, 10))
    assert get(client, "/api/run/appended/trades")["views"]["count"] == 10
    more = in_thread(write_run, tmp_path / "more", "app01", trades=random_trades(3, 5))
    tail = (more / "events.jsonl").read_text().splitlines(keepends=True)[2:]  # after seq 1
    lines = (folder / "events.jsonl").read_text().splitlines()
    last_seq = max(json.loads(line)["seq"] for line in lines)
    shifted = [
        json.dumps({**json.loads(line), "seq": last_seq + i + 1}) + "\n"
        for i, line in enumerate(tail)
    ]
    with (folder / "events.jsonl").open("a") as log:
        log.write('{"type": "trade", "run_id": "app01", "seq": "x"}\n')
        log.write("{torn\n")
        log.writelines(shifted)
    trades = get(client, "/api/run/appended/trades")
    assert trades["views"]["count"] == 10 + sum('"trade"' in line for line in shifted)
    assert len(trades["problems"]) == 2
    health = get(client, "/api/run/appended/health")
    assert [p["line"] for p in health["problems"]] == [p["line"] for p in trades["problems"]]


def test_a_file_that_is_not_a_log_answers_with_a_problem(client: TestClient, runs: Path) -> None:
    """An events.jsonl without the schema header: 200, no trades, one problem on line 1."""
    (runs / "notalog").mkdir(exist_ok=True)
    (runs / "notalog" / "events.jsonl").write_text("hello\n")
    data = get(client, "/api/run/notalog/trades")
    assert data["views"]["count"] == 0
    assert [p["line"] for p in data["problems"]] == [1]
