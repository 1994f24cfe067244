"""A real sweep folder's views equal what the test reads itself from its results and logs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from telemetry.stats.sweeps import best_so_far, sweep_view, trials_from_results
from telemetry.sweep.folder import find_sweep
from telemetry.sweep.show import importance

ROOT = Path(__file__).resolve().parents[2]
OBJECTIVE = ROOT / "tests" / "sweep" / "objective.py"
SWEEP = {
    "method": "grid",
    "program": str(OBJECTIVE),
    "metric": {"name": "loss"},
    # (good, 0.3) finishes first at 1/i; the bad ones are far behind it at their 2nd value.
    "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
    "parameters": {
        "x": {"values": [0.3, 1.0]},
        "kind": {"values": ["good", "bad"]},
        "y": {"value": -0.2},
        "steps": {"value": 6},
        "sleep": {"value": 0.1},
    },
}


def run_sweep(where: Path, *args: str) -> Path:
    """``main.py sweep`` of ``SWEEP`` (the cheap objective program) in its own process."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    out = where / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "sweep", "sweep.yaml", "--out", str(out), *args],
        cwd=where,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = (out / "sweeps").iterdir()
    return folder


def shared_sweep(factory: pytest.TempPathFactory) -> Path:
    """The four-trial sweep with stopped trials, run once per test session (the dashboard's
    tests use it too)."""
    where = factory.getbasetemp() / "views-sweep"
    if not (where / "done").is_file():
        shutil.rmtree(where, ignore_errors=True)
        folder = run_sweep(where)
        (where / "done").write_text(str(folder))
    return Path((where / "done").read_text())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = shared_sweep(tmp_path_factory)
    assert "stopped" in {r["outcome"] for r in results(folder)}  # hyperband stopped some
    return folder


def results(folder: Path) -> list[dict[str, Any]]:
    """``results.jsonl`` parsed with plain ``json``."""
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def logged_metric(run_dir: Path) -> list[float]:
    """The trial's ``loss`` values, read from its log with plain ``json``."""
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return [r["values"]["loss"] for r in rows if r["type"] == "metrics"]


def test_the_trials_table_is_every_ended_trial_with_stopped_ones_marked(sweep: Path) -> None:
    """Each row holds the trial's outcome, parameters, duration, and its best and last values
    of the metric as its own log has them; stopped trials say so."""
    view = sweep_view(sweep)
    ended = {r["trial"]: r for r in results(sweep)}
    assert [t["number"] for t in view["trials"]] == sorted(ended)
    for row in view["trials"]:
        record = ended[row["number"]]
        assert row["state"] == record["outcome"]
        assert row["stopped"] == (record["outcome"] == "stopped")
        assert row["params"] == record["params"]
        assert row["duration"] == record["duration"]
        values = logged_metric(Path(row["run_dir"]))
        assert row["best"] == min(values)
        assert row["last"] == values[-1]
        assert row["values"] == len(values)
    stopped = [t for t in view["trials"] if t["stopped"]]
    assert stopped
    assert all(t["values"] < 6 for t in stopped)  # ended before their 6 steps
    assert view["counts"] == {
        s: sum(r["outcome"] == s for r in ended.values()) for s in ("finished", "stopped")
    }


def test_parallel_coordinates_have_the_swept_axes_and_one_line_per_trial(sweep: Path) -> None:
    """Axes: ``kind`` with its listed values, ``x`` over its range, not the constants; a line
    per ended trial with its objective."""
    parallel = sweep_view(sweep)["parallel"]
    axes = {a["name"]: a for a in parallel["axes"]}
    assert axes == {
        "kind": {"name": "kind", "kind": "categorical", "values": ["good", "bad"]},
        "x": {"name": "x", "kind": "numeric", "min": 0.3, "max": 1.0, "log": False},
    }
    expected = {
        r["trial"]: ({"kind": r["params"]["kind"], "x": r["params"]["x"]}, r["best"])
        for r in results(sweep)
    }
    assert {ln["trial"]: (ln["params"], ln["value"]) for ln in parallel["lines"]} == expected
    values = [best for _, best in expected.values()]
    assert (parallel["metric"]["min"], parallel["metric"]["max"]) == (min(values), max(values))


def test_best_so_far_follows_the_end_order_and_the_goal(sweep: Path) -> None:
    """The curve is the running minimum of the objectives in end order (maximum to maximize)."""
    records = results(sweep)
    curve = sweep_view(sweep)["best_so_far"]
    assert curve["trial"] == [r["trial"] for r in records]
    assert curve["value"] == [r["best"] for r in records]
    assert curve["best"] == [min(r["best"] for r in records[: i + 1]) for i in range(len(records))]
    up = best_so_far(trials_from_results(records), maximize=True)
    assert up["best"] == [max(r["best"] for r in records[: i + 1]) for i in range(len(records))]


def test_a_failed_trial_has_no_value_and_keeps_the_best_so_far() -> None:
    """A failed trial's point is empty and the curve stays at the best before it."""
    records = [
        {"trial": 0, "outcome": "finished", "best": 2.0, "params": {}},
        {"trial": 1, "outcome": "failed", "best": None, "params": {}},
        {"trial": 2, "outcome": "stopped", "best": 1.0, "params": {}},
    ]
    curve = best_so_far(trials_from_results(records), maximize=False)
    assert curve["value"] == [2.0, None, 1.0]
    assert curve["best"] == [2.0, 2.0, 1.0]
    assert curve["trial"] == [0, 1, 2]


def test_importance_and_best_config_are_the_sweep_packages(sweep: Path) -> None:
    """Importance equals ``sweep show``'s fANOVA on the folder's engine; the best config is
    the parameters of the trial with the lowest objective."""
    view = sweep_view(sweep)
    with find_sweep(str(sweep), sweep, None).engine() as engine:
        assert view["importance"] == {"values": importance(engine), "note": None}
    assert set(view["importance"]["values"]) == {"kind", "x"}
    best = min(results(sweep), key=lambda r: r["best"])
    assert view["best"]["number"] == best["trial"]
    assert view["best"]["params"] == best["params"]


def test_one_ended_trial_says_importance_needs_two_and_lists_the_waiting(tmp_path: Path) -> None:
    """After ``--count 1`` of four grid points: no importance, a note saying why, and the
    three points not run yet listed as waiting."""
    view = sweep_view(run_sweep(tmp_path, "--count", "1"))
    assert view["importance"] == {
        "values": {},
        "note": "parameter importance needs at least 2 finished trials, 1 so far",
    }
    assert [t["state"] for t in view["trials"]] == ["finished", "waiting", "waiting", "waiting"]


def test_a_malformed_results_line_is_a_problem_not_an_error(sweep: Path, tmp_path: Path) -> None:
    """A torn line in results.jsonl is listed by number; the other trials are all there."""
    copy = tmp_path / "copy"
    shutil.copytree(sweep, copy)
    with (copy / "results.jsonl").open("a") as out:
        out.write('{"trial": 9, "outco\n')
    view = sweep_view(copy)
    line = len(results(sweep)) + 1
    assert view["problems"] == [
        {"file": "results.jsonl", "line": line, "reason": view["problems"][0]["reason"]}
    ]
    assert view["problems"][0]["reason"].startswith("not valid JSON")
    assert len(view["trials"]) == len(results(sweep))
    assert all(Path(t["run_dir"]).is_relative_to(copy) for t in view["trials"])  # the copy's
