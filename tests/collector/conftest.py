"""Fixtures of the collector tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.collector.common import reap


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    """No producer, collector or deliverer outlives its test."""
    yield
    reap()
