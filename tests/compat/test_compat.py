"""``import telemetry as wandb``: scripts written for wandb run unchanged on the pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from telemetry.reader import LogReader
from tests.compat import scripts
from tests.fakes.wandb_file import history, run_file

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "TELEMETRY_"))}
    env.update(PYTHONPATH=str(ROOT), WANDB_MODE="offline", WANDB_DIR=str(tmp_path / "wandb"))
    env.update(WANDB_SILENT="true", TELEMETRY_SINKS="jsonl", TELEMETRY_OUT=str(tmp_path / "runs"))
    env.update(more)
    return env


def _run(tmp_path: Path, text: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "script.py"
    script.write_text(text)
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _events(tmp_path: Path) -> list[Any]:
    (folder,) = sorted((tmp_path / "runs").iterdir())
    return list(LogReader(folder))


def _ours(events: list[Any]) -> dict[tuple[str, int], dict[str, Any]]:
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for event in events:
        if event.type == "metrics" and event.axis not in ("health", "system"):
            rows.setdefault((event.axis, event.step), {}).update(event.values)
    return rows


def _compare(tmp_path: Path, text: str, step_metrics: dict[str, str]) -> list[Any]:
    ours = _run(tmp_path / "ours", text, "telemetry", str(tmp_path / "ours.txt"))
    theirs = _run(tmp_path / "theirs", text, "wandb", str(tmp_path / "theirs.txt"))
    assert ours.returncode == 0, ours.stderr
    assert theirs.returncode == 0, theirs.stderr
    rows = _ours(_events(tmp_path / "ours"))
    wandb_rows = history(run_file(tmp_path / "theirs" / "wandb"))
    assert wandb_rows
    for row in wandb_rows:
        for key, value in row.items():
            if key.startswith("_"):
                continue
            axis = next((a for p, a in step_metrics.items() if key.startswith(p)), None)
            where = (axis, row[axis]) if axis else ("step", row["_step"])
            assert rows[where][key] == value, (key, where)
    return _events(tmp_path / "ours")


@pytest.mark.parametrize(
    "text",
    [scripts.SEEDS, scripts.LIVE_TRADING, scripts.GAELP_TRACKER],
    ids=["erl-seed", "live-trading", "gaelp-tracker"],
)
def test_seed_script_matches_wandb_history(tmp_path: Path, text: str) -> None:
    """The seeds' wandb calls (ERL trainer, live trading, GAELP's tracker), run as written,
    give the same values at the same steps as real wandb."""
    _compare(tmp_path, text, {})


def test_full_script_matches_wandb_and_reads_back(tmp_path: Path) -> None:
    """commit=False, explicit steps, a step metric, config, summary and an artifact match wandb."""
    events = _compare(tmp_path, scripts.FULL, {"val/": "epoch"})
    ours = eval((tmp_path / "ours.txt").read_text())
    assert ours == eval((tmp_path / "theirs.txt").read_text())
    kinds = [e.type for e in events]
    assert "artifact" in kinds
    assert "alert" in kinds
    assert kinds[-1] == "run_finished"
    assert any(e.type == "hyperparameters" and e.values == {"batch": 32} for e in events)


def test_lower_step_is_kept_and_warned_once(tmp_path: Path) -> None:
    """A step below the current one stays on its own event, with one warning."""
    text = (
        "import telemetry as wandb\nwandb.init()\nwandb.log({'a': 1}, step=5)\n"
        "wandb.log({'b': 2}, step=9, commit=True)\nwandb.log({'c': 3}, step=2)\n"
        "wandb.log({'d': 4}, step=1)\nwandb.finish()\n"
    )
    done = _run(tmp_path, text)
    assert done.returncode == 0, done.stderr
    rows = _ours(_events(tmp_path))
    assert rows[("step", 2)] == {"c": 3}
    assert rows[("step", 1)] == {"d": 4}
    assert (done.stdout + done.stderr).count("step_went_back") == 1


def test_unsupported_api_raises_naming_it(tmp_path: Path) -> None:
    """wandb.watch, wandb.Table and run.use_artifact raise errors that name them."""
    text = (
        "import telemetry as wandb\nrun = wandb.init()\n"
        "for get in (lambda: wandb.watch, lambda: wandb.Table, lambda: run.use_artifact):\n"
        "    try:\n        get()\n    except AttributeError as exc:\n        print(exc)\n"
        "wandb.finish()\n"
    )
    done = _run(tmp_path, text)
    assert done.returncode == 0, done.stderr
    for name in ("telemetry.watch", "telemetry.Table", "run.use_artifact"):
        assert f"{name} is not supported" in done.stdout


def test_exit_without_finish_closes_the_run(tmp_path: Path) -> None:
    """A script that never calls finish still ends its log with run_finished."""
    done = _run(tmp_path, "import telemetry as wandb\nwandb.init()\nwandb.log({'x': 1})\n")
    assert done.returncode == 0, done.stderr
    events = _events(tmp_path)
    assert events[-1].type == "run_finished"
    assert events[-1].status == "finished"


def test_finish_keeps_its_deadline_with_a_hung_sink(tmp_path: Path) -> None:
    """finish returns within close_timeout and a grace while a sink never returns."""
    text = (
        "import sys, time; sys.path.insert(0, 'ROOT/tests')\n"
        "from conftest import StuckSink\n"
        "from sinks.registry import SinkSpec, register_sink\nfrom telemetry.sink import Delivery\n"
        "register_sink('stuck', SinkSpec(options=Delivery, build=lambda c, o: StuckSink()))\n"
        "import telemetry as wandb\n"
        "wandb.init(settings={'sinks': ['jsonl', 'stuck'], 'close_timeout': 1.0})\n"
        "wandb.log({'x': 1})\nstarted = time.monotonic()\nwandb.finish()\n"
        "print('took', time.monotonic() - started)\n"
    ).replace("ROOT", str(ROOT))
    started = time.monotonic()
    done = _run(tmp_path, text)
    assert done.returncode == 0, done.stderr
    took = float(done.stdout.split("took")[1])
    assert took < 3.5
    assert time.monotonic() - started < 60


def test_resume_continues_seq_and_step(tmp_path: Path) -> None:
    """resume='allow' with an id continues that run's folder, seq and step."""
    text = (
        "import telemetry as wandb\nwandb.init(id='abc123', resume='allow')\n"
        "wandb.log({'x': 1})\nwandb.finish()\n"
    )
    assert _run(tmp_path, text).returncode == 0
    assert _run(tmp_path, text).returncode == 0
    events = _events(tmp_path)
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))
    assert [e.step for e in events if e.type == "metrics" and e.axis == "step"] == [0, 1]


def test_sweep_trial_takes_params_and_reports_metric(tmp_path: Path) -> None:
    """A sweep whose program uses import telemetry as wandb gets its params and its metric."""
    program = tmp_path / "train.py"
    program.write_text(
        "import telemetry as wandb\nrun = wandb.init(config={'x': 5.0})\n"
        "assert run.group and run.job_type == 'sweep'\n"
        "for i in range(3):\n    wandb.log({'loss': (wandb.config.x - 0.3) ** 2 + 1 / (i + 1)})\n"
        "wandb.finish()\n"
    )
    (tmp_path / "sweep.yaml").write_text(
        "program: train.py\nmethod: grid\nmetric: {name: loss, goal: minimize}\n"
        "parameters:\n  x: {values: [0.1, 0.3]}\n"
    )
    env = _env(tmp_path)
    del env["TELEMETRY_OUT"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "sweep", "sweep.yaml", "--out", "out"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    (results,) = (tmp_path / "out" / "sweeps").glob("*/results.jsonl")
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["params"]["x"] for r in lines) == [0.1, 0.3]
    assert all(r["outcome"] == "finished" for r in lines)
    assert min(r["best"] for r in lines) == pytest.approx(1 / 3)


EXTRAS = """
import logging, time
import telemetry as wandb

wandb.init(project="p", settings={"system_interval": 0.2, "log_records": "info", "alerts": {
    "rules": [{"key": "loss", "when": "above", "threshold": 5.0}]}})
logging.getLogger("mine").info("epoch %d", 1, extra={"batch": 3})
logging.getLogger("mine").debug("not captured")
for value in [1.0, 2.0, 9.0, 3.0]:
    wandb.log({"loss": value})
    time.sleep(0.2)
wandb.finish()
"""


def test_system_metrics_log_records_and_alert_rules_reach_the_run(tmp_path: Path) -> None:
    """Settings turn on system metrics, the script's logging records and alert rules."""
    done = _run(tmp_path, EXTRAS)
    assert done.returncode == 0, done.stderr
    events = _events(tmp_path)
    system = [e for e in events if e.type == "metrics" and e.axis == "system"]
    assert len(system) >= 2
    assert 10 < system[0].values["system/process_memory_mib"] < 24_000
    records = [e for e in events if e.type == "log_record"]
    assert [(r.logger, r.level, r.message, r.fields) for r in records] == [
        ("mine", "info", "epoch 1", {"batch": 3})
    ]
    alerts = [e for e in events if e.type == "alert"]
    assert [(a.key, a.step) for a in alerts] == [("loss", 2)]
