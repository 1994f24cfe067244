"""The sweep runner's per-trial overhead: from one trial's end to the next trial's first event.

Run: ``python benchmarks/sweep_overhead.py [--trials N]``. Two trial programs, each
measured two ways, interleaved in one run:

- ``sweep``: one agent (``main.py sweep --agents 1``) runs N trials; each trial's
  ``overhead`` in ``results.jsonl`` is the time from the previous trial's end to
  this one's first event in its log (claim, sampling, process start, imports);
- ``direct``: the same program started N times in a row by a plain loop, timed
  from one process's exit to the next one's first event in its log: what any
  launcher pays (the interpreter and the program's imports).

The runner's own cost is the difference. Programs: ``tests/sweep/objective.py``
(imports the pipeline only) and our ERL trainer at a tiny size (imports torch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OBJECTIVE = ROOT / "tests" / "sweep" / "objective.py"
TINY_ERL = [
    "episodes=2",
    "erl.population_size=2",
    "erl.gradient_steps_per_generation=1",
    "erl.episode_length=10",
    "erl.validation_episodes=1",
    "sinks=[jsonl]",
]


def sweep_overheads(folder: Path, program: str, trials: int) -> list[float]:
    """Per-trial overheads of one agent running ``trials`` trials of ``program``."""
    parameters: dict[str, object] = {"x": {"min": 0.0, "max": 1.0}}
    config: dict[str, object] = {"method": "random", "run_cap": trials}
    overrides: list[str] = []
    if program == "objective":
        config |= {"program": str(OBJECTIVE), "metric": {"name": "loss"}}
        parameters |= {"steps": {"value": 2}}
    else:
        config |= {"metric": {"name": "fitness/best_ever", "goal": "maximize"}}
        parameters = {"trainer": {"value": "erl"}, "actor_lr": {"min": 1e-4, "max": 1e-3}}
        overrides = TINY_ERL
    sweep_file = folder / f"{program}.yaml"
    sweep_file.write_text(yaml.safe_dump({**config, "parameters": parameters}))
    out = folder / f"out-{program}"
    command = [sys.executable, str(ROOT / "main.py"), "sweep", str(sweep_file), "--out", str(out)]
    subprocess.run(
        [*command, *overrides],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=True,
        cwd=folder,
    )
    (results,) = out.glob("sweeps/*/results.jsonl")
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    return [float(r["overhead"]) for r in lines if r["overhead"] is not None]


def direct_overheads(folder: Path, program: str, trials: int) -> list[float]:
    """From one process's exit to the next one's first logged event, started by a plain loop."""
    overheads = []
    ended: float | None = None
    for number in range(trials):
        run_dir = folder / f"direct-{program}-{number}"
        run_dir.mkdir()
        if program == "objective":
            argv = [sys.executable, str(OBJECTIVE), "--x=0.5", "--steps=2"]
        else:
            argv = [sys.executable, str(ROOT / "main.py"), "train", "trainer=erl", f"out={run_dir}"]
            argv += TINY_ERL
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TELEMETRY_RUN_DIR": str(run_dir)}
        subprocess.run(argv, env=env, capture_output=True, check=True, cwd=folder)
        first = _first_event_time(run_dir)
        if ended is not None:
            overheads.append(first - ended)
        ended = time.time()
    return overheads


def _first_event_time(run_dir: Path) -> float:
    (log,) = [*run_dir.glob("events.jsonl"), *run_dir.glob("*/events.jsonl")]
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if "seq" in record:
            return float(record["time"])
    raise RuntimeError(f"no event in {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for program in ("objective", "erl"):
            sweep = sweep_overheads(Path(tmp), program, args.trials)
            direct = direct_overheads(Path(tmp), program, args.trials)
            s, d = statistics.median(sweep), statistics.median(direct)
            print(
                f"{program:9s} per-trial overhead: sweep agent {s:.3f} s, plain loop {d:.3f} s, "
                f"runner's own {s - d:+.3f} s (medians of {len(sweep)} and {len(direct)})"
            )


if __name__ == "__main__":
    main()
