"""The commands that read run folders rather than train: ``dashboard``, ``report``, ``collect``.

``main.py`` adds them to its parser (``add_commands``) and hands a parsed one here
(``run``); each imports its own package only when it runs, so ``train`` pays nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from telemetry.errors import ConfigError

NAMES = ("dashboard", "report", "collect")
REPORT_TYPES = ("performance", "trade", "sweep")
REPORT_FORMATS = ("md", "html")


def add_commands(commands: Any) -> None:
    """Add the three commands to ``commands``, an argparse sub-parsers object."""
    dashboard = commands.add_parser(
        "dashboard",
        help="a live local dashboard over the run and sweep folders under DIR",
        description="Serve the dashboard over the run and sweep folders under --runs; it only "
        "reads. A host other than 127.0.0.1 needs --host and then a token (printed if not given).",
    )
    dashboard.add_argument("--runs", type=Path, default=Path("out"), help="default: out")
    dashboard.add_argument("--port", type=int, default=8502, help="default: 8502")
    dashboard.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    dashboard.add_argument("--token", help="required from other hosts (default: a random one)")
    report = commands.add_parser(
        "report",
        help="a performance, trade or sweep report from the logs, as markdown or one HTML file",
        description="Write a report from the durable logs under --runs: markdown with PNG "
        "figures, or one self-contained HTML file that opens offline.",
    )
    report.add_argument(
        "--type", dest="kind", default="performance", help="performance|trade|sweep"
    )
    report.add_argument("--runs", type=Path, default=Path("out"), help="default: out")
    report.add_argument("--run-id", help="the run (trade) or sweep (sweep); default: the latest")
    report.add_argument("--limit", type=int, default=5, help="performance: runs compared (5)")
    report.add_argument("--format", dest="fmt", default="md", help="md|html (default md)")
    report.add_argument("--output-dir", type=Path, default=Path("reports"), help="default: reports")
    collect = commands.add_parser(
        "collect",
        help="collect every run published to Redis Streams into central run folders",
        description="Read every run stream on the broker through a consumer group into a "
        "central run folder per run under --out, then into the sinks from KEY=VALUE.",
    )
    collect.add_argument("--broker", required=True, help="redis://HOST:PORT")
    collect.add_argument(
        "--out", type=Path, default=Path("out/collected"), help="default: out/collected"
    )
    collect.add_argument("overrides", nargs="*", metavar="KEY=VALUE")


def run(args: argparse.Namespace) -> int:
    """Run the parsed command ``args.command`` (one of ``NAMES``); returns the exit status."""
    if args.command == "dashboard":
        from telemetry.dashboard.cli import serve

        if not 0 < args.port < 65536:
            raise ConfigError(f"--port must be between 1 and 65535, not {args.port}")
        return serve(args.runs, host=args.host, port=args.port, token=args.token)
    if args.command == "report":
        return _report(args)
    from telemetry.collector.cli import collect

    return collect(args.broker, out=args.out, overrides=list(args.overrides))


def _report(args: argparse.Namespace) -> int:
    if args.kind not in REPORT_TYPES:
        raise ConfigError(f"--type must be one of {', '.join(REPORT_TYPES)}, not {args.kind!r}")
    if args.fmt not in REPORT_FORMATS:
        raise ConfigError(f"--format must be md or html, not {args.fmt!r}")
    if args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, not {args.limit}")
    from telemetry.reports.cli import make_report

    path = make_report(
        args.kind,
        runs=args.runs,
        run_id=args.run_id,
        limit=args.limit,
        fmt=args.fmt,
        output_dir=args.output_dir,
    )
    print(path)
    return 0
