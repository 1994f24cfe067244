"""A cheap sweep program: logs ``loss`` = a known function of its ``--key=value`` arguments.

``loss`` at iteration i (1..steps) is ``(x - 0.3)^2 + (y + 0.2)^2 + c + 1/i``
(``c``: 0, or 1 for ``--kind=bad``); it logs through the pipeline into
``$TELEMETRY_RUN_DIR``, as a user's script does, and writes its arguments to
``args.json`` there so that tests can read what it was given. ``--sleep``
pauses between iterations (to be killed mid-trial); ``--fail_at`` exits 1 there.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio

from sinks.jsonl import JsonlSink
from telemetry.bus import Bus


def loss(x: float, y: float, kind: str = "good") -> float:
    """The objective's value once converged."""
    return (x - 0.3) ** 2 + (y + 0.2) ** 2 + (1.0 if kind == "bad" else 0.0)


def parse(argv: list[str]) -> dict[str, str]:
    args = {}
    for item in argv:
        key, _, value = item.removeprefix("--").partition("=")
        args[key] = value
    return args


async def main(argv: list[str], folder: Path) -> int:
    args = parse(argv)
    x, y = float(args.get("x", 0)), float(args.get("y", 0))
    steps, sleep = int(args.get("steps", 5)), float(args.get("sleep", 0))
    fail_at = int(args.get("fail_at", 0))
    base = loss(x, y, args.get("kind", "good"))
    async with Bus("objective", [JsonlSink(folder / "events.jsonl", "objective")]) as bus:
        for i in range(1, steps + 1):
            if i == fail_at:
                return 1
            bus.log({"loss": base + 1.0 / i}, step=i, axis="iteration")
            await bus.flush()
            if sleep:
                await anyio.sleep(sleep)
    return 0


if __name__ == "__main__":
    run_dir = Path(os.environ.get("TELEMETRY_RUN_DIR", "."))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "args.json").write_text(
        json.dumps({"argv": sys.argv[1:], "args": parse(sys.argv[1:])})
    )
    sys.exit(anyio.run(main, sys.argv[1:], run_dir))
