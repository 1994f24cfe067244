"""Agents in separate processes (and network namespaces) share one sweep on a real PostgreSQL.

Each agent is ``main.py agent <id> --storage URL --out <its own folder>``, as on
another host: the two share nothing but the database. Where the kernel allows
network namespaces, each agent runs in its own, reaching the server over a veth
link to a private 10.200.K.0/30 network that routes nowhere else.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage

from telemetry.sweep.engine import Engine, open_storage
from telemetry.sweep.folder import RESULTS_FILE, create_sweep
from telemetry.sweep.show import rows
from telemetry.sweep.spec import load_sweep
from tests.sweep.postgres import postgres_server

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "main.py"
OBJECTIVE = ROOT / "tests" / "sweep" / "objective.py"
XS = (0.0, 0.1, 0.2, 0.3)
YS = (-0.2, 0.5)
GRID = {(x, y) for x in XS for y in YS}
AGENT_TIMEOUT = 45.0
"""Seconds both agents have, together, to run the 8 grid points (about 10 s here)."""
SWEEP = f"""\
method: grid
program: {OBJECTIVE}
metric: {{name: loss}}
parameters:
  x: {{values: {list(XS)}}}
  y: {{values: {list(YS)}}}
  steps: {{value: 3}}
  sleep: {{value: 0.3}}
"""


@contextlib.contextmanager
def heartbeat_warning_ignored() -> Iterator[None]:
    """Workaround: ``open_storage`` passes ``heartbeat_interval`` to RDBStorage without
    silencing Optuna's ExperimentalWarning for it (it does silence the journal's), and this
    suite turns warnings into errors, which open_storage then reports as "cannot open"."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def make_sweep(tmp_path: Path, url: str) -> str:
    """A new grid sweep in the database at ``url``; its id."""
    sweep_file = tmp_path / "grid.yaml"
    sweep_file.write_text(SWEEP, encoding="utf-8")
    with heartbeat_warning_ignored(), warnings.catch_warnings():
        folder, _ = create_sweep(
            sweep_file, tmp_path / "creator", seed=0, storage=url, overrides=[]
        )
        # Workaround: create_sweep drops its RDBStorage without disposing of its engine, so
        # the pooled connection is closed by the garbage collector with a ResourceWarning
        # (an error in this suite): collect it here, where that warning is ignored.
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    return folder.id


def start_agent(
    sweep_id: str, url: str, out: Path, prefix: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """``main.py agent`` as its own process, its output in ``out/agent.log``."""
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [*prefix, sys.executable, str(MAIN), "agent", sweep_id, "--storage", url]
    with (out / "agent.log").open("wb") as log:
        return subprocess.Popen(
            [*argv, "--out", str(out)], cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def wait_all(procs: Sequence[subprocess.Popen[bytes]], outs: Sequence[Path]) -> None:
    """Wait for every agent to exit 0 within ``AGENT_TIMEOUT`` (else kill them and fail)."""
    deadline = time.monotonic() + AGENT_TIMEOUT
    try:
        for proc in procs:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    logs = "\n".join(f"--- {o}/agent.log\n{(o / 'agent.log').read_text()[-3000:]}" for o in outs)
    codes = [proc.returncode for proc in procs]
    assert codes == [0] * len(procs), f"agents exited {codes} (killed: -9)\n{logs}"


def check_no_duplicate(url: str, sweep_id: str, outs: Sequence[Path]) -> None:
    """Every grid point ran once, finished, by one of the agents, each of which ran some."""
    with heartbeat_warning_ignored():
        storage = open_storage(url)
    try:
        study = optuna.load_study(study_name=sweep_id, storage=storage)
        engine = Engine(load_sweep(outs[0] / "sweeps" / sweep_id / "sweep.yaml"), study, 0)
        table = rows(engine)
        points = [(row.params["x"], row.params["y"]) for row in table]
        assert sorted(points) == sorted(GRID), "each grid point runs exactly once"
        assert [row.state for row in table] == ["finished"] * len(GRID)
        agents = {json.dumps(t.user_attrs["agent"], sort_keys=True) for t in study.trials}
        assert len(agents) == len(outs), f"trials ran by {agents}"
    finally:
        assert isinstance(storage, RDBStorage)
        storage.engine.dispose()
    # Each agent's own folder (its "host") lists the trials it ran: disjoint, all of them.
    ran = []
    for out in outs:
        lines = (out / "sweeps" / sweep_id / RESULTS_FILE).read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert records, f"the agent of {out} ran no trial"
        assert {r["outcome"] for r in records} == {"finished"}
        ran.append([r["trial"] for r in records])
    every = list(itertools.chain.from_iterable(ran))
    assert sorted(every) == sorted(row.number for row in table), f"trials by agent: {ran}"


@pytest.mark.timeout(90)
def test_two_agent_processes_share_a_postgres_sweep(tmp_path: Path) -> None:
    """Two agent processes on one PostgreSQL sweep run every grid point exactly once."""
    with postgres_server() as server:
        url = server.url()
        sweep_id = make_sweep(tmp_path, url)
        outs = [tmp_path / f"host{i}" for i in range(2)]
        procs = [start_agent(sweep_id, url, out) for out in outs]
        wait_all(procs, outs)
        check_no_duplicate(url, sweep_id, outs)


@dataclass(frozen=True, slots=True)
class Namespace:
    """A network namespace linked to ours by a veth pair on a private /30."""

    name: str
    host_address: str
    """Our end of the link: where the server listens for this namespace."""
    address: str
    """The namespace's end."""
    network: str


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15, check=False)


def _used_networks() -> str:
    return (
        _ip("-4", "-o", "addr", "show").stdout + _ip("-4", "route", "show", "table", "all").stdout
    )


@contextlib.contextmanager
def namespaces(count: int) -> Iterator[list[Namespace]]:
    """``count`` new namespaces, each with only lo and a veth to 10.200.K.1/30 (no route
    elsewhere); skips when the kernel or our privileges do not allow them."""
    if shutil.which("ip") is None:
        pytest.skip("network namespaces: no `ip` command (iproute2)")
    if os.geteuid() != 0:
        pytest.skip("network namespaces: `ip netns add` needs root")
    tag = f"{os.getpid() % 100000}{random.randrange(100)}"
    used = _used_networks()
    free = [k for k in range(1, 255) if f"10.200.{k}." not in used]
    random.shuffle(free)
    made: list[tuple[str, str]] = []
    try:
        spaces = []
        for i in range(count):
            name, host_if, ns_if = f"rlt-pg-{tag}-{i}", f"rlth{tag}{i}", f"rltn{tag}{i}"
            k = free[i]
            added = _ip("netns", "add", name)
            if added.returncode != 0:
                pytest.skip(f"network namespaces not allowed here: {added.stderr.strip()}")
            made.append((name, host_if))
            steps = [
                ("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", name),
                ("addr", "add", f"10.200.{k}.1/30", "dev", host_if),
                ("link", "set", host_if, "up"),
                ("-n", name, "addr", "add", f"10.200.{k}.2/30", "dev", ns_if),
                ("-n", name, "link", "set", ns_if, "up"),
                ("-n", name, "link", "set", "lo", "up"),
            ]
            for step in steps:
                done = _ip(*step)
                if done.returncode != 0:
                    pytest.skip(f"veth link not allowed here: ip {' '.join(step)}: {done.stderr}")
            spaces.append(Namespace(name, f"10.200.{k}.1", f"10.200.{k}.2", f"10.200.{k}.0/30"))
        yield spaces
    finally:
        for name, host_if in reversed(made):
            _ip("netns", "del", name)  # takes its veth end, and so the pair, with it
            _ip("link", "del", host_if)  # in case the pair outlived the namespace


@pytest.mark.timeout(90)
def test_agents_in_two_network_namespaces_share_a_postgres_sweep(tmp_path: Path) -> None:
    """Agents in two network namespaces, reaching the server over veth links, run every grid
    point of one sweep exactly once."""
    with namespaces(2) as spaces:
        listen = [ns.host_address for ns in spaces]
        with postgres_server(listen=listen, trust=[ns.network for ns in spaces]) as server:
            sweep_id = make_sweep(tmp_path, server.url())
            outs = [tmp_path / f"host{i}" for i in range(len(spaces))]
            procs = [
                start_agent(
                    sweep_id,
                    server.url(ns.host_address),
                    out,
                    prefix=["ip", "netns", "exec", ns.name],
                )
                for ns, out in zip(spaces, outs, strict=True)
            ]
            wait_all(procs, outs)
            check_no_duplicate(server.url(), sweep_id, outs)
            for ns in spaces:  # they came over the links, from the namespaces' ends
                assert f"connection received: host={ns.address}" in server.log
