"""Benchmarks of rltelemetry against direct use of wandb, TensorBoard and SB3's logger.

Run: ``make bench`` (``python benchmarks/run.py``). Prints a table and writes
``benchmarks/results.json`` and ``benchmarks/scaling.png``. ``--quick`` runs every
section at tiny sizes (for CI) and writes to a temporary folder unless ``--out``
says where. Every figure is a median over repeats; every comparison pairs the
figure with its anchor (the direct library call) measured in the same process,
interleaved (A B, B A, ...), and its ratio is the median of the paired ratios.

Sections: hot_path, throughput, efficiency, training, scaling, outage, sims.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The repository root, not benchmarks/, first on the path: its modules must not shadow others.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

from benchmarks import (  # noqa: E402
    efficiency,
    hot_path,
    outage,
    scaling,
    sims,
    table,
    throughput,
    training,
)
from benchmarks.common import FULL, QUICK, Report, Sizes, isolate_wandb  # noqa: E402
from benchmarks.figures import FIGURE_KEYS  # noqa: E402

Section = Callable[[Sizes, Report, Path], Awaitable[None]]
SECTIONS: dict[str, Section] = {
    "hot_path": hot_path.run,
    "throughput": throughput.run,
    "efficiency": efficiency.run,
    "training": training.run,
    "scaling": scaling.run,
    "outage": outage.run,
    "sims": sims.run,
}


def git_state() -> str:
    """The commit measured, and ``+dirty`` with the changed library files (read-only git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "telemetry", "sinks", "agents"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.split()
    except OSError:
        return "unknown"
    changed = [p for p in status if "/" in p]
    return head + (f"+dirty ({', '.join(changed)})" if changed else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI (under a minute)")
    parser.add_argument(
        "--out",
        type=Path,
        help="results JSON (default: benchmarks/results.json; quick: a temp dir)",
    )
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument(
        "--training-repeats", type=int, help="repeats of each training run (default: 5)"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.training_repeats:
        sizes = dataclasses.replace(sizes, training_repeats=args.training_repeats)
    if args.out is None:
        out_dir = (
            Path(tempfile.mkdtemp(prefix="rltelemetry-bench-"))
            if args.quick
            else ROOT / "benchmarks"
        )
        out = out_dir / "results.json"
    else:
        out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)

    report = Report()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rltelemetry-bench-work-") as work:
        work_dir = Path(work)
        isolate_wandb(work_dir / "wandb-home")
        for name in args.only or list(SECTIONS):
            section_started = time.monotonic()
            print(f"[{name}] ...", file=sys.stderr, flush=True)
            folder = work_dir / name
            folder.mkdir()
            try:
                anyio.run(SECTIONS[name], sizes, report, folder)
            except Exception:
                report.errors[name] = traceback.format_exc()
                print(report.errors[name], file=sys.stderr)
            seconds = time.monotonic() - section_started
            report.extra.setdefault("section_seconds", {})[name] = round(seconds, 1)
            print(f"[{name}] {seconds:.1f} s", file=sys.stderr, flush=True)

    plot_path = out.parent / "scaling.png"
    if "scaling" in report.extra:
        from benchmarks.plot import plot_scaling

        plot_scaling(report.extra["scaling"], plot_path)
    total = time.monotonic() - started
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "commit": git_state(),
        "quick": args.quick,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(),
        "sizes": sizes.__dict__,
        "seconds": round(total, 1),
        "figures": {k: f.as_dict() for k, f in report.figures.items()},
        "errors": report.errors,
        "extra": report.extra,
    }
    out.write_text(json.dumps(record, indent=1, default=str) + "\n")
    print(table.render(report))
    print(f"\nwrote {out}" + (f" and {plot_path}" if plot_path.exists() else ""))
    print(f"total {total:.0f} s")
    missing = [] if args.only else [k for k in FIGURE_KEYS if k not in report.figures]
    if missing:
        print(f"missing figures: {', '.join(missing)}", file=sys.stderr)
    return 1 if report.errors or missing else 0


if __name__ == "__main__":
    sys.exit(main())
