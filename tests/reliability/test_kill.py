"""kill -9 at random moments: the log reads back, replays, and the run resumes where it stopped."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from telemetry.events import Metrics, RunFinished, RunStarted
from tests.reliability.common import ROOT, assert_no_gap, cli_env, json_lines, read_log

PARALLEL = 3
SEED = 20_261_122
PPO = ["trainer=ppo", "episodes=400", "ppo.save_freq=3"]
ERL = [
    "trainer=erl",
    "episodes=400",
    "erl.population_size=4",
    "erl.episode_length=50",
    "erl.gradient_steps_per_generation=20",
    "erl.validation_episodes=1",
    "erl.checkpoint_frequency=2",
]
AXIS = {"ppo": "episode", "erl": "generation"}
_PPO_CHECKPOINT = re.compile(r"^episode_(\d+)\.pt$")


@dataclass
class Outcome:
    """What one killed run left, and what replay and resume made of it."""

    index: int
    trainer: str
    killed: bool
    events: int
    torn: bool
    resumed_events: int
    steps_skipped: int


def _env() -> dict[str, str]:
    env = cli_env()
    env["OMP_NUM_THREADS"] = "1"  # two cores shared: one thread per run
    return env


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=_env(),
    )


def _wait_for(out: Path, process: subprocess.Popen[bytes], marker: bytes) -> Path:
    """The run's log, once it holds ``marker`` (the header's newline, or a metrics line)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for log in out.glob("*/events.jsonl"):
            if marker in log.read_bytes():
                return log
        assert process.poll() is None, "the run ended before the kill"
        time.sleep(0.01)
    raise AssertionError(f"no {marker!r} in a log under {out} within 60 s")


def _resume_step(run: Path, trainer: str) -> int:
    """Where the trainer will continue: its latest checkpoint, else the start."""
    checkpoints = run / "checkpoints"
    if trainer == "ppo":
        found = [
            int(m.group(1))
            for p in checkpoints.glob("*.pt")
            if (m := _PPO_CHECKPOINT.match(p.name))
        ]
        return max(found, default=0)
    resume = checkpoints / "erl-resume.pt"
    if not resume.exists():
        return 0
    import torch

    return int(torch.load(resume, weights_only=False)["generation"])


def _one(index: int, delay: float, trainer: str, anchor: bytes, tmp_path: Path) -> Outcome:
    out = tmp_path / f"run{index:02d}"
    args = PPO if trainer == "ppo" else ERL
    with (tmp_path / f"run{index:02d}.stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "train", *args, "sinks=[jsonl]", f"out={out}"],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            log = _wait_for(out, process, anchor)
            time.sleep(delay)
            killed = process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    run = log.parent
    if index % 4 == 3 and log.read_bytes().endswith(b"\n"):
        # A kill inside os.write is rare at these sizes: every fourth run gets the torn
        # tail such a kill leaves, so replay's message and resume's cut are checked too.
        with log.open("ab") as handle:
            handle.write(b'{"type":"metrics","run_id":"torn","seq":')

    # 1. The log reads back: at most a torn last line, no gap in seq.
    reader, events = read_log(log)
    assert len(reader.problems) <= 1, reader.problems
    if reader.problems:
        assert reader.torn_tail
        assert reader.problems[0].line == reader.lines_read
    assert_no_gap(events)
    run_id = reader.header["run_id"]
    assert {e.run_id for e in events} <= {run_id}

    # 2. replay delivers every whole line; status 1 only for the torn line, which it names.
    replayed = _cli("replay", str(run), "sinks=[memory]")
    records = json_lines(replayed.stderr)
    skipped = [r for r in records if r.get("event") == "replay_skipped_line"]
    done = next(r for r in records if r.get("event") == "replay_done")
    assert done["events"] == len(events)
    if reader.torn_tail:
        assert replayed.returncode == 1, replayed.stderr
        assert [r["line"] for r in skipped] == [reader.lines_read]
        assert "torn last line" in skipped[0]["reason"]
    else:
        assert replayed.returncode == 0, replayed.stderr
        assert skipped == []

    # 3. resume continues the run: same run id, seq on from the log's last, steps on.
    expected_step = _resume_step(run, trainer)
    resumed = _cli("train", f"resume={run}", "episodes=5")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    reader2, after = read_log(log)
    assert reader2.problems == []  # reopening cut the torn line
    assert reader2.header["run_id"] == run_id
    assert_no_gap(after)
    assert after[: len(events)] == events
    assert {e.run_id for e in after} == {run_id}
    tail = after[len(events) :]
    assert isinstance(tail[0], RunStarted)
    assert tail[0].resumed == bool(events)
    assert isinstance(tail[-1], RunFinished)
    assert tail[-1].status == "finished"
    steps = [e.step for e in tail if isinstance(e, Metrics) and e.axis == AXIS[trainer]]
    assert steps == list(range(expected_step, expected_step + 5))
    last_before = max(
        (e.step for e in events if isinstance(e, Metrics) and e.axis == AXIS[trainer]), default=-1
    )
    # The trainer continues from its checkpoint; its steps may repeat logged ones (a step
    # going back is kept as is). Trainers flush the log before each checkpoint, so the
    # resumed steps never skip ahead (test_a_checkpoint_never_outruns_the_log); counted here.
    steps_skipped = max(0, expected_step - (last_before + 1))
    assert orjson.loads(log.read_bytes().splitlines()[1])["seq"] == 1
    return Outcome(index, trainer, killed, len(events), reader.torn_tail, len(tail), steps_skipped)


@pytest.mark.parametrize(
    "runs",
    [pytest.param(7, id="7"), pytest.param(40, id="40", marks=pytest.mark.long)],
)
def test_runs_killed_at_random_moments_read_back_replay_and_resume(
    tmp_path: Path, runs: int
) -> None:
    """CLI runs SIGKILLed at random moments: whole logs, clean replays, resumes that continue.

    Seven in ``make test`` (every kind below comes up in them: run 0 is killed soon after
    the header, run 3 gets a torn tail, run 4 is ERL), forty in ``make test-long``.
    """
    rng = random.Random(SEED)
    # Most kills land a random moment after training began; every seventh one a random
    # moment after the log's header, which is mostly while the trainer is still being built.
    plan = [
        (
            i,
            rng.uniform(0.0, 1.5),
            "erl" if i % 5 == 4 else "ppo",
            b"\n" if i % 7 == 0 else b'"type":"metrics"',
        )
        for i in range(runs)
    ]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        outcomes = list(pool.map(lambda p: _one(*p, tmp_path), plan))
    took = time.monotonic() - started
    killed = sum(o.killed for o in outcomes)
    recovered = sum(o.events for o in outcomes)
    torn = sum(o.torn for o in outcomes)
    print(
        f"\n[kill-9] {killed} of {runs} runs killed mid-run "
        f"({sum(o.trainer == 'erl' for o in outcomes)} erl), {recovered} events recovered "
        f"(per run {min(o.events for o in outcomes)}-{max(o.events for o in outcomes)}), "
        f"{torn} torn last lines ({sum(o.index % 4 == 3 for o in outcomes)} made by the test), "
        f"{sum(o.resumed_events for o in outcomes)} events appended by resumes, "
        f"{sum(bool(o.steps_skipped) for o in outcomes)} resumes skipped "
        f"{sum(o.steps_skipped for o in outcomes)} unlogged steps (checkpoint before log), "
        f"{took:.0f} s"
    )
    assert killed == runs
    assert recovered > 0
    assert not any(o.steps_skipped for o in outcomes)
    assert torn >= runs // 4


def test_a_checkpoint_never_outruns_the_log(tmp_path: Path) -> None:
    """Killed just after a checkpoint, a resumed run's log still holds every step once."""
    out = tmp_path / "runs"
    args = ["trainer=ppo", "episodes=400", "ppo.save_freq=3", "sinks=[jsonl]"]
    # Events wait up to 5 s for their batch: the checkpoint is on disk long before they are.
    with (tmp_path / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "main.py"),
                "train",
                *args,
                "jsonl.max_latency=5",
                f"out={out}",
            ],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 60
            while not list(out.glob("*/checkpoints/episode_000003.pt")):
                assert time.monotonic() < deadline
                assert process.poll() is None
                time.sleep(0.002)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    resumed = _cli("train", f"resume={run}", "episodes=3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _, events = read_log(run)
    assert_no_gap(events)
    steps = sorted({e.step for e in events if isinstance(e, Metrics) and e.axis == "episode"})
    assert steps == list(range(len(steps)))  # trainers flush the log before each checkpoint
