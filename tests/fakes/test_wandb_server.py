"""Tests of the fake W&B server, most of them driving the real wandb client.

Each wandb scenario runs in its own Python subprocess (wandb's service process,
wandb-core, is per process, and a subprocess keeps wandb's global state and
warnings out of pytest). The child prints ``EVENT <json>`` lines and waits for
``go`` on stdin where the test switches a fault mid-run.

Timings asserted here assume the ``fast`` settings of :func:`online_env`
(1 s retry waits, 2 s per-attempt timeouts, 3 GraphQL / 6 file-stream attempts).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from tests.fakes.wandb_server import (
    MALFORMED_BODY,
    FakeWandbServer,
    online_env,
    wandb_online,  # noqa: F401  (fixture)
    wandb_server,  # noqa: F401  (fixture)
)

# --------------------------------------------------------------------------
# The child: one script, several scenarios.
# --------------------------------------------------------------------------

CHILD = r"""
import json, os, sys, time
import psutil

def emit(kind, **data):
    print("EVENT " + json.dumps({"kind": kind, **data}), flush=True)

def wait_go():
    sys.stdin.readline()

def describe(exc):
    return {"type": type(exc).__module__ + "." + type(exc).__qualname__,
            "mro": [c.__module__ + "." + c.__qualname__ for c in type(exc).__mro__],
            "message": str(exc)[:500]}

def core_pids():
    me = psutil.Process()
    return [p.pid for p in me.children(recursive=True)
            if "wandb-core" in " ".join(p.cmdline() or [p.name()])]

def alive(pids):
    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            out.append(False)
    return out

scenario = sys.argv[1]
t0 = time.monotonic()
import wandb
emit("imported", seconds=time.monotonic() - t0)

if scenario == "basic":
    t = time.monotonic()
    run = wandb.init(project="proj", config={"lr": 0.001, "layers": [64, 64], "algo": "ppo"})
    init_s = time.monotonic() - t
    for step in range(20):
        run.log({"loss": 1.0 / (step + 1), "reward": step * 0.5, "epsilon": -step})
    run.summary["best_reward"] = 9.5
    run.config.update({"late_key": "added"})
    t = time.monotonic()
    run.finish()
    emit("result", run_id=run.id, init_s=init_s, finish_s=time.monotonic() - t)

elif scenario == "artifact":
    run = wandb.init(project="proj")
    path = os.path.join(os.environ["WANDB_DIR"], "weights.txt")
    with open(path, "w") as f:
        f.write("fake weights\n")
    art = wandb.Artifact("policy", type="model", metadata={"epoch": 3})
    art.add_file(path, name="weights.txt")
    logged = run.log_artifact(art, aliases=["best"])
    logged.wait(timeout=30)
    t = time.monotonic()
    run.finish()
    emit("result", run_id=run.id, finish_s=time.monotonic() - t)

elif scenario == "artifact_fault":
    run = wandb.init(project="proj")
    path = os.path.join(os.environ["WANDB_DIR"], "weights.txt")
    with open(path, "w") as f:
        f.write("fake weights\n")
    emit("ready", run_id=run.id)
    wait_go()  # the test switched a GraphQL fault on
    art = wandb.Artifact("policy", type="model")
    art.add_file(path)
    t = time.monotonic()
    try:
        run.log_artifact(art)
        error = None
    except BaseException as exc:
        error = describe(exc)
    emit("logged", seconds=time.monotonic() - t, error=error)
    wait_go()
    t = time.monotonic()
    run.finish()
    emit("result", run_id=run.id, finish_s=time.monotonic() - t)

elif scenario == "init_fails":
    t = time.monotonic()
    try:
        wandb.init(project="proj")
        emit("init", ok=True, seconds=time.monotonic() - t)
    except BaseException as exc:
        emit("init", ok=False, seconds=time.monotonic() - t, error=describe(exc),
             core_alive=alive(core_pids()))
    wait_go()  # the test clears the fault; a second init in the same process
    t = time.monotonic()
    run = wandb.init(project="proj")
    run.log({"x": 1})
    run.finish()
    emit("result", run_id=run.id, seconds=time.monotonic() - t)

elif scenario == "midrun":
    run = wandb.init(project="proj", config={"lr": 0.1})
    pids = core_pids()
    for step in range(10):
        run.log({"a": step, "b": step * 2.5})
    emit("phase1", run_id=run.id, core_pids=pids)
    wait_go()  # the test switched a fault on
    durations, errors = [], []
    for step in range(10, 20):
        t = time.monotonic()
        try:
            run.log({"a": step, "b": step * 2.5})
        except BaseException as exc:
            errors.append(describe(exc))
        durations.append(time.monotonic() - t)
        time.sleep(0.1)
    emit("phase2", log_max_s=max(durations), log_errors=errors, core_alive=alive(pids))
    wait_go()  # the test may clear the fault
    t = time.monotonic()
    try:
        run.finish()
        finish_error = None
    except BaseException as exc:
        finish_error = describe(exc)
    emit("result", run_id=run.id, finish_s=time.monotonic() - t,
         finish_error=finish_error, core_alive=alive(pids))
else:
    raise SystemExit("unknown scenario " + scenario)
"""


class Child:
    """A wandb client subprocess speaking the EVENT/go protocol."""

    def __init__(self, server: FakeWandbServer, scenario: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
        env.update(online_env(server))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, scenario],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("EVENT "):
                self.events.put(json.loads(line[6:]))
        self.events.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def expect(self, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind!r} event in {timeout}s") from None
            if event is None:
                self.proc.wait(10)
                raise AssertionError(
                    f"child exited ({self.proc.returncode}) before {kind!r}:\n"
                    + "".join(self.stderr[-40:])
                )
            if event["kind"] == kind:
                return event

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 30.0) -> int:
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(5)
        return rc

    def close(self) -> None:
        """Kill the child (and its wandb-core) if still running; close the pipes."""
        if self.proc.poll() is None:
            try:
                descendants = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                descendants = []
            self.proc.kill()
            for p in descendants:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            self.proc.wait(10)
        for t in self._threads:
            t.join(5)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


@pytest.fixture
def child_factory(
    wandb_server: FakeWandbServer,  # noqa: F811
) -> Iterator[Any]:
    children: list[Child] = []

    def make(scenario: str) -> Child:
        child = Child(wandb_server, scenario)
        children.append(child)
        return child

    yield make
    for child in children:
        child.close()


def _timing(label: str, **numbers: float) -> None:
    print(f"[wandb-fake] {label}: " + ", ".join(f"{k}={v:.2f}s" for k, v in numbers.items()))


# --------------------------------------------------------------------------
# The real client against the fake
# --------------------------------------------------------------------------


def test_online_run_records_history_config_summary(
    wandb_server: FakeWandbServer,  # noqa: F811
    child_factory: Any,
) -> None:
    child = child_factory("basic")
    result = child.expect("result", timeout=60)
    assert child.finish() == 0
    run_id = result["run_id"]
    _timing("basic run", init=result["init_s"], finish=result["finish_s"])

    rows = wandb_server.history(run_id)
    assert [r["_step"] for r in rows] == list(range(20))
    for step, row in enumerate(rows):
        assert row["loss"] == pytest.approx(1.0 / (step + 1))
        assert row["reward"] == pytest.approx(step * 0.5)
        assert row["epsilon"] == -step

    assert wandb_server.config(run_id) == {
        "lr": 0.001,
        "layers": [64, 64],
        "algo": "ppo",
        "late_key": "added",
    }
    summary = wandb_server.summary(run_id)
    assert summary is not None
    assert summary["best_reward"] == 9.5
    assert summary["_step"] == 19
    assert summary["epsilon"] == -19
    assert wandb_server.exit_code(run_id) == 0
    info = wandb_server.run_info(run_id)
    assert info is not None
    assert info["complete"] is True
    assert {"wandb-summary.json", "config.yaml"} <= set(wandb_server.files(run_id))
    assert wandb_server.unknown_operations == []
    assert wandb_server.errors == []


def test_log_artifact_reaches_the_fake(
    wandb_server: FakeWandbServer,  # noqa: F811
    child_factory: Any,
) -> None:
    child = child_factory("artifact")
    result = child.expect("result", timeout=60)
    assert child.finish() == 0

    (art,) = wandb_server.artifacts.values()
    assert (art.name, art.type, art.state) == ("policy", "model", "COMMITTED")
    assert art.run_id == result["run_id"]
    assert "best" in art.aliases
    assert art.metadata == {"epoch": 3}
    assert art.files == {"weights.txt": b"fake weights\n"}
    assert art.manifest is not None
    assert set(art.manifest["contents"]) == {"weights.txt"}
    ops = wandb_server.operations()
    assert ops.index("CreateArtifact") < ops.index("CommitArtifact")
    assert wandb_server.exit_code(result["run_id"]) == 0
    assert wandb_server.errors == []


def test_log_artifact_raises_when_graphql_fails(
    wandb_server: FakeWandbServer,  # noqa: F811
    child_factory: Any,
) -> None:
    child = child_factory("artifact_fault")
    ready = child.expect("ready", timeout=60)
    wandb_server.set_fault("500", only="graphql")
    child.go()
    logged = child.expect("logged", timeout=60)
    _timing("log_artifact under GraphQL 500", raised_after=logged["seconds"])
    # Unlike run.log(), run.log_artifact() asks the server first (a Viewer
    # query from the Python side) and raises when that fails:
    # AuthenticationError (CommError -> Error), after the 2 s request timeout.
    assert logged["error"] is not None
    assert "wandb.errors.errors.CommError" in logged["error"]["mro"]
    assert logged["seconds"] < 10
    assert wandb_server.artifacts == {}
    wandb_server.fault = None
    child.go()
    result = child.expect("result", timeout=60)
    assert child.finish() == 0
    assert result["run_id"] == ready["run_id"]
    assert wandb_server.exit_code(ready["run_id"]) == 0


def test_in_process_run_with_wandb_online_fixture(
    wandb_online: FakeWandbServer,  # noqa: F811
) -> None:
    import wandb

    run = wandb.init(project="inproc", config={"k": 1})
    for step in range(5):
        run.log({"x": step})
    run.finish()
    assert [r["x"] for r in wandb_online.history(run.id)] == list(range(5))
    assert wandb_online.config(run.id) == {"k": 1}
    assert wandb_online.exit_code(run.id) == 0


@pytest.mark.parametrize("fault", ["refuse", "hang"])
def test_init_fails_in_bounded_time(
    wandb_server: FakeWandbServer,  # noqa: F811
    child_factory: Any,
    fault: str,
) -> None:
    wandb_server.fault = fault
    child = child_factory("init_fails")
    init = child.expect("init", timeout=60)
    assert init["ok"] is False
    _timing(f"init under {fault!r}", fail_after=init["seconds"])
    # Every failure derives from wandb.errors.Error ("giving up after N
    # attempts" is a plain Error, an init_timeout is a CommError).
    assert "wandb.errors.errors.Error" in init["error"]["mro"]
    assert init["core_alive"] == [True]  # the service survives a failed init
    if fault == "refuse":
        assert init["seconds"] < 10  # 3 attempts, 1 s apart
        assert "connection refused" in init["error"]["message"]
        assert not any(r.kind == "graphql" for r in wandb_server.requests)
    else:
        assert init["seconds"] < 20  # 3 attempts x (2 s timeout + 1 s wait)
        hung = [r for r in wandb_server.requests if r.operation == "UpsertBucket"]
        assert len(hung) == 3
        assert all(r.fault == "hang" and r.status is None for r in hung)

    wandb_server.fault = None  # same port again for "refuse"
    child.go()
    second = child.expect("result", timeout=60)
    assert child.finish() == 0
    assert [r["_step"] for r in wandb_server.history(second["run_id"])] == [0]

    wandb_server.stop()
    assert wandb_server.live_threads() == []


def _start_midrun(server: FakeWandbServer, child_factory: Any) -> tuple[Child, str]:
    child = child_factory("midrun")
    phase1 = child.expect("phase1", timeout=60)
    run_id = phase1["run_id"]
    assert server.wait_for(lambda: len(server.history(run_id)) == 10, timeout=15)
    return child, run_id


def test_malformed_file_stream_mid_run(
    wandb_server: FakeWandbServer,  # noqa: F811
    child_factory: Any,
) -> None:
    child, run_id = _start_midrun(wandb_server, child_factory)
    wandb_server.set_fault("malformed", only="file_stream")
    child.go()
    phase2 = child.expect("phase2", timeout=30)
    # A 200 with a broken body counts as delivered: wandb-core logs "json decode
    # error" and moves on. log() neither raises nor blocks; the service lives.
    assert phase2["log_errors"] == []
    assert phase2["log_max_s"] < 0.5
    assert phase2["core_alive"] == [True]
    assert wandb_server.wait_for(
        lambda: any(r.fault == "malformed" for r in wandb_server.requests), timeout=10
    )
    child.go()
    result = child.expect("result", timeout=60)
    assert child.finish() == 0
    _timing("finish with malformed file_stream", finish=result["finish_s"])
    assert result["finish_error"] is None
    assert result["core_alive"] == [True]

    streamed = [r for r in wandb_server.requests if r.kind == "file_stream"]
    malformed = [r for r in streamed if r.fault == "malformed"]
    assert malformed
    assert all(r.status == 200 for r in malformed)
    # No retry of what got a malformed answer: rows 10..19 were sent once each
    # and the fake (answering garbage) kept none of them, nor the exit code.
    chunks = [
        r.body["files"]["wandb-history.jsonl"]
        for r in malformed
        if "wandb-history.jsonl" in (r.body.get("files") or {})
    ]
    sent_steps = [json.loads(line)["_step"] for c in chunks for line in c["content"]]
    assert sent_steps == list(range(10, 20))  # each row once, in order: no retry
    assert [r["_step"] for r in wandb_server.history(run_id)] == list(range(10))
    assert wandb_server.exit_code(run_id) is None
    # GraphQL and uploads were untouched by the scoped fault.
    assert all(r.fault is None for r in wandb_server.requests if r.kind != "file_stream")


def test_500_then_cleared_delivers_every_row(
    wandb_server: FakeWandbServer,  # noqa: F811
    child_factory: Any,
) -> None:
    child, run_id = _start_midrun(wandb_server, child_factory)
    wandb_server.fault = "500"
    t_fault = time.monotonic()
    child.go()
    phase2 = child.expect("phase2", timeout=30)
    assert phase2["log_errors"] == []
    assert phase2["log_max_s"] < 0.5
    # Hold the fault for 2.5 s: inside the 6-attempt file-stream budget.
    assert wandb_server.wait_for(
        lambda: any(r.status == 500 and r.kind == "file_stream" for r in wandb_server.requests),
        timeout=10,
    )
    time.sleep(max(0.0, 2.5 - (time.monotonic() - t_fault)))
    wandb_server.fault = None
    t_clear = time.monotonic()
    assert wandb_server.wait_for(lambda: len(wandb_server.history(run_id)) == 20, timeout=15)
    delivered_after = time.monotonic() - t_clear
    child.go()
    result = child.expect("result", timeout=60)
    assert child.finish() == 0
    failed = [r for r in wandb_server.requests if r.status == 500]
    _timing(
        "500 for 2.5 s then cleared",
        rows_delivered_after_clear=delivered_after,
        finish=result["finish_s"],
    )
    assert failed
    assert result["finish_error"] is None
    assert [r["_step"] for r in wandb_server.history(run_id)] == list(range(20))
    assert wandb_server.exit_code(run_id) == 0


def test_500_until_after_finish_loses_rows_silently(
    wandb_server: FakeWandbServer,  # noqa: F811
    child_factory: Any,
) -> None:
    child, run_id = _start_midrun(wandb_server, child_factory)
    wandb_server.fault = "500"
    child.go()
    child.expect("phase2", timeout=30)
    child.go()  # finish() with the fault still on
    result = child.expect("result", timeout=60)
    assert child.finish() == 0
    _timing("finish while everything answers 500", finish=result["finish_s"])
    # finish() returns normally once the retry budgets run out (6 file-stream
    # attempts 1 s apart); rows 10..19 and the exit code never arrive.
    assert result["finish_error"] is None
    assert result["finish_s"] < 15
    assert result["core_alive"] == [True]
    attempts = [r for r in wandb_server.requests if r.kind == "file_stream" and r.status == 500]
    assert len(attempts) == 6
    assert [r["_step"] for r in wandb_server.history(run_id)] == list(range(10))
    assert wandb_server.exit_code(run_id) is None


# --------------------------------------------------------------------------
# The fake on its own (no wandb)
# --------------------------------------------------------------------------


def _post(url: str, payload: Any, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers), err.read()


def test_refuse_closes_the_port_and_reopens_it(
    wandb_server: FakeWandbServer,  # noqa: F811
) -> None:
    port = wandb_server.port
    wandb_server.fault = "refuse"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    wandb_server.fault = None
    assert wandb_server.port == port
    status, _, body = _post(wandb_server.base_url + "/anything", {})
    assert (status, json.loads(body)) == (200, {})


def test_status_faults_and_scoping(
    wandb_server: FakeWandbServer,  # noqa: F811
) -> None:
    gql = wandb_server.base_url + "/graphql"
    query = {"query": "query Viewer { viewer { entity } }", "operationName": "Viewer"}
    wandb_server.fault = "429"
    status, headers, _ = _post(gql, query)
    assert status == 429
    assert headers["Retry-After"] == "1"
    wandb_server.fault = "500"
    assert _post(gql, query)[0] == 500
    wandb_server.set_fault("malformed", only="graphql")
    status, _, body = _post(gql, query)
    assert (status, body) == (200, MALFORMED_BODY)
    with pytest.raises(ValueError, match=r"Expecting|Invalid"):
        json.loads(body)
    status, _, body = _post(wandb_server.base_url + "/files/e/p/r/file_stream", {"files": {}})
    assert (status, json.loads(body)) == (200, {"exitcode": None, "limits": {}})
    wandb_server.fault = None
    status, _, body = _post(gql, query)
    assert json.loads(body) == {"data": {"viewer": {"entity": "fake-entity"}}}
    with pytest.raises(ValueError, match="cannot be scoped"):
        wandb_server.set_fault("refuse", only="graphql")
    with pytest.raises(ValueError, match="unknown fault"):
        wandb_server.fault = "teapot"
    faults = [r.fault for r in wandb_server.requests]
    assert faults == ["429", "500", "malformed", None, None]


def test_hang_releases_on_clear_and_on_stop() -> None:
    server = FakeWandbServer().start()
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            _post(server.base_url + "/graphql", {"query": "{ viewer { id } }"}, timeout=10)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    callers = [threading.Thread(target=call), threading.Thread(target=call)]
    try:
        server.fault = "hang"
        callers[0].start()
        assert server.wait_for(lambda: len(server.requests) == 1, timeout=5)
        time.sleep(0.2)
        assert callers[0].is_alive()  # no answer while hanging
        server.fault = None  # the hung request's connection is closed unanswered
        callers[0].join(5)
        assert not callers[0].is_alive()
        assert len(outcome) == 1
        assert isinstance(outcome[0], (ConnectionError, urllib.error.URLError))

        server.fault = "hang"
        callers[1].start()
        assert server.wait_for(lambda: len(server.requests) == 2, timeout=5)
    finally:
        started = time.monotonic()
        server.stop()  # releases the second, still hanging, handler
        stopped_in = time.monotonic() - started
        for caller in callers:
            if caller.ident is not None:
                caller.join(5)
    assert stopped_in < 2
    assert server.live_threads() == []
    assert len(outcome) == 2


def test_graphql_answers_follow_the_query(
    wandb_server: FakeWandbServer,  # noqa: F811
) -> None:
    query = """
    query Mystery($entity: String!) {
      thing(name: $entity) { id nested { leaf } edges { node { id } } }
    }
    mutation DoIt($flag: Boolean!) {
      doIt(input: {}) { success extra @include(if: $flag) other @skip(if: $flag) }
    }
    """
    status, _, body = _post(
        wandb_server.base_url + "/graphql",
        {"query": query, "operationName": "Mystery", "variables": {"entity": "e"}},
    )
    assert (status, json.loads(body)) == (200, {"data": {"thing": None}})
    status, _, body = _post(
        wandb_server.base_url + "/graphql",
        {"query": query, "operationName": "DoIt", "variables": {"flag": True}},
    )
    assert json.loads(body) == {"data": {"doIt": {"success": True, "extra": None}}}
    assert wandb_server.unknown_operations == ["Mystery", "DoIt"]

    wandb_server.seed_run("r1", project="p", history=[{"_step": 0, "x": 1}], config={"lr": 2})
    status, _, body = _post(
        wandb_server.base_url + "/graphql",
        {
            "query": "query RunResumeStatus($project: String, $entity: String, $name: String!)"
            " { model(name: $project, entityName: $entity) { bucket(name: $name) {"
            ' historyLineCount config historyTail wandbConfig(keys: ["t"]) } } }',
            "operationName": "RunResumeStatus",
            "variables": {"project": "p", "entity": None, "name": "r1"},
        },
    )
    bucket = json.loads(body)["data"]["model"]["bucket"]
    assert bucket["historyLineCount"] == 1
    assert json.loads(bucket["config"])["lr"] == {"value": 2, "desc": None}
    assert json.loads(json.loads(bucket["historyTail"])[-1]) == {"_step": 0, "x": 1}
    assert "t" in json.loads(bucket["wandbConfig"])
