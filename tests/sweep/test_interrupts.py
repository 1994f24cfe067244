"""Sweeps under kill -9 and Ctrl-C: real agents and trials, every wait bounded.

An agent killed mid-trial takes its trial with it (the orphan guard), the next
agent marks that trial failed and finishes the other points, and the killed
run's log reads back. Ctrl-C of ``sweep`` exits 130 with its running trials
``interrupted``, and ``sweep resume`` runs each grid point to ``finished``
exactly once, not running again a point that had finished; ``sweep resume``
right after a kill -9 runs the killed point again, and a lock on the journal
held by a killed agent does not hold up the next one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from telemetry.errors import TelemetryError
from telemetry.events import Event, Metrics, RunFinished
from telemetry.reader import LogReader
from telemetry.sweep.folder import create_sweep, find_sweep
from telemetry.sweep.show import TrialRow, rows
from tests.sweep.objective import loss

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "main.py"
OBJECTIVE = ROOT / "tests" / "sweep" / "objective.py"
TINY_ERL = [
    "erl.population_size=3",
    "erl.gradient_steps_per_generation=5",
    "erl.episode_length=30",
    "erl.validation_episodes=1",
]
T = TypeVar("T")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", NO_COLOR="1", OMP_NUM_THREADS="1")
    return env


class Procs:
    """Starts ``main.py`` children (each in its own session) and kills any left at teardown."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.started: list[subprocess.Popen[bytes]] = []

    def main(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """``python main.py ARGS`` in the test's folder, its output in ``NAME.log`` there."""
        with (self.cwd / f"{name}.log").open("ab") as output:
            proc = subprocess.Popen(
                [sys.executable, str(MAIN), *args],
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=_env(),
                start_new_session=True,  # a signal sent to it reaches it alone
            )
        self.started.append(proc)
        return proc

    def output(self, name: str) -> str:
        return (self.cwd / f"{name}.log").read_text(errors="replace")[-3000:]

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    started = Procs(tmp_path)
    try:
        yield started
    finally:
        started.close()


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """``check()``'s first truthy value, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def wait_exit(proc: subprocess.Popen[bytes], timeout: float, procs: Procs, name: str) -> int:
    """The child's exit code, which it must give within ``timeout`` seconds."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        message = f"{name} still running after {timeout} s:\n{procs.output(name)}"
        raise AssertionError(message) from None


def write_sweep(folder: Path, text: str) -> Path:
    path = folder / "grid.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def sweep_folder(out: Path) -> Path | None:
    found = sorted((out / "sweeps").glob("*/sweep.json"))
    return found[0].parent if found else None


def trial_log(sweep: Path, number: int) -> Path | None:
    """The trial's ``events.jsonl``: in its folder (a program) or its run folder (our trainer)."""
    folder = sweep / "trials" / f"{number:04d}"
    if (folder / "events.jsonl").is_file():
        return folder / "events.jsonl"
    return next(iter(sorted(folder.glob("*/events.jsonl"))), None)


def read_events(path: Path) -> tuple[LogReader, list[Event]]:
    reader = LogReader(path)
    return reader, list(reader)


def values_logged(sweep: Path, number: int) -> int:
    """How many metrics events the trial's log holds so far (0 before it has a header)."""
    path = trial_log(sweep, number)
    if path is None:
        return 0
    try:
        _, events = read_events(path)
    except (TelemetryError, OSError):  # the header is not written yet
        return 0
    return sum(isinstance(e, Metrics) for e in events)


def results(sweep: Path) -> list[dict[str, Any]]:
    path = sweep / "results.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trial_rows(sweep: Path) -> list[TrialRow]:
    """Every trial of the sweep with its state, as the storage holds it."""
    return rows(find_sweep(str(sweep), sweep.parent.parent, None).engine())


def key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def ended(pid: int) -> bool:
    """The process is gone (or a zombie no one reaped yet)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def only_child(pid: int) -> int | None:
    children = psutil.Process(pid).children()
    return children[0].pid if len(children) == 1 else None


def finished_once_each(sweep: Path, points: int) -> list[TrialRow]:
    """The sweep's rows, checked: every grid point finished exactly once, nothing left over."""
    all_rows = trial_rows(sweep)
    finished = Counter(key(r.params) for r in all_rows if r.state == "finished")
    assert len(finished) == points, finished
    assert set(finished.values()) == {1}, finished
    assert not [r for r in all_rows if r.state in ("waiting", "running")]
    return all_rows


def stored_values(sweep: Path) -> int:
    """How many metric values of trial 0 the storage holds."""
    engine = find_sweep(str(sweep), sweep.parent.parent, None).engine()
    trials = [t for t in engine.trials() if t.number == 0]
    return len(trials[0].intermediate_values) if trials else 0


def kill_mid_trial(
    procs: Procs, name: str, proc: subprocess.Popen[bytes], sweep: Path, stored: int
) -> int:
    """Once trial 0 has logged a value and ``stored`` values are in the storage, ``kill -9``
    its agent; the trial's pid. (Waiting for the stored value keeps the kill out of the agent's
    journal write: a kill under the journal's lock stalls the next agent 30 s, see below.)"""
    wait_for(lambda: values_logged(sweep, 0), 40, f"trial 0 logs a value\n{procs.output(name)}")
    wait_for(lambda: stored_values(sweep) >= stored, 10, "the agent stores the value")
    child = only_child(proc.pid)
    assert child is not None, "the agent runs exactly one trial process"
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL  # reaped: its pid is dead to the next agent
    return child


def objective_grid(xs: list[float]) -> str:
    """A grid sweep of objective.py over ``xs``: each trial logs 3 values, 0.5 s apart."""
    return f"""\
program: {OBJECTIVE}
method: grid
metric: {{name: loss, goal: minimize}}
parameters:
  x: {{values: {xs}}}
  y: {{value: 0.0}}
  steps: {{value: 3}}
  sleep: {{value: 0.5}}
"""


def test_kill_9_agent_mid_trial_objective(tmp_path: Path, procs: Procs) -> None:
    """A kill -9 agent's trial dies with it, is marked failed, the rest finish, its log reads."""
    grid = write_sweep(tmp_path, objective_grid([0.1, 0.2, 0.3]))
    out = tmp_path / "out"
    first = procs.main("first", "sweep", str(grid), "--agents", "1", "--out", str(out))
    sweep = wait_for(lambda: sweep_folder(out), 20, f"the sweep folder\n{procs.output('first')}")
    child = kill_mid_trial(procs, "first", first, sweep, stored=1)
    wait_for(lambda: ended(child), 10, "the killed agent's trial ends (orphan guard)")

    second = procs.main("second", "agent", str(sweep))
    assert wait_exit(second, 30, procs, "second") == 0, procs.output("second")

    by_number = {row.number: row for row in trial_rows(sweep)}
    assert by_number[0].state == "failed"
    assert by_number[0].params["x"] == 0.1
    finished = Counter(row.params["x"] for row in by_number.values() if row.state == "finished")
    assert finished == Counter({0.2: 1, 0.3: 1})
    assert len(by_number) == 3  # the killed point is not run again by a plain agent
    lines = results(sweep)
    assert sorted((r["trial"], r["outcome"]) for r in lines) == [(1, "finished"), (2, "finished")]

    log = trial_log(sweep, 0)
    assert log is not None
    reader, events = read_events(log)
    assert reader.problems == []
    values = [e.values["loss"] for e in events if isinstance(e, Metrics)]
    assert 1 <= len(values) < 3
    assert values[0] == pytest.approx(loss(0.1, 0.0) + 1.0)


def test_kill_9_then_sweep_resume_reruns_the_killed_point(tmp_path: Path, procs: Procs) -> None:
    """``sweep resume`` after a kill -9 runs the killed trial's grid point again, to finished."""
    grid = write_sweep(tmp_path, objective_grid([0.1, 0.2]))
    out = tmp_path / "out"
    first = procs.main("first", "sweep", str(grid), "--agents", "1", "--out", str(out))
    sweep = wait_for(lambda: sweep_folder(out), 20, f"the sweep folder\n{procs.output('first')}")
    child = kill_mid_trial(procs, "first", first, sweep, stored=1)
    wait_for(lambda: ended(child), 10, "the killed agent's trial ends (orphan guard)")

    resume = procs.main("resume", "sweep", "resume", str(sweep))
    assert wait_exit(resume, 30, procs, "resume") == 0, procs.output("resume")
    finished_once_each(sweep, 2)


ERL_KILL_GRID = """\
method: grid
metric: {name: validation/fitness, goal: maximize}
parameters:
  trainer: {value: erl}
  episodes: {values: [100, 3]}
"""
ERL_KILL_BASE = [*TINY_ERL, "erl.log_frequency=1000"]
"""Validation (the metric) only at a run's end: the agent is not writing the journal when it is
killed mid-run (the ERL trainer logs every 20 ms; see the stale lock test below)."""


def test_kill_9_agent_mid_trial_erl(tmp_path: Path, procs: Procs) -> None:
    """A kill -9 agent's ERL run ends with it, its run log reads back, the sweep goes on."""
    grid = write_sweep(tmp_path, ERL_KILL_GRID)
    out = tmp_path / "out"
    args = ["sweep", str(grid), "--agents", "1", "--out", str(out), *ERL_KILL_BASE]
    first = procs.main("first", *args)
    sweep = wait_for(lambda: sweep_folder(out), 30, f"the sweep folder\n{procs.output('first')}")
    child = kill_mid_trial(procs, "first", first, sweep, stored=0)
    wait_for(lambda: ended(child), 20, "the killed agent's ERL run ends (orphan guard)")

    log = trial_log(sweep, 0)
    assert log is not None
    reader, events = read_events(log)
    assert reader.problems == []
    assert any(isinstance(e, Metrics) for e in events)
    # The orphan guard's SIGTERM comes once per agent thread that dies (PR_SET_PDEATHSIG, the
    # trial being handed from thread to thread): the run ignores the later ones while it closes.
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert [e.status for e in finished] == ["interrupted"]
    assert events[-1] is finished[0]

    second = procs.main("second", "agent", str(sweep))
    assert wait_exit(second, 40, procs, "second") == 0, procs.output("second")
    states = {row.number: (row.state, row.params["episodes"]) for row in trial_rows(sweep)}
    assert states == {0: ("failed", 100), 1: ("finished", 3)}


def _two_running_after_a_finish(sweep: Path) -> list[int] | None:
    lines = results(sweep)
    if not any(r["outcome"] == "finished" for r in lines):
        return None
    done = {r["trial"] for r in lines}
    running = [n for n in range(6) if n not in done and values_logged(sweep, n)]
    return running if len(running) == 2 else None


def test_ctrl_c_sweep_then_resume_objective(tmp_path: Path, procs: Procs) -> None:
    """Ctrl-C exits 130 with the running trials interrupted; resume finishes each point once."""
    grid = write_sweep(tmp_path, objective_grid([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))
    out = tmp_path / "out"
    sweep_proc = procs.main("sweep", "sweep", str(grid), "--agents", "2", "--out", str(out))
    sweep = wait_for(lambda: sweep_folder(out), 20, f"the sweep folder\n{procs.output('sweep')}")
    running = wait_for(
        lambda: _two_running_after_a_finish(sweep),
        30,
        f"two trials running after one finished\n{procs.output('sweep')}",
    )
    before = results(sweep)
    os.kill(sweep_proc.pid, signal.SIGINT)
    assert wait_exit(sweep_proc, 20, procs, "sweep") == 130
    assert "sweep resume" in procs.output("sweep")

    outcomes = {r["trial"]: r["outcome"] for r in results(sweep)}
    assert {n: outcomes.get(n) for n in running} == {n: "interrupted" for n in running}
    finished_before = {key(r["params"]) for r in before if r["outcome"] == "finished"}
    assert finished_before
    states = {row.number: row.state for row in trial_rows(sweep)}
    assert {n: states[n] for n in running} == {n: "interrupted" for n in running}

    resume = procs.main("resume", "sweep", "resume", str(sweep), "--agents", "2")
    assert wait_exit(resume, 40, procs, "resume") == 0, procs.output("resume")
    all_rows = finished_once_each(sweep, 6)
    tried = Counter(key(r.params) for r in all_rows)
    assert all(tried[p] == 1 for p in finished_before), "a finished point was run again"
    after = results(sweep)[len(outcomes) :]
    assert not [r for r in after if key(r["params"]) in finished_before]
    assert sorted(r["outcome"] for r in after) == ["finished"] * (6 - len(finished_before))


ERL_CTRL_C_GRID = """\
method: grid
metric: {name: fitness/max, goal: maximize}
parameters:
  trainer: {value: erl}
  episodes: {value: 60}
  seed: {values: [1, 2]}
"""


def test_ctrl_c_sweep_then_resume_erl(tmp_path: Path, procs: Procs) -> None:
    """Ctrl-C mid ERL runs: exit 130, their logs end ``interrupted``; resume finishes each once."""
    grid = write_sweep(tmp_path, ERL_CTRL_C_GRID)
    out = tmp_path / "out"
    args = ["sweep", str(grid), "--agents", "2", "--out", str(out), *TINY_ERL]
    sweep_proc = procs.main("sweep", *args)
    sweep = wait_for(lambda: sweep_folder(out), 30, f"the sweep folder\n{procs.output('sweep')}")
    wait_for(
        lambda: values_logged(sweep, 0) and values_logged(sweep, 1),
        45,
        f"both ERL runs log a value\n{procs.output('sweep')}",
    )
    os.kill(sweep_proc.pid, signal.SIGINT)
    assert wait_exit(sweep_proc, 30, procs, "sweep") == 130

    lines = results(sweep)
    assert sorted((r["trial"], r["outcome"]) for r in lines) == [
        (0, "interrupted"),
        (1, "interrupted"),
    ]
    for line in lines:
        reader, events = read_events(Path(line["run_dir"]))
        assert reader.problems == []
        assert isinstance(events[-1], RunFinished)
        assert events[-1].status == "interrupted"
    states = {row.number: row.state for row in trial_rows(sweep)}
    assert states[0] == states[1] == "interrupted"

    resume = procs.main("resume", "sweep", "resume", str(sweep), "--agents", "2")
    assert wait_exit(resume, 60, procs, "resume") == 0, procs.output("resume")
    all_rows = finished_once_each(sweep, 2)
    for row in all_rows:
        if row.state == "finished":
            assert row.run_dir is not None
            _, events = read_events(Path(row.run_dir))
            assert isinstance(events[-1], RunFinished)
            assert events[-1].status == "finished"


HOLD_LOCK = """
import sys, time
from telemetry.sweep.engine import FlockLock
FlockLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_journal_lock_of_a_killed_agent_does_not_stall_the_next(
    tmp_path: Path, procs: Procs
) -> None:
    """The journal lock held by an agent killed mid-write holds up the next agent only until
    the kill: the kernel drops it with its holder (Optuna's symlink lock would stay 30 s)."""
    grid = write_sweep(tmp_path, objective_grid([0.1]))
    folder, _ = create_sweep(grid, tmp_path / "out", seed=0, storage=None, overrides=[])
    holder = subprocess.Popen(  # takes the journal's lock as an agent does
        [sys.executable, "-c", HOLD_LOCK, f"{folder.storage}.flock"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    agent = procs.main("agent", "agent", str(folder.path))
    time.sleep(3)  # the agent waits on the lock: no trial has started
    assert agent.poll() is None
    assert not (folder.path / "trials").exists(), procs.output("agent")
    holder.kill()
    holder.wait(10)
    holder.stdout.close()
    assert wait_exit(agent, 12, procs, "agent") == 0, procs.output("agent")
    finished_once_each(folder.path, 1)
