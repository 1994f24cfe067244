"""``python -m telemetry.collector --broker URL [--out DIR] [KEY=VALUE ...]``: the collector
without ``main.py`` (``main.py collect`` is the same command)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from telemetry.collector.cli import collect
from telemetry.logging import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m telemetry.collector")
    parser.add_argument("--broker", required=True, help="redis://HOST:PORT")
    parser.add_argument("--out", type=Path, default=Path("runs/collected"))
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    configure_logging()
    return collect(args.broker, out=args.out, overrides=args.overrides)


if __name__ == "__main__":
    sys.exit(main())
