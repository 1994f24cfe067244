"""Chunks of the intake: events built late, equal to the dataclass's own, shared while held."""

from __future__ import annotations

import gc

from telemetry.chunk import RawChunk
from telemetry.events import Evaluation, Metrics


def _chunk() -> tuple[RawChunk, Evaluation]:
    evaluation = Evaluation(
        run_id="r", seq=2, time=5.0, step=3, axis="episode", name="val", values={"x": 1.0}
    )
    items = [{"loss": 0.5, "n": 3}, evaluation, {"loss": 0.25}]
    stamps = [(1, 4.0, 3, "episode"), None, (3, 6.0, 4, "episode")]
    return RawChunk("r", items, stamps), evaluation  # type: ignore[arg-type]


def test_built_events_equal_the_dataclasses_own() -> None:
    chunk, evaluation = _chunk()
    assert (chunk.first_seq, chunk.last_seq, len(chunk)) == (1, 3, 3)
    assert chunk.events() == [
        Metrics(run_id="r", seq=1, time=4.0, step=3, axis="episode", values={"loss": 0.5, "n": 3}),
        evaluation,
        Metrics(run_id="r", seq=3, time=6.0, step=4, axis="episode", values={"loss": 0.25}),
    ]


def test_lanes_share_events_while_one_holds_them_and_rebuild_after() -> None:
    chunk, _ = _chunk()
    first = chunk.events()
    assert chunk.events() is first
    kept = first[0]
    del first
    gc.collect()
    again = chunk.events()
    assert again[0] == kept
    assert again[0] is not kept
