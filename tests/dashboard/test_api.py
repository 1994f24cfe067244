"""The dashboard's HTTP API over real run folders written by the bus and its JSON Lines sink."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from telemetry.dashboard.app import build_app
from telemetry.dashboard.cli import access_token, serve
from telemetry.events import Metrics
from telemetry.reader import LogReader
from tests.dashboard.conftest import LiveRun, loss, record_run, reward, write_big_log


@pytest.fixture
async def runs(tmp_path: Path) -> Path:
    """A runs folder holding two finished runs of 50 steps."""
    await record_run(tmp_path / "runs" / "run-a", "aaaa", steps=50, config={"lr": 0.001})
    await record_run(tmp_path / "runs" / "run-b", "bbbb", steps=30, config={"lr": 0.01})
    return tmp_path / "runs"


@pytest.fixture
def client(runs: Path) -> Iterator[TestClient]:
    with TestClient(build_app(runs)) as test_client:
        yield test_client


def read_whole(client: TestClient, run_id: str) -> None:
    """Wait (bounded) until the server has read the run's whole log."""
    deadline = time.monotonic() + 60
    while (read := client.get(f"/api/run/{run_id}").json()["read"])["offset"] < read["size"]:
        assert time.monotonic() < deadline, "the server did not read the log within 60 s"
        time.sleep(0.05)


def log_points(folder: Path, key: str) -> tuple[list[float], list[float]]:
    """``(steps, values)`` of a metric key, read back with the log's own reader."""
    steps, values = [], []
    for event in LogReader(folder):
        if isinstance(event, Metrics) and key in event.values:
            steps.append(float(event.step))
            values.append(float(event.values[key]))
    return steps, values


def test_runs_listing_has_every_run_with_its_summary(client: TestClient) -> None:
    """/api/runs lists both runs with name, trainer, status and last/best/count per key."""
    listing = client.get("/api/runs").json()
    rows = {row["id"]: row for row in listing["runs"]}
    assert set(rows) == {"run-a", "run-b"}
    a = rows["run-a"]
    assert (a["name"], a["trainer"], a["status"], a["problems"]) == ("aaaa", "ppo", "finished", 0)
    assert a["metrics"]["episode/reward"]["count"] == 50
    assert a["metrics"]["episode/reward"]["last"] == reward(49)
    assert a["metrics"]["episode/reward"]["best"] == max(reward(s) for s in range(50))
    assert a["metrics"]["losses/loss"]["best"] == loss(49)  # lower is better for a loss
    assert a["duration"] is not None
    assert a["duration"] >= 0


def test_run_details_have_config_keys_and_artifacts(client: TestClient) -> None:
    """/api/run/ID gives the config, the keys by namespace, artifacts and the log offset."""
    details = client.get("/api/run/run-a").json()
    assert details["config"]["lr"] == 0.001
    assert details["keys"] == {"episode": ["episode/reward"], "losses": ["losses/loss"]}
    assert details["artifacts"][0]["name"] == "checkpoint"
    assert details["hyperparameters"]["lr"] == 0.001
    assert (
        details["offset"] == (client.app.state.index.root / "run-a" / "events.jsonl").stat().st_size
    )  # type: ignore[attr-defined]


def test_series_equal_the_log(client: TestClient, runs: Path) -> None:
    """A short run's series are its logged points exactly, with evaluations and aggregates."""
    answer = client.get("/api/run/run-a/series?keys=episode/reward,losses/loss&width=500").json()
    for key in ("episode/reward", "losses/loss"):
        steps, values = log_points(runs / "run-a", key)
        series = answer["series"][key]
        assert (series["x"], series["y"], series["downsampled"]) == (steps, values, False)
    reward_series = answer["series"]["episode/reward"]
    assert reward_series["evaluations"]["x"] == [float(s) for s in range(9, 50, 10)]
    assert reward_series["evaluations"]["y"] == [reward(s) + 0.5 for s in range(9, 50, 10)]
    band = reward_series["aggregates"]
    assert band["x"] == [float(s) for s in range(9, 50, 10)]
    assert band["mean"][0] == pytest.approx(sum(reward(s) for s in range(10)) / 10)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with one 50,000-step run."""
    root = tmp_path_factory.mktemp("big")
    write_big_log(root / "big", 50_000)
    return root


def test_downsampling_is_bounded_and_keeps_min_and_max(big: Path) -> None:
    """50,000 points to a 100-pixel chart: at most 100 points, the extremes and ends kept."""
    steps, values = log_points(big / "big", "episode/reward")
    with TestClient(build_app(big)) as client:
        read_whole(client, "big")
        series = client.get("/api/run/big/series?keys=episode/reward&width=100").json()
    line = series["series"]["episode/reward"]
    assert line["downsampled"]
    assert line["total"] == 50_000
    assert 50 <= len(line["x"]) <= 100
    assert min(values) in line["y"]
    assert max(values) in line["y"]
    assert (line["x"][0], line["x"][-1]) == (steps[0], steps[-1])
    assert all(values[int(x)] == y for x, y in zip(line["x"], line["y"], strict=True))


def test_a_large_unread_log_answers_at_once_with_how_far_it_read(big: Path) -> None:
    """The first look at a large log does not wait for it to be read: it says how far
    the server got, and the count reaches the whole log soon after."""
    with TestClient(build_app(big)) as client:
        asked = time.monotonic()
        first = client.get("/api/run/big").json()
        waited = time.monotonic() - asked
        read_whole(client, "big")
        done = client.get("/api/run/big").json()
    assert waited < 2.0
    assert (
        first["read"]["offset"] < first["read"]["size"] == (big / "big/events.jsonl").stat().st_size
    )
    assert done["summary"]["metrics"]["episode/reward"]["count"] == 50_000


def test_zoom_gives_full_resolution(big: Path) -> None:
    """A zoomed range holds every logged point in it (plus one either side)."""
    steps, values = log_points(big / "big", "episode/reward")
    with TestClient(build_app(big)) as client:
        read_whole(client, "big")
        answer = client.get("/api/run/big/series?keys=episode/reward&width=100&start=5000&end=5199")
    line = answer.json()["series"]["episode/reward"]
    assert not line["downsampled"]
    assert line["x"] == steps[4999:5201]
    assert line["y"] == values[4999:5201]


def test_malformed_line_is_a_problem_of_that_run(client: TestClient, runs: Path) -> None:
    """A garbage line shows as a problem with its line number; the rest still reads."""
    log = runs / "run-b" / "events.jsonl"
    lines = log.read_bytes().count(b"\n")
    with log.open("ab") as handle:
        handle.write(b'{"type": "metrics", "seq": "x"\n')
    details = client.get("/api/run/run-b")
    assert details.status_code == 200
    [problem] = details.json()["problems"]
    assert problem["line"] == lines + 1
    assert "JSON" in problem["reason"]
    rows = {row["id"]: row for row in client.get("/api/runs").json()["runs"]}
    assert rows["run-b"]["problems"] == 1
    series = client.get("/api/run/run-b/series?keys=episode/reward").json()
    assert len(series["series"]["episode/reward"]["x"]) == 30


@pytest.mark.parametrize(
    "path",
    [
        "/api/run/../../etc/passwd",
        "/api/run/%2e%2e/%2e%2e/etc",
        "/api/run/..%2f..%2fetc",
        "/api/run//etc",
        "/api/run/%2Fetc/series?keys=a",
        "/api/run/outside",
        "/api/run/outside/series?keys=episode/reward",
        "/api/run/linked",
        "/api/run/linked/events?after=0",
        "/api/compare?ids=run-a,..%2Frun-a",
        "/static/%2e%2e/app.py",
        "/static/..%2f..%2fpaths.py",
        "/static//etc/passwd",
    ],
)
def test_paths_outside_the_runs_folder_are_refused(
    client: TestClient, runs: Path, tmp_path: Path, path: str
) -> None:
    """``..``, encoded ``..``, absolute paths and a symlink out of DIR get 403, nothing read."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    (elsewhere / "events.jsonl").write_bytes((runs / "run-a" / "events.jsonl").read_bytes())
    (runs / "outside").symlink_to(elsewhere, target_is_directory=True)
    (runs / "linked").mkdir()
    (runs / "linked" / "events.jsonl").symlink_to(elsewhere / "events.jsonl")
    response = client.get(path)
    assert response.status_code in (403, 404), response.text
    if response.status_code == 404:  # the URL client normalised the dots away before sending
        assert "/../" in path
    else:
        assert "error" in response.json()
    listed = {row["id"] for row in client.get("/api/runs").json()["runs"]}
    assert listed == {"run-a", "run-b"}


def test_bad_query_values_are_one_line_errors(client: TestClient) -> None:
    """A bad width, x or offset is a 400 naming the parameter, never a 500."""
    for query, name in [("width=abc", "width"), ("width=5", "width"), ("x=epoch", "x")]:
        answer = client.get(f"/api/run/run-a/series?keys=episode/reward&{query}")
        assert answer.status_code == 400
        assert name in answer.json()["error"]
    assert client.get("/api/run/run-a/events?after=-1").status_code == 400
    assert client.get("/api/run/nope").status_code == 404


def test_token_is_required_when_set(runs: Path) -> None:
    """With a token, every request but /static needs it; with it, the API answers."""
    with TestClient(build_app(runs, token="s3cret")) as client:
        assert client.get("/api/runs").status_code == 403
        assert client.get("/").status_code == 403
        assert client.get("/api/runs?token=wrong").status_code == 403
        assert client.get("/static/app.js").status_code == 200
        assert client.get("/api/runs?token=s3cret").status_code == 200
        assert (
            client.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        )


def test_a_non_loopback_host_gets_a_token() -> None:
    """Serving beyond loopback without a token makes one; loopback needs none."""
    assert access_token("127.0.0.1", None) is None
    assert access_token("localhost", None) is None
    assert access_token("::1", None) is None
    made = access_token("0.0.0.0", None)
    assert made is not None
    assert len(made) >= 20
    assert made != access_token("0.0.0.0", None)
    assert access_token("10.0.0.5", "given") == "given"


def test_a_missing_runs_folder_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """serve() on a folder that does not exist prints one line and returns 2."""
    assert serve(tmp_path / "nope") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nope" in err


def test_live_events_arrive_within_a_second(tmp_path: Path, serve: Callable[..., str]) -> None:
    """The SSE stream pushes a step published on a live bus within one second."""
    runs = tmp_path / "runs"
    with LiveRun(runs / "live", "live") as run:
        run.log({"episode/reward": 1.0}, step=0)
        run.bus.flush_from_thread()
        base = serve(runs)
        offset = httpx.get(f"{base}/api/run/live").json()["offset"]
        with httpx.stream(
            "GET", f"{base}/api/run/live/events?after={offset}", timeout=5
        ) as response:
            lines = response.iter_lines()
            first = json.loads(next(line for line in lines if line.startswith("data:"))[5:])
            assert first["offset"] == offset
            assert first["events"] == []
            published = time.monotonic()
            run.log({"episode/reward": 2.5}, step=1)
            message = json.loads(next(line for line in lines if line.startswith("data:"))[5:])
            latency = time.monotonic() - published
    assert [(e["step"], e["values"]) for e in message["events"]] == [(1, {"episode/reward": 2.5})]
    assert latency < 1.0
