"""Training overhead in instructions: what telemetry costs the training process itself.

``python benchmarks/instructions.py [--quick] [--trainers erl,ppo,amp] [--episodes erl=5]
[--kinds mem,side] [--json FILE]``

The wall-clock overheads (``benchmarks/run.py --only training``) carry this
machine's noise: two runs of the same placement differ by up to about 5% (the
A/A pair there), more than the 1% goal of the sidecar. Instruction counts repeat
to about 0.1%. Each trainer trains once per placement, each in a fresh process
under valgrind's callgrind, counting only during ``await trainer.train(n)``
(``callgrind_control -i on`` just before, ``off`` just after; the run is set
up as in the training section). Placements: the memory sink only (twice: an A/A
pair), the log alone, and console, TensorBoard and wandb in the sidecar. The
figure is the extra instructions the training process executes against the
memory sink only, in percent, and per event published. The sidecar is another process and is not
counted: what it costs the trainer is the CPU they share, which only the
wall-clock figures show.

Under callgrind a trainer runs 50 to 250 times slower than natively, so work done
per second rather than per event (the log's group commit every 0.2 s, health
every 5 s, the sidecar's lane) is counted that many times over: the figures are
upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402 (after the path set-up for a script run)

from benchmarks import sinks4  # noqa: E402
from benchmarks.common import devnull_text  # noqa: E402
from benchmarks.training import train_once  # noqa: E402

GOAL_PCT = 1.0
EPISODES = {"erl": 1, "ppo": 10, "amp": 1}
"""Episodes per counted run (ERL generations, AMP epochs): 1 to 10 minutes under callgrind."""
KINDS = ("mem", "log", "side", "again")
"""In this order per trainer; ``again`` is the memory sink only a second time."""
QUICK_KINDS = ("mem", "side")


def _toggle(on: bool) -> None:
    """Counting on or off in this process (which runs under callgrind)."""
    argv = ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


async def _child(
    kind: str, name: str, episodes: int, folder: Path, small: bool
) -> dict[str, float]:
    """One counted training run (in the process callgrind runs), in the existing ``folder``."""
    with devnull_text() as stream:
        sinks = sinks4.for_kind("mem" if kind == "again" else kind, folder, stream)
        return await train_once(name, episodes, folder, sinks, small, around=_toggle)


def count(kind: str, name: str, episodes: int, work: Path, small: bool) -> dict[str, float]:
    """Instructions of one placement's ``train``, with its events and seconds."""
    folder = work / f"{name}-{kind}"
    out = work / f"{name}-{kind}.callgrind"
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    argv += [sys.executable, str(Path(__file__).resolve()), "--child", kind, name, str(episodes)]
    argv += [str(folder)] + (["--small"] if small else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    log = work / f"{name}-{kind}.valgrind.txt"
    with log.open("wb") as err:
        done = subprocess.run(argv, cwd=ROOT, env=env, stdout=err, stderr=err, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} {kind}: exit status {done.returncode}\n{tail}")
    totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
    result: dict[str, float] = json.loads((folder / "result.json").read_text())
    return {**result, "instructions": float(totals[-1].split()[1])}


def measure(
    trainers: Sequence[str],
    quick: bool,
    work: Path,
    episodes_of: dict[str, int] | None = None,
    kinds: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Each trainer's count per placement and the overheads against the memory sink only."""
    figures: dict[str, dict[str, float]] = {}
    episodes_of = {**EPISODES, **(episodes_of or {})}
    kinds = kinds or (QUICK_KINDS if quick else KINDS)
    for name in trainers:
        episodes = 1 if quick else episodes_of[name]
        runs = {kind: count(kind, name, episodes, work, small=quick) for kind in kinds}
        base = runs["mem"]["instructions"]
        row: dict[str, float] = {"episodes": episodes, "events": runs[kinds[-1]]["events"]}
        for kind, run in runs.items():
            row[f"{kind}_instructions"] = run["instructions"]
            row[f"{kind}_train_s"] = run["train_s"]
            if kind != "mem":
                row[f"{kind}_overhead_pct"] = (run["instructions"] / base - 1) * 100
                row[f"{kind}_per_event"] = (run["instructions"] - base) / max(run["events"], 1)
        figures[name] = row
        print(_line(name, row), file=sys.stderr, flush=True)
    return figures


def _line(name: str, row: dict[str, float]) -> str:
    parts = [f"{name} train({row['episodes']:.0f}), {row['events']:.0f} events:"]
    for kind, label in (("log", "log alone"), ("side", "sidecar"), ("again", "A/A")):
        if f"{kind}_overhead_pct" in row:
            pct, per_event = row[f"{kind}_overhead_pct"], row[f"{kind}_per_event"]
            parts.append(f"{label} {pct:+.2f}% ({per_event:,.0f} per event)")
    return " ".join(parts)


def _episodes(text: str) -> dict[str, int]:
    """``erl=5,ppo=20`` as a dict; a bad part is an argparse error naming it."""
    out: dict[str, int] = {}
    for part in filter(None, text.split(",")):
        name, _, value = part.partition("=")
        if name not in EPISODES or not value.isdigit() or int(value) < 1:
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected TRAINER=N with TRAINER one of {', '.join(EPISODES)}, N >= 1"
            )
        out[name] = int(value)
    return out


def _kinds(text: str) -> list[str]:
    """``mem,side`` as a list; the memory sink only comes first (the base of the figures)."""
    kinds = [kind for kind in text.split(",") if kind]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds or kinds[0] != "mem":
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected placements from {', '.join(KINDS)}, starting with mem"
        )
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="PPO's small config, one episode")
    parser.add_argument("--trainers", default="erl,ppo,amp", help="comma-separated")
    parser.add_argument(
        "--episodes",
        type=_episodes,
        default={},
        help="counted episodes per trainer, e.g. erl=5,ppo=20 (default: erl=1,ppo=10,amp=1)",
    )
    parser.add_argument(
        "--kinds",
        type=_kinds,
        default=None,
        help=f"placements, 'mem' first (default: {','.join(KINDS)})",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "TRAINER", "EPISODES", "DIR"))
    parser.add_argument("--small", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        kind, name, episodes, where = options.child
        folder = Path(where)
        folder.mkdir(parents=True)
        result = anyio.run(_child, kind, name, int(episodes), folder, options.small)
        (folder / "result.json").write_text(json.dumps(result))
        return 0
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if missing:
        print(f"error: {', '.join(missing)} not found: apt-get install valgrind", file=sys.stderr)
        return 1
    trainers = ["ppo"] if options.quick else options.trainers.split(",")
    with tempfile.TemporaryDirectory(prefix="rltelemetry-instructions-") as work:
        figures = measure(trainers, options.quick, Path(work), options.episodes, options.kinds)
    sides = [row["side_overhead_pct"] for row in figures.values() if "side_overhead_pct" in row]
    if sides:
        worst = max(sides)
        verdict = "met" if worst <= GOAL_PCT else "missed"
        print(f"sidecar: at most {worst:+.2f}% instructions in the training process "
              f"(goal <= {GOAL_PCT:g}%: {verdict})")  # fmt: skip
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
