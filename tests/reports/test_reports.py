"""Reports from real logs: markdown with its PNGs, one offline HTML file, refusals in one line."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import empyrical  # type: ignore[import-untyped]  # empyrical ships no stubs
import numpy as np
import pytest

from telemetry.errors import ConfigError
from telemetry.reports.cli import make_report
from telemetry.reports.trade import STATISTICS
from tests.dashboard.conftest import need
from tests.reports.logs import logged_trades, plain_statistics
from tests.stats.test_sweeps import results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIRST, SECOND = "20261201-100000-erl-aaaa1111", "20261201-110000-erl-bbbb2222"


def report(kind: str, runs: Path, out: Path, fmt: str = "md", **given: Any) -> Path:
    options: dict[str, Any] = {"run_id": None, "limit": 5} | given
    return make_report(kind, runs=runs, fmt=fmt, output_dir=out, **options)


def table(text: str, title: str) -> list[list[str]]:
    """The body rows of the markdown table under the bold line ``**title**``."""
    lines = text.splitlines()
    start = lines.index(f"**{title}**") + 4  # title, blank, header, rule
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def number(cell: str) -> float:
    return math.nan if cell == "n/a" else float(cell.replace(",", ""))


def assert_images_exist_and_are_referenced(path: Path) -> list[str]:
    """Every image the markdown names is a PNG beside it, and every PNG of it is named."""
    text = path.read_text()
    named = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert named
    for name in named:
        assert not Path(name).is_absolute()
        data = (path.parent / name).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 5000  # a drawn chart, not an empty canvas
    written = {p.name for p in path.parent.glob(f"{path.stem}-*.png")}
    assert written == set(named)
    return named


def test_trade_report_numbers_equal_the_logs(runs: Path, tmp_path: Path) -> None:
    """The statistics, hours and sides tables equal plain computations from the log."""
    path = report("trade", runs, tmp_path, run_id="aaaa1111")
    assert path == tmp_path / "trade-aaaa1111.md"
    named = assert_images_exist_and_are_referenced(path)
    assert len(named) == 9
    text = path.read_text()
    rows = logged_trades(runs / FIRST)
    pnl = [r["pnl"] for r in rows]
    returns = np.array(pnl) / 50_000.0  # the run's erl.sim.initial_capital
    stats = {row[0]: number(row[1]) for row in table(text, "Statistics")}
    labels = {key: label for key, label, _ in STATISTICS}
    expected = {labels[k]: v for k, v in plain_statistics(rows, 50_000.0).items()}
    expected["Sharpe ratio"] = empyrical.sharpe_ratio(returns, annualization=1)
    expected["Sortino ratio"] = empyrical.sortino_ratio(returns, annualization=1)
    for label, value in expected.items():
        assert stats[label] == pytest.approx(value, rel=1e-5), label
    curve = np.concatenate(([0.0], np.cumsum(pnl)))
    assert stats["Maximum drawdown"] == pytest.approx(
        float(np.max(np.maximum.accumulate(curve) - curve)), rel=1e-5
    )
    for row in table(text, "Long against short"):
        mine = [r["pnl"] for r in rows if r["direction"] == (1 if row[0] == "long" else -1)]
        assert number(row[1]) == len(mine)
        assert number(row[3]) == pytest.approx(math.fsum(mine), rel=1e-5)
    hours = table(text, "By hour of day")
    assert [h[0] for h in hours] == [f"{h:02d}:30" for h in range(9, 16)]
    assert sum(number(h[1]) for h in hours) == len(pnl)


def test_trade_report_defaults_to_the_latest_run_with_trades(runs: Path, tmp_path: Path) -> None:
    """Without --run-id the newest run that has trades is reported (the newest has none)."""
    assert report("trade", runs, tmp_path, fmt="html").name == "trade-aaaa1111.html"
    by_folder = report("trade", runs, tmp_path, fmt="html", run_id=FIRST)
    assert by_folder.name == "trade-aaaa1111.html"


def test_performance_report_compares_the_last_runs(runs: Path, tmp_path: Path) -> None:
    """Curves of the main keys, final and best values from the logs, config differences."""
    path = report("performance", runs, tmp_path, limit=2)
    named = assert_images_exist_and_are_referenced(path)
    assert named == ["performance-curve-fitness-max.png", "performance-curve-train-critic-loss.png"]
    text = path.read_text()
    logs = {run: _series(runs / folder) for run, folder in (("a", FIRST), ("b", SECOND))}
    final = {row[0]: row[1:] for row in table(text, "Final values")}
    best = {row[0]: row[1:] for row in table(text, "Best values")}
    assert set(final) == {"fitness/max", "train/critic_loss"}  # buffer/ is bookkeeping
    for column, run in enumerate(("a", "b")):
        for key, values in logs[run].items():
            if key.startswith("buffer/"):
                continue
            assert number(final[key][column]) == pytest.approx(values[-1], rel=1e-5)
            pick = min if "loss" in key else max
            assert number(best[key][column]) == pytest.approx(pick(values), rel=1e-5)
    differences = {row[0]: row[1:] for row in table(text, "Config differences")}
    assert differences == {"erl.actor_lr": ["0.001", "0.0003"], "seed": ["1", "2"]}
    ending = report("performance", runs, tmp_path / "one", run_id="aaaa1111", limit=1)
    assert [row[1] for row in table(ending.read_text(), "Runs compared")] == ["aaaa1111"]


def _series(run_dir: Path) -> dict[str, list[float]]:
    """Each metric key's values in log order, read with plain ``json``."""
    found: dict[str, list[float]] = {}
    for line in (run_dir / "events.jsonl").read_text().splitlines()[1:]:
        event = json.loads(line)
        if event["type"] == "metrics":
            for key, value in event["values"].items():
                found.setdefault(key, []).append(float(value))
    return found


def test_sweep_report_shows_trials_importance_and_best_config(runs: Path, tmp_path: Path) -> None:
    """Every trial of results.jsonl with its outcome, and the best trial's parameters."""
    sweep_id = json.loads((runs / "sweeps" / "grid" / "sweep.json").read_text())["id"]
    path = report("sweep", runs, tmp_path)
    assert path.name == f"sweep-{sweep_id}.md"
    assert_images_exist_and_are_referenced(path)
    text = path.read_text()
    ended = results(runs / "sweeps" / "grid")
    trials = {int(row[0]): row[1] for row in table(text, "Trials")}
    assert trials == {r["trial"]: r["outcome"] for r in ended}
    assert "stopped" in trials.values()
    done = [r for r in ended if r["outcome"] in ("finished", "stopped")]
    winner = min(done, key=lambda r: r["best"])  # the metric is a loss, minimised
    best = {row[0]: row[1] for row in table(text, "Best config")}
    assert best["x"] == str(winner["params"]["x"])
    assert best["kind"] == winner["params"]["kind"]
    assert f"Trial {winner['trial']} " in text
    assert report("sweep", runs, tmp_path, run_id=sweep_id) == path


def test_html_reports_open_offline_from_disk_and_draw_their_charts(
    runs: Path, tmp_path: Path
) -> None:
    """One file each, no request but itself, every chart a drawn uPlot canvas, no console error,
    the trade report's P&L curve plotting the log's numbers."""
    need("chromium", shutil.which("chromium") is not None, "apt-get install chromium")
    paths = [report(kind, runs, tmp_path, fmt="html") for kind in ("trade", "performance", "sweep")]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    done = subprocess.run(
        [sys.executable, "-m", "tests.reports.browse", *map(str, paths)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    pages = json.loads(done.stdout)
    for path in paths:
        seen = pages[str(path)]
        assert seen["errors"] == []
        assert seen["requested"] == [path.as_uri()]
        sections = seen["data"]["sections"]
        expected = [i["id"] for s in sections for i in s["items"] if i["type"] == "chart"]
        assert expected
        assert seen["charts"] == expected
        assert len(seen["ink"]) == len(expected)
        assert all(n > 500 for n in seen["ink"]), seen["ink"]
    trade = pages[str(paths[0])]
    pnl = [r["pnl"] for r in logged_trades(runs / FIRST)]
    curve = np.concatenate(([0.0], np.cumsum(pnl))).tolist()
    assert trade["plotted"]["cumulative-pnl"][1] == pytest.approx(curve)
    assert trade["tables"]["table-statistics"] == 1 + len(STATISTICS)


@pytest.mark.parametrize(
    ("kind", "given", "message"),
    [
        ("cost", {}, "--type must be one of performance, trade, sweep, got 'cost'"),
        ("trade", {"fmt": "pdf"}, "--format must be one of md, html, got 'pdf'"),
        ("performance", {"limit": 0}, "--limit must be a whole number of runs, at least 1, got 0"),
        ("trade", {"run_id": "nope"}, "--run-id: no run 'nope' under the runs folder"),
        ("trade", {"run_id": "bbbb2222"}, "--run-id: run 'bbbb2222' has no trade events"),
        ("sweep", {"run_id": "nope"}, "--run-id: no sweep 'nope' under"),
    ],
)
def test_bad_input_is_one_line_naming_it(
    runs: Path, tmp_path: Path, kind: str, given: dict[str, Any], message: str
) -> None:
    """Each refusal names the value and what is allowed, in one line."""
    with pytest.raises(ConfigError) as caught:
        report(kind, runs, tmp_path, **given)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("performance", "--runs: no run under"),
        ("trade", "--runs: no run under"),
        ("sweep", "--runs: no sweep under"),
    ],
)
def test_an_empty_runs_folder_is_refused(tmp_path: Path, kind: str, message: str) -> None:
    """A folder with no run (or no sweep) says so, naming it."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=f"^{re.escape(message)} {re.escape(str(empty))}"):
        report(kind, empty, tmp_path / "out")
    with pytest.raises(ConfigError, match="is not a folder"):
        report(kind, tmp_path / "missing", tmp_path / "out")


def test_an_output_folder_that_cannot_be_written_is_refused(runs: Path, tmp_path: Path) -> None:
    """--output-dir naming a file says so in one line."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    refused = r"^--output-dir: cannot write .*: a part of its path is a file, not a folder$"
    with pytest.raises(ConfigError, match=refused):
        report("trade", runs, blocker / "out", fmt="html")
