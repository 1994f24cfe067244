"""The soak, scaled down: ~20 s of publishing with W&B down 3 s in every 10 s; nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.reliability.common import ROOT, cli_env


def _soak(*args: str, timeout: float = 240) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.reliability.soak", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=cli_env(),
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no figures (exit {result.returncode}):\n{result.stderr[-3000:]}"
    figures: dict[str, object] = json.loads(lines[-1])
    figures["returncode"] = result.returncode
    return figures


def test_short_soak_with_wandb_outages_loses_nothing() -> None:
    """20 s, W&B refusing connections 3 s in every 10 s: log, memory and W&B get each event once."""
    figures = _soak("--seconds", "20", "--cycle", "10", "--down", "3", "--tail", "5")
    print(f"\n[soak-short] {json.dumps(figures)}")
    assert figures["failures"] == []
    assert figures["returncode"] == 0
    assert len(figures["outages"]) == 2  # type: ignore[arg-type]
    assert figures["published_while_down"] > 0  # type: ignore[operator]
    assert figures["wandb_steps_lost"] == figures["wandb_steps_twice"] == 0
    assert figures["deadline_met"] is True


@pytest.mark.long  # 28 s to show a known limit: in make test-long
@pytest.mark.xfail(
    strict=True,
    reason="sinks/wandb_sink.py cannot tell that wandb-core gave up its file stream: an outage "
    "longer than wandb-core's retry budget (online_env's fast settings: 6 attempts 1 s apart) "
    "loses every later W&B row silently, and the close report counts them delivered",
)
def test_outage_longer_than_the_clients_retry_budget_loses_nothing() -> None:
    """W&B down 12 s, longer than wandb-core's file-stream retries: every row still arrives."""
    figures = _soak(
        "--seconds", "16", "--cycle", "16", "--down", "12", "--tail", "5", "--wandb-retries", "5"
    )
    print(f"\n[soak-long-outage] {json.dumps(figures)}")
    assert figures["failures"] == []
