"""The central log: single-rank runs copied as they are, ranks restamped with markers, and
which (rank, seq) it holds read back from the file itself, torn writes included."""

from __future__ import annotations

import time
from pathlib import Path

from telemetry.collector.central import CentralLog
from telemetry.events import Event, Hyperparameters, Metrics, RunStarted
from telemetry.reader import LogReader
from tests.collector.common import origins


def _events(run_id: str, seqs: range, rank: int = 0) -> list[Event]:
    return [
        Metrics(run_id=run_id, seq=s, time=time.time(), step=s, axis="step", values={"x": s + rank})
        for s in seqs
    ]


def _append(log: CentralLog, rank: int, events: list[Event]) -> None:
    with log.locked():
        held = log.held.get(rank, 0)
        log.append(rank, [e for e in events if e.seq > held])


def test_a_single_rank_run_is_copied_with_its_own_seqs(tmp_path: Path) -> None:
    """Rank 0 alone: the central log is the producer's events, seq for seq."""
    log = CentralLog(tmp_path / "r", "r")
    _append(log, 0, _events("r", range(1, 11)))
    _append(log, 0, _events("r", range(5, 16)))  # a redelivery overlapping what it holds
    assert [e.seq for e in LogReader(tmp_path / "r")] == list(range(1, 16))
    assert CentralLog(tmp_path / "r", "r").held == {}  # nothing read until locked
    again = CentralLog(tmp_path / "r", "r")
    with again.locked():
        assert again.held == {0: 15}


def test_ranks_are_restamped_and_their_origin_recovered(tmp_path: Path) -> None:
    """With two ranks, lines get central seqs and the markers give each line's origin back;
    another rank's run_started and hyperparameters are consumed without a line."""
    log = CentralLog(tmp_path / "m", "m")
    start = RunStarted(run_id="m", seq=1, time=0.0, name="n", project="p")
    params = Hyperparameters(run_id="m", seq=2, time=0.0, values={"lr": 1})
    _append(log, 0, [start, *_events("m", range(2, 6))])
    _append(log, 1, [start, params, *_events("m", range(3, 6), rank=1)])
    _append(log, 0, _events("m", range(6, 8)))
    found = [(rank, seq) for rank, seq, _ in origins(tmp_path / "m" / "events.jsonl")]
    assert found == [(0, s) for s in range(1, 6)] + [(1, s) for s in (3, 4, 5)] + [(0, 6), (0, 7)]
    reread = CentralLog(tmp_path / "m", "m")
    with reread.locked():
        assert reread.held == {0: 7, 1: 5}
    lines = [e for _, _, e in origins(tmp_path / "m" / "events.jsonl")]
    keys = {k for e in lines if isinstance(e, Metrics) for k in e.values}
    assert keys == {"x", "rank1/x"}


def test_a_torn_write_is_cut_and_only_what_survived_counts_as_held(tmp_path: Path) -> None:
    """A write killed half-way: the next writer cuts the torn line, the log holds the
    surviving prefix, and the rest is written once when it comes again."""
    log = CentralLog(tmp_path / "t", "t")
    _append(log, 0, _events("t", range(1, 3)))
    _append(log, 1, _events("t", range(1, 11), rank=1))
    path = tmp_path / "t" / "events.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])  # the last lines gone, one torn
    restarted = CentralLog(tmp_path / "t", "t")
    _append(restarted, 1, _events("t", range(1, 11), rank=1))
    ranks = [(rank, seq) for rank, seq, _ in origins(path)]
    assert ranks == [(0, 1), (0, 2)] + [(1, s) for s in range(1, 11)]
    assert not LogReader(path).problems
    assert len(list(LogReader(path))) == 2 + 10 + 2  # a second marker for the rest


def test_a_delivered_run_gets_no_deliverer_again(tmp_path: Path) -> None:
    """A central log that ends with run_finished and whose every sink cursor is there is
    delivered; one with a sink behind, or no end yet, is not."""
    from telemetry.collector.supervisor import delivered
    from telemetry.events import RunFinished

    log = CentralLog(tmp_path / "d", "d")
    _append(log, 0, _events("d", range(1, 4)))
    cursors = tmp_path / "d" / ".collector" / "cursors"
    cursors.mkdir(parents=True)
    (cursors / "wandb.json").write_text('{"seq": 4}')
    assert not delivered(tmp_path / "d", ["wandb"])  # no run_finished yet
    _append(log, 0, [RunFinished(run_id="d", seq=4, time=0.0, status="finished")])
    assert delivered(tmp_path / "d", ["wandb"])
    assert not delivered(tmp_path / "d", ["wandb", "tensorboard"])
