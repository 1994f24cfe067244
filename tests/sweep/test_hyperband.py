"""W&B's hyperband rule: the bands of both forms, hand-worked stops, and a brute-force twin."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.errors import ConfigError
from telemetry.sweep.hyperband import hyperband_bands, runs_to_stop

NAN = math.nan
INF = math.inf

# --- bands -----------------------------------------------------------------------------------


def test_min_iter_bands_multiply_by_eta() -> None:
    """The min_iter form gives min_iter * eta**k, 100 bands as in W&B's engine."""
    bands = hyperband_bands(min_iter=1)
    assert bands[:4] == (1, 3, 9, 27)
    assert len(bands) == 100
    assert hyperband_bands(min_iter=2, eta=2)[:5] == (2, 4, 8, 16, 32)


def test_min_iter_bands_stop_at_limit() -> None:
    """The limit is a number of bands."""
    assert hyperband_bands(min_iter=3, eta=2, limit=4) == (3, 6, 12, 24)


def test_max_iter_bands_divide_down_and_leave_out_max_iter() -> None:
    """The max_iter form divides s times, keeps integer parts >= 1, sorted, without max_iter."""
    assert hyperband_bands(max_iter=27, s=2, eta=3) == (3, 9)
    assert hyperband_bands(max_iter=27, s=3, eta=3) == (1, 3, 9)
    assert hyperband_bands(max_iter=27, s=5) == (1, 3, 9)  # 27/81 < 1 is dropped
    assert hyperband_bands(max_iter=100, s=3, eta=2) == (12, 25, 50)
    assert hyperband_bands(max_iter=10, s=2) == (1, 3)  # 10/3 = 3.33, 10/9 = 1.11


def test_max_iter_wins_over_min_iter() -> None:
    """Both forms given: max_iter is used, as W&B's engine does."""
    assert hyperband_bands(max_iter=27, s=2, min_iter=5) == (3, 9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_iter": 1, "eta": 1}, "eta"),
        ({}, "min_iter"),
        ({"max_iter": 27}, "needs s"),
        ({"max_iter": 2, "s": 1}, "no band"),
        ({"min_iter": 0}, "min_iter"),
    ],
)
def test_bad_band_settings_are_refused(kwargs: dict[str, int], match: str) -> None:
    """An eta below 2, no form, max_iter without s, or no band at all is a ConfigError."""
    with pytest.raises(ConfigError, match=match):
        hyperband_bands(**kwargs)


# --- hand-worked stops -----------------------------------------------------------------------

# min_iter=1, eta=3: bands 1, 3, 9, ...; f1 and f2 are finished.
HAND = {
    "f1": [5.0, 4.0, 3.0, 2.0],
    "f2": [6.0, 5.0, 4.0],
    "r1": [7.0, 3.0, 6.0],
    "r2": [8.0],
    "r3": [5.0, 5.0, 2.0],
}
HAND_RUNNING = {"r1", "r2", "r3"}


def test_min_iter_strict() -> None:
    """Strict compares the value at the band reached."""
    # band 1: [5, 5, 6, 7, 8][5 // 3 = 1] = 5; band 3: [2, 3, 4, 6][4 // 3 = 1] = 3.
    # r2 (band 1): 8 > 5 stop; r1 (band 3): 6 > 3 stop; r3: 2 <= 3; f2 (4 > 3) is finished.
    bands = hyperband_bands(min_iter=1, eta=3)
    got = runs_to_stop(HAND, HAND_RUNNING, bands=bands, eta=3, strict=True, maximize=False)
    assert got == {"r1", "r2"}


def test_min_iter_not_strict() -> None:
    """Not strict compares the best value of the whole history."""
    # Thresholds as above. r2: best 8 > 5 stop; r1: best 3 <= 3 kept; r3: best 2 kept.
    bands = hyperband_bands(min_iter=1, eta=3)
    got = runs_to_stop(HAND, HAND_RUNNING, bands=bands, eta=3, strict=False, maximize=False)
    assert got == {"r2"}


def test_maximize_negates() -> None:
    """With maximize, higher is better: the same histories stop other runs."""
    # Negated: band 1: [-8, -7, -6, -5, -5][1] = -7; band 3: [-6, -4, -3, -2][1] = -4.
    # r2: -8 <= -7 kept; r1: strict -6 <= -4, best -7, kept; r3: strict -2 > -4 stop,
    # best -5 <= -4 kept.
    bands = hyperband_bands(min_iter=1, eta=3)
    strict = runs_to_stop(HAND, HAND_RUNNING, bands=bands, eta=3, strict=True, maximize=True)
    loose = runs_to_stop(HAND, HAND_RUNNING, bands=bands, eta=3, strict=False, maximize=True)
    assert strict == {"r3"}
    assert loose == set()


def test_maximize_of_negated_histories_is_minimize() -> None:
    """Maximizing -x stops exactly the runs minimizing x stops."""
    negated = {name: [-v for v in values] for name, values in HAND.items()}
    bands = hyperband_bands(min_iter=1, eta=3)
    for strict in (True, False):
        assert runs_to_stop(
            negated, HAND_RUNNING, bands=bands, eta=3, strict=strict, maximize=True
        ) == runs_to_stop(HAND, HAND_RUNNING, bands=bands, eta=3, strict=strict, maximize=False)


# W&B's own docstring example plus g: max_iter=5, eta=2, s=2: bands 1 (5 // 4), 2 (5 // 2).
MAX_ITER = {
    "a": [10.0, 9.0],  # finished
    "b": [10.0, 10.0],
    "c": [10.0, 8.0, 8.0],
    "d": [10.0, 7.0, 7.0],
    "e": [10.0, 6.0, 6.0],  # finished
    "g": [7.0, 10.0],
}
MAX_ITER_RUNNING = {"b", "c", "d", "g"}


def test_max_iter_form_strict_and_not() -> None:
    """The max_iter form's bands stop the runs worked out by hand."""
    # band 1: [7, 10, 10, 10, 10, 10][6 // 2 = 3] = 10; band 2: [6, 7, 8, 9, 10, 10][3] = 9.
    # All running runs are at band 2. strict: b 10 > 9 stop, c 8, d 7 kept, g 10 > 9 stop.
    # not strict: b best 10 > 9 stop, g best 7 kept.
    bands = hyperband_bands(max_iter=5, s=2, eta=2)
    assert bands == (1, 2)
    strict = runs_to_stop(
        MAX_ITER, MAX_ITER_RUNNING, bands=bands, eta=2, strict=True, maximize=False
    )
    loose = runs_to_stop(
        MAX_ITER, MAX_ITER_RUNNING, bands=bands, eta=2, strict=False, maximize=False
    )
    assert strict == {"b", "g"}
    assert loose == {"b"}


def test_nan_and_inf_are_not_iterations() -> None:
    """Non-finite values are dropped before counting iterations."""
    # min_iter=2, eta=2. a's finite history is [9, 8]: band 2, not band 4.
    # band 2: [1, 2, 8][3 // 2 = 1] = 2, so a (8 > 2) is stopped. d's finite history is [100]:
    # below band 2, kept. Were NaN counted, a would sit alone at band 4 and be kept.
    histories = {
        "a": [NAN, 9.0, INF, 8.0],
        "b": [3.0, 2.0],
        "c": [4.0, 1.0],
        "d": [NAN, NAN, 100.0, -INF],
    }
    bands = hyperband_bands(min_iter=2, eta=2)
    got = runs_to_stop(histories, {"a", "d"}, bands=bands, eta=2, strict=True, maximize=False)
    assert got == {"a"}


def test_run_below_first_band_is_never_stopped() -> None:
    """A run with fewer values than the first band is not judged, however bad."""
    # min_iter=3: band 3 is [1, 1][2 // 3 = 0] = 1; "slow" has two values only.
    histories = {"x": [1.0, 1.0, 1.0], "y": [1.0, 1.0, 1.0], "slow": [1e9, 1e9]}
    bands = hyperband_bands(min_iter=3)
    for strict in (True, False):
        got = runs_to_stop(histories, {"slow"}, bands=bands, eta=3, strict=strict, maximize=False)
        assert got == set()


def test_finished_runs_set_thresholds_but_are_never_returned() -> None:
    """Finished runs count in the thresholds; only running ones are stopped."""
    # min_iter=1, eta=2: band 1 is [1, 2, 3, 9][4 // 2 = 2] = 3. Running r (9) is stopped;
    # finished f (also 9) is not returned, nor is an unknown running name.
    histories = {"f1": [1.0], "f2": [2.0], "f3": [3.0], "f": [9.0], "r": [9.0]}
    bands = hyperband_bands(min_iter=1, eta=2)
    got = runs_to_stop(histories, {"r", "ghost"}, bands=bands, eta=2, strict=True, maximize=False)
    assert got == {"r"}


def test_run_alone_at_a_band_is_kept() -> None:
    """With fewer runs than eta at a band, the threshold is the band's best value."""
    # band 1: [5, 7][2 // 3 = 0] = 5: the leader is its own threshold and kept; 7 > 5 stopped.
    histories = {"lead": [5.0], "other": [7.0]}
    bands = hyperband_bands(min_iter=1)
    got = runs_to_stop(
        histories, {"lead", "other"}, bands=bands, eta=3, strict=True, maximize=False
    )
    assert got == {"other"}


# --- brute force -----------------------------------------------------------------------------


def brute_force(
    histories: Mapping[str, Sequence[float]],
    running: set[str],
    bands: Sequence[int],
    eta: int,
    strict: bool,
    maximize: bool,
) -> set[str]:
    """The rule restated without negation or sorting: worse than enough band values."""

    def worse(x: float, y: float) -> bool:
        return x < y if maximize else x > y

    finite = {
        n: [v for v in h if not (math.isnan(v) or math.isinf(v))] for n, h in histories.items()
    }
    stopped = set()
    for name in running:
        mine = finite.get(name, [])
        band = 0
        for b in bands:
            if len(mine) >= b:
                band = max(band, b)
        if band == 0:
            continue
        at_band = [h[band - 1] for h in finite.values() if len(h) >= band]
        best = max(mine) if maximize else min(mine)
        value = mine[band - 1] if strict else best
        # value > sorted(at_band)[k] holds exactly when more than k band values beat it.
        beaten_by = sum(1 for other in at_band if worse(value, other))
        if beaten_by > len(at_band) // eta:
            stopped.add(name)
    return stopped


values = st.one_of(
    st.integers(-4, 4).map(float),
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from([NAN, INF, -INF]),
)
sweeps = st.dictionaries(
    st.sampled_from([f"run{i}" for i in range(8)]),
    st.tuples(st.lists(values, max_size=12), st.booleans()),
    max_size=8,
)
band_forms = st.one_of(
    st.builds(
        lambda m, e: (hyperband_bands(min_iter=m, eta=e, limit=6), e),
        st.integers(1, 3),
        st.integers(2, 4),
    ),
    st.builds(
        lambda m, s, e: (hyperband_bands(max_iter=m, s=s, eta=e), e),
        st.integers(8, 30),
        st.integers(1, 3),
        st.integers(2, 3),
    ),
)


@settings(max_examples=400, deadline=None)
@given(sweeps, band_forms, st.booleans(), st.booleans())
def test_matches_brute_force(
    sweep: dict[str, tuple[list[float], bool]],
    form: tuple[tuple[int, ...], int],
    strict: bool,
    maximize: bool,
) -> None:
    """On random sweeps, runs_to_stop stops exactly what the brute-force restatement stops."""
    bands, eta = form
    histories = {name: history for name, (history, _) in sweep.items()}
    running = {name for name, (_, is_running) in sweep.items() if is_running}
    got = runs_to_stop(histories, running, bands=bands, eta=eta, strict=strict, maximize=maximize)
    assert got == brute_force(histories, running, bands, eta, strict, maximize)
    assert got <= running
