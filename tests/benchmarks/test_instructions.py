"""The instruction-count benchmark runs end to end under callgrind (PPO's small config)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.long
@pytest.mark.timeout(600)
def test_quick_run_counts_both_placements(tmp_path: Path) -> None:
    """``benchmarks/instructions.py --quick`` counts the memory-only and the sidecar run."""
    if shutil.which("valgrind") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("valgrind is missing: apt-get install valgrind")
        pytest.skip("valgrind is not installed: apt-get install valgrind")
    out = tmp_path / "instructions.json"
    script = ROOT / "benchmarks" / "instructions.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    ppo = json.loads(out.read_text())["ppo"]
    assert ppo["mem_instructions"] > 1e7
    assert ppo["side_instructions"] > 1e7
    assert ppo["events"] > 0
    # The log and the sidecar's lane cost the training process something, never a double.
    assert 0 < ppo["side_overhead_pct"] < 100
    assert "instructions in the training process" in done.stdout
