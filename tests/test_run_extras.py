"""What ``train`` adds around a trainer: alert rules that stop it, callbacks, system metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from telemetry.events import Alert, Metrics, RunFinished
from telemetry.reader import LogReader

ROOT = Path(__file__).resolve().parents[1]
TINY_ERL = [
    "trainer=erl",
    "erl.population_size=3",
    "erl.gradient_steps_per_generation=5",
    "erl.episode_length=30",
    "erl.validation_episodes=1",
    "sinks=[jsonl]",
]
CALLBACK = """
from agents.callbacks import Callback

class Seen(Callback):
    def on_step(self, state, ctx):
        ctx.log({"custom/seen": float(state.step)})
"""


def train(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "runs"
    tmp_path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "train", f"out={out}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"},
    )
    folders = sorted(out.glob("*")) if out.exists() else []
    return done, (folders[0] if folders else out)


def test_an_alert_rule_with_action_stop_ends_the_run_stopped(tmp_path: Path) -> None:
    """A rule that fires at the first generation stops the run cleanly: exit 0, log ``stopped``."""
    config = tmp_path / "alerts.yaml"
    rule = "{key: fitness/max, when: above, threshold: -1.0e9, action: stop}"
    config.write_text(f"alerts:\n  rules:\n    - {rule}\n")
    done, run_dir = train(tmp_path, "--config", str(config), "episodes=20", *TINY_ERL)
    assert done.returncode == 0, done.stderr[-2000:]
    events = list(LogReader(run_dir))
    alerts = [e for e in events if isinstance(e, Alert)]
    assert [(a.key, a.step) for a in alerts] == [("fitness/max", 0)]
    assert isinstance(events[-1], RunFinished)
    assert events[-1].status == "stopped"
    generations = [e.step for e in events if isinstance(e, Metrics) and e.axis == "generation"]
    assert max(generations) < 19  # stopped long before the 20 generations asked


def test_callbacks_from_config_see_every_step_and_a_bad_one_exits_2(tmp_path: Path) -> None:
    """``callbacks=[module:Class]`` publishes from every step; an unknown one exits 2, no run."""
    (tmp_path / "mycallbacks.py").write_text(CALLBACK)
    done, run_dir = train(tmp_path, "callbacks=[mycallbacks:Seen]", "episodes=4", *TINY_ERL)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = [
        e.step for e in LogReader(run_dir) if isinstance(e, Metrics) and "custom/seen" in e.values
    ]
    assert seen == [0, 1, 2, 3]
    done, _ = train(tmp_path / "bad", "callbacks=[nowhere:Nothing]", *TINY_ERL)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: callbacks: cannot load")
    assert not (tmp_path / "bad" / "runs").exists()


def test_system_metrics_come_at_their_interval(tmp_path: Path) -> None:
    """``system_interval=0.2`` publishes system/ metrics on axis system while the run trains."""
    slower = [*TINY_ERL, "erl.gradient_steps_per_generation=60"]  # about 2 s of training
    done, run_dir = train(tmp_path, "system_interval=0.2", "episodes=12", *slower)
    assert done.returncode == 0, done.stderr[-2000:]
    samples = [e for e in LogReader(run_dir) if isinstance(e, Metrics) and e.axis == "system"]
    assert len(samples) >= 2
    assert [e.step for e in samples] == list(range(len(samples)))
    assert 10 < samples[-1].values["system/process_memory_mib"] < 24_000
