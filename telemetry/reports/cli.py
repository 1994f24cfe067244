"""``python main.py report``: a performance, trade or sweep report as markdown or one HTML file."""

from __future__ import annotations

from pathlib import Path

from telemetry.errors import ConfigError, LogFormatError, write_failure
from telemetry.reader import LOG_NAME
from telemetry.reports.document import Report
from telemetry.reports.runs import RunFolder, find_runs, pick_run, read_run

KINDS = ("performance", "trade", "sweep")
FORMATS = ("md", "html")


def make_report(
    kind: str, *, runs: Path, run_id: str | None, limit: int, fmt: str, output_dir: Path
) -> Path:
    """Write the report of ``kind`` from the logs under ``runs`` into ``output_dir``; its path.

    performance: the last ``limit`` runs (ending at ``run_id`` when given);
    trade: the run ``run_id`` (a run id or run folder name; default the latest
    run with trades); sweep: the sweep ``run_id`` (its id; default the latest).
    ``fmt`` ``md`` writes markdown and PNG figures, ``html`` one self-contained
    file. Bad input raises ``ConfigError`` with one line naming it.
    """
    if kind not in KINDS:
        raise ConfigError(f"--type must be one of {', '.join(KINDS)}, got {kind!r}")
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"--limit must be a whole number of runs, at least 1, got {limit!r}")
    try:
        report, stem = _build(kind, runs, run_id, limit)
    except LogFormatError as exc:
        raise ConfigError(f"--runs: {exc}") from None
    try:
        return _write(report, fmt, output_dir, stem)
    except OSError as exc:
        raise ConfigError(
            f"--output-dir: cannot write {output_dir}: {write_failure(exc)}"
        ) from None


def _write(report: Report, fmt: str, output_dir: Path, stem: str) -> Path:
    # Each kind and format imports only what it needs: matplotlib, empyrical (pandas,
    # scipy) and optuna take seconds each to import.
    if fmt == "md":
        from telemetry.reports.markdown import write_markdown

        return write_markdown(report, output_dir, stem)
    from telemetry.reports.html import write_html

    return write_html(report, output_dir, stem)


def _build(kind: str, runs: Path, run_id: str | None, limit: int) -> tuple[Report, str]:
    if kind == "sweep":
        from telemetry.reports.sweep import pick_sweep, sweep_report

        if not runs.is_dir():
            raise ConfigError(f"--runs: {runs} is not a folder (give the folder holding sweeps)")
        sweep_id, folder = pick_sweep(runs, run_id)
        return sweep_report(folder, f"From the sweep folder {folder}."), f"sweep-{sweep_id}"
    found = find_runs(runs)
    if kind == "trade":
        return _trade(found, run_id)
    if run_id is not None:
        chosen = pick_run(found, run_id)
        found = found[: found.index(chosen) + 1]
    from telemetry.reports.performance import performance_report

    picked = [read_run(folder) for folder in found[-limit:]]
    source = f"From the logs of {len(picked)} runs under {runs}: " + ", ".join(
        f"{run.folder.id}/{LOG_NAME}" for run in picked
    )
    return performance_report(picked, source), "performance"


def _trade(found: list[RunFolder], run_id: str | None) -> tuple[Report, str]:
    from telemetry.reports.trade import trade_report
    from telemetry.stats.trades import load_trades

    if run_id is not None:
        folder = pick_run(found, run_id)
        trades = load_trades(folder.path)
        if not trades:
            raise ConfigError(
                f"--run-id: run {run_id!r} has no trade events "
                "(a trade report needs a trainer that publishes trades, such as trainer=erl)"
            )
    else:
        for folder in reversed(found):
            trades = load_trades(folder.path)
            if trades:
                break
        else:
            raise ConfigError(
                "--type trade: no run under the runs folder has trade events "
                "(trainer=erl publishes them)"
            )
    run = read_run(folder)
    source = f"From the log {folder.path / LOG_NAME} ({len(trades):,} trade events)."
    return trade_report(run, trades, source), f"trade-{folder.run_id}"
