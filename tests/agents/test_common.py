"""The trainers' shared pieces (agents.common)."""

from __future__ import annotations

import agents.common
import telemetry.checks


def test_the_range_check_is_importable_from_agents_common() -> None:
    """Trainers written against ``agents.common`` keep the range check of ``telemetry.checks``."""
    for name in ("Interval", "POSITIVE", "NON_NEGATIVE", "UNIT", "at_least", "check_number"):
        assert getattr(agents.common, name) is getattr(telemetry.checks, name)
