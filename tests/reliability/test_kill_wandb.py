"""kill -9 with wandb online, then resume: the wandb run's history holds both processes' rows.

Each run trains PPO against the fake W&B backend (``tests/fakes/wandb_server.py``),
is SIGKILLed once the fake holds some of its history rows, and is resumed
(``train resume=RUN_FOLDER``) to the end against the same fake.

What ties a history row to the log: the wandb sink folds the scalar events of one
step of an axis into one row and stamps it with a hidden ``_seq`` column, the
``seq`` of the last event folded in; a resumed run reads ``_seq`` back from the
run's summary and skips every event at or below it. Before the write-ahead rule
(``Progress.wait_logged`` in ``telemetry/lane.py``) a killed run could leave rows
on the server whose ``seq`` its log never wrote; the resumed run numbers on from
the log's last ``seq``, so the sink dropped the new events up to the stale
``_seq`` as duplicates. Two of the three runs slow the log down
(``jsonl.max_latency=5``: a batch waits up to 5 s) so that a lane running ahead
of it would reach the server first; the rule makes wandb wait for the log. With
the three ``wait_logged`` lines of ``Lane._deliver`` removed, both slow-log runs
fail every time (rows whose ``_seq`` the log lacks, the resumed process's rows
dropped, the summary's ``_seq`` past the log's end); the default-log run does not
(its log writes within 50 ms, long before wandb streams a row). That check was made
when wandb ran in the training process; these runs now feed wandb from the sidecar
(the default ``sidecar.default=auto``), which reads only what the log holds, so
what they check there is the sidecar's cursor and wandb's resume across a kill.

Checked for each run: the resume exits 0; the log has no gap in ``seq``; every
history row of the run is one the log holds (its ``_seq``, step and values are
those of a row the log's events make); the killed process's rows on the server
are a prefix of its logged rows; the resumed process's rows are all there, none
dropped; wandb's own ``_step`` has no hole (no history line overwritten).

The killed process's logged rows that wandb had not received when it died
(the last second or two, and with the slow log everything it had written
since its last batch) reach wandb from the resumed process: the wandb sink
finds its resumed run's summary ``_seq`` below the batch it is handed
(``SinkBehindError``), and its lane reads the hole back from the log first.
The second test checks the whole claim: every logged episode of both
processes is a history row with its values.
"""

from __future__ import annotations

import math
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from telemetry.events import SCALAR_EVENTS, Event, Metrics, RunFinished, RunStarted
from tests.fakes.wandb_server import FakeWandbServer, online_env
from tests.reliability.common import ROOT, assert_no_gap, cli_env, read_log

SEED = 20_261_201
AXIS = "episode"  # PPO's main step axis
SEQ_KEY = "_seq"  # sinks.wandb_sink.SEQ_KEY
RESUME_EPISODES = 30
# Each run: its overrides, and how the kill moment is drawn (from SEED). "after rows": a
# random moment (0-1.5 s) after the fake first holds a history row of the run. "log quiet":
# once the log file has not grown for a random 2-3 s, the moment a lane running ahead of
# the log would have the most rows on the server that the log never wrote.
PLAN: list[tuple[list[str], str]] = [
    (["ppo.save_freq=3"], "after rows"),  # the default log; a checkpoint every 3 episodes
    (["ppo.save_freq=100", "jsonl.max_latency=5"], "log quiet"),  # a slow log, checkpoints
    (["ppo.save_freq=1000", "jsonl.max_latency=5"], "log quiet"),  # no checkpoint: from 0
]


@dataclass
class Row:
    """A history row as the wandb sink builds it from the log: one step of the axis."""

    step: int
    seq: int  # the seq of its last event: the row's hidden _seq
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """One killed and resumed run: its log, the fake's history of it, and where it resumed."""

    index: int
    run_id: str
    events: list[Event]
    resume_seq: int  # the resumed process's first seq (its RunStarted): later seqs are its own
    killed_rows: int  # episode rows the fake held when the kill landed
    history: list[dict[str, Any]]
    summary: dict[str, Any] | None
    exit_code: int | None
    took: float


def _env(server: FakeWandbServer) -> dict[str, str]:
    env = {**cli_env(), **online_env(server)}
    env["OMP_NUM_THREADS"] = "1"  # two cores shared: one thread per run
    return env


def _episode_rows(server: FakeWandbServer, run_id: str) -> list[dict[str, Any]]:
    return [row for row in server.history(run_id) if AXIS in row]


def _run_folder(out: Path) -> Path | None:
    found = [p for p in out.glob("*") if (p / "events.jsonl").is_file()]
    return found[0] if found else None


def _rows_of(events: list[Event]) -> list[Row]:
    """The episode rows the sink makes of ``events`` (one process's): one per run of a step."""
    rows: list[Row] = []
    for event in events:
        if not isinstance(event, SCALAR_EVENTS) or event.axis != AXIS:
            continue
        if not rows or rows[-1].step != event.step:
            rows.append(Row(event.step, event.seq))
        row = rows[-1]
        row.values.update(event.values)
        row.seq = event.seq
    return rows


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == pytest.approx(b, nan_ok=True))


def _matches(server_row: dict[str, Any], row: Row) -> bool:
    if server_row.get(AXIS) != row.step:
        return False
    return all(_same(server_row.get(key), value) for key, value in row.values.items())


def _wait_until_quiet(out: Path, process: subprocess.Popen[bytes], quiet: float) -> None:
    """Return once the run's log has not grown for ``quiet`` seconds."""
    folder = _run_folder(out)
    assert folder is not None
    log = folder / "events.jsonl"
    size, since = log.stat().st_size, time.monotonic()
    deadline = since + 30
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"the log never stayed quiet for {quiet:.1f} s"
        assert process.poll() is None, "the run ended before the kill"
        time.sleep(0.01)
        if (now := log.stat().st_size) != size:
            size, since = now, time.monotonic()


def _one(
    index: int,
    extra: list[str],
    kill: str,
    delay: float,
    server: FakeWandbServer,
    base: Path,
) -> Outcome:
    out = base / f"run{index}"
    env = _env(server)
    started = time.monotonic()
    command = [
        sys.executable, str(ROOT / "main.py"), "train", "trainer=ppo", "episodes=400",
        *extra, f"out={out}", "sinks=[jsonl,console,wandb]", "wandb.mode=online",
        "console.format=json", "console.every=1000", "health_interval=0",
        # wandb lives in the sidecar: at idle priority a busy machine would hold its rows
        # back until training ends, and the kill must come while both are running.
        "sidecar.priority=normal",
    ]  # fmt: skip
    with (base / f"run{index}.stderr").open("wb") as stderr:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            run_id = ""
            deadline = time.monotonic() + 90
            while not (run_id and _episode_rows(server, run_id)):  # wandb is live for this run
                assert time.monotonic() < deadline, "no history row reached the fake in 90 s"
                assert process.poll() is None, "the run ended before the kill"
                folder = _run_folder(out)
                if folder is not None:
                    run_id = folder.name.rsplit("-", 1)[-1]
                time.sleep(0.02)
            if kill == "after rows":
                time.sleep(delay)
            else:
                _wait_until_quiet(out, process, delay)
            assert process.poll() is None, "the run ended before the kill"
        finally:  # kill -9 (SIGKILL), also when a wait above failed
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    killed_rows = len(_episode_rows(server, run_id))
    folder = _run_folder(out)
    assert folder is not None
    reader, before = read_log(folder)
    assert reader.header["run_id"] == run_id
    resumed = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "train", f"resume={folder}",
         f"episodes={RESUME_EPISODES}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stderr
    reader, events = read_log(folder)
    assert reader.problems == [], reader.problems
    assert events[: len(before)] == before
    # The resumed process numbers on from the log's last seq (a log the kill left with no
    # event at all, only its header, makes the resume a fresh start in the same folder).
    resume_seq = len(before) + 1
    start = events[len(before)]
    assert isinstance(start, RunStarted), start
    assert start.seq == resume_seq, start
    assert start.resumed == bool(before)
    return Outcome(
        index=index,
        run_id=run_id,
        events=events,
        resume_seq=resume_seq,
        killed_rows=killed_rows,
        history=server.history(run_id),
        summary=server.summary(run_id),
        exit_code=server.exit_code(run_id),
        took=time.monotonic() - started,
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Outcome]]:
    """The three runs, each killed once and resumed, against one fake W&B backend."""
    base = tmp_path_factory.mktemp("kill-wandb")
    rng = random.Random(SEED)
    delays = [
        rng.uniform(0.0, 1.5) if kill == "after rows" else rng.uniform(2.0, 3.0) for _, kill in PLAN
    ]
    with FakeWandbServer() as server, ThreadPoolExecutor(max_workers=len(PLAN)) as pool:
        # The runs are independent (one fake backend, a run id each): all three at once.
        running = [
            pool.submit(_one, i, extra, kill, delays[i], server, base)
            for i, (extra, kill) in enumerate(PLAN)
        ]
        yield [run.result() for run in running]
    assert not server.live_threads(), "fake W&B server threads still alive after stop"


def _split(outcome: Outcome) -> tuple[list[Row], list[Row]]:
    first = [e for e in outcome.events if e.seq < outcome.resume_seq]
    second = [e for e in outcome.events if e.seq >= outcome.resume_seq]
    return _rows_of(first), _rows_of(second)


def _problems(o: Outcome) -> tuple[list[str], int, int]:
    """What is wrong with one run's history, the rows checked, and the killed rows not there."""
    problems: list[str] = []
    first, second = _split(o)
    logged = {row.seq: row for row in first + second}
    rows = [r for r in o.history if AXIS in r]
    # wandb's own step counts every history line once: none overwritten by the resume.
    if [r.get("_step") for r in o.history] != list(range(len(o.history))):
        problems.append("wandb's _step has a hole or a repeat")
    seqs = [r.get(SEQ_KEY) for r in rows]
    if len(set(seqs)) != len(seqs):
        problems.append("a row reached wandb twice")
    # Every row on the server is one the log holds: same seq, step and values.
    lacking = [r[SEQ_KEY] for r in rows if r[SEQ_KEY] not in logged]
    if lacking:
        problems.append(f"{len(lacking)} rows with a _seq the log lacks: {lacking[:8]}")
    unlike = [
        r[SEQ_KEY] for r in rows if r[SEQ_KEY] in logged and not _matches(r, logged[r[SEQ_KEY]])
    ]
    if unlike:
        problems.append(f"{len(unlike)} rows unlike the log's row of their _seq: {unlike[:8]}")
    # The killed process's rows that got there are its first ones, in order, no hole.
    ours = [r[SEQ_KEY] for r in rows if r[SEQ_KEY] < o.resume_seq]
    if not ours:
        problems.append("no row of the killed process is in wandb")
    elif ours != [row.seq for row in first[: len(ours)]]:
        problems.append("the killed process's rows in wandb are not the first it logged")
    # Every row of the resumed process is there: none dropped as a duplicate.
    theirs = [r[SEQ_KEY] for r in rows if r[SEQ_KEY] >= o.resume_seq]
    if theirs != [row.seq for row in second]:
        missing = sorted({row.seq for row in second} - set(theirs))
        problems.append(
            f"{len(theirs)} rows in wandb from the resume point (seq {o.resume_seq}) on, "
            f"the log makes {len(second)}; missing seqs {missing[:8]}"
            f"{'...' if len(missing) > 8 else ''}"
        )
    if not second or (first and second[0].step > first[-1].step + 1):
        problems.append("the resumed process did not continue from a checkpoint")
    summary_seq = (o.summary or {}).get(SEQ_KEY)
    if summary_seq != o.events[-1].seq:
        problems.append(f"summary _seq {summary_seq}, the log ends at seq {o.events[-1].seq}")
    if o.exit_code != 0:
        problems.append(f"wandb run exit code {o.exit_code}")
    return [f"run {o.index}: {p}" for p in problems], len(rows), len(first) - len(ours)


def test_killed_and_resumed_runs_lose_no_row_of_the_resumed_process(
    outcomes: list[Outcome],
) -> None:
    """No history row the log lacks, the killed process's rows a prefix, the resumed one's all."""
    for o in outcomes:
        assert_no_gap(o.events)
        assert isinstance(o.events[-1], RunFinished)
        assert o.events[-1].status == "finished"
    found = [_problems(o) for o in outcomes]
    print(
        f"\n[kill-wandb] {len(outcomes)} runs killed with wandb online and resumed, "
        f"events per run {', '.join(str(len(o.events)) for o in outcomes)} "
        f"(resumed at seq {', '.join(str(o.resume_seq) for o in outcomes)}), "
        f"{sum(o.killed_rows for o in outcomes)} rows on the fake at the kills, "
        f"{sum(f[1] for f in found)} history rows checked against the logs, "
        f"{sum(f[2] for f in found)} rows of the killed processes' own grouping not on the fake "
        f"(sent again, regrouped, by the resumed ones), {sum(o.took for o in outcomes):.0f} s"
    )
    problems = [p for f in found for p in f[0]]
    assert not problems, "\n".join(problems)


def test_every_logged_episode_of_both_processes_is_a_history_row(
    outcomes: list[Outcome],
) -> None:
    """The issue's whole claim: every step of both processes, with its values, is in wandb."""
    for o in outcomes:
        rows = [r for r in o.history if AXIS in r]
        for event in o.events:
            if isinstance(event, Metrics) and event.axis == AXIS:
                assert any(
                    r.get(AXIS) == event.step
                    and all(_same(r.get(k), v) for k, v in event.values.items())
                    for r in rows
                ), f"run {o.index}: episode {event.step} (seq {event.seq}) is not in wandb"
