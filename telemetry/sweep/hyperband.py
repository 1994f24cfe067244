"""W&B's hyperband stopping rule (``early_terminate: {type: hyperband}``), as SWEEPS.md states it.

Checked against W&B's engine (``wandb/sweeps``, ``src/sweeps/hyperband_stopping.py``): every
run with values counts in a band's threshold, the running run being judged included; "best so
far" is the best value of the whole history, not only up to the band; a threshold index below
``eta`` runs is 0 (the band's best value), so a run alone at a band is never stopped.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

from telemetry.errors import ConfigError

# W&B's engine lists this many min_iter bands (k = 0..99): far past any run's length, so the
# bound never changes a decision, and the thresholds stay cheap.
_MIN_ITER_BANDS = 100


def hyperband_bands(
    *,
    eta: int = 3,
    min_iter: int | None = None,
    max_iter: int | None = None,
    s: int | None = None,
    limit: int = _MIN_ITER_BANDS,
) -> tuple[int, ...]:
    """The bands (iteration counts at which runs are compared), ascending.

    ``min_iter`` form: ``min_iter * eta**k`` for k = 0 .. ``limit`` - 1; ``limit`` is a number
    of bands, 100 as in W&B's engine. ``max_iter`` form (needs ``s``): the integer parts >= 1 of
    ``max_iter / eta**k`` for k = 1 .. s, sorted; ``max_iter`` itself is not a band
    (max_iter=27, s=2, eta=3 gives (3, 9)). When both forms are given, ``max_iter`` wins, as in
    W&B's engine. Raises ``ConfigError`` for an eta below 2, a missing form or no band at all.
    """
    if eta < 2:
        raise ConfigError(f"early_terminate.eta must be an integer >= 2, got {eta}")
    if max_iter is not None:
        if s is None:
            raise ConfigError("early_terminate.max_iter needs s (how many bands below it)")
        # Integer division is exact; W&B divides floats repeatedly, which agrees for the
        # integers the schema allows.
        bands = sorted(max_iter // eta**k for k in range(1, s + 1) if max_iter // eta**k >= 1)
        if not bands:
            raise ConfigError(
                f"early_terminate gives no band: max_iter={max_iter} divided by eta={eta} "
                f"s={s} times is below 1; increase max_iter or s, or decrease eta"
            )
        return tuple(bands)
    if min_iter is not None:
        if min_iter < 1:
            raise ConfigError(f"early_terminate.min_iter must be >= 1, got {min_iter}")
        return tuple(min_iter * eta**k for k in range(limit))
    raise ConfigError("early_terminate needs min_iter, or max_iter with s")


def runs_to_stop(
    histories: Mapping[str, Sequence[float]],
    running: Collection[str],
    *,
    bands: Sequence[int],
    eta: int,
    strict: bool,
    maximize: bool,
) -> set[str]:
    """The running runs W&B's rule stops now.

    histories: every run of the sweep (any state), the metric values in logging order. Only
    finite values count (an iteration is the n-th finite value); they are negated for
    ``maximize`` so that lower is better. Runs in ``running`` are judged against the largest
    band they reached: with ``strict`` their value at that band, otherwise their best value so
    far, stopped when it is strictly worse than the band's threshold.
    """
    sign = -1.0 if maximize else 1.0
    cleaned = {
        name: [sign * v for v in values if math.isfinite(v)] for name, values in histories.items()
    }
    ordered = sorted(bands)
    thresholds = {band: _threshold(cleaned.values(), band, eta) for band in ordered}
    stopped: set[str] = set()
    for name in running:
        history = cleaned.get(name, [])
        reached = [band for band in ordered if band <= len(history)]
        if not reached:
            continue
        band = reached[-1]
        value = history[band - 1] if strict else min(history)
        if value > thresholds[band]:
            stopped.add(name)
    return stopped


def _threshold(histories: Collection[Sequence[float]], band: int, eta: int) -> float:
    """The value a run must not exceed at ``band``: the top 1/eta cut over runs that reached it."""
    values = sorted(history[band - 1] for history in histories if len(history) >= band)
    if not values:
        return math.inf
    # Exact integer division, as SWEEPS.md writes it; W&B multiplies by the float 1/eta, which
    # for a few etas (49, 98, 103, ...) rounds down one place (49 runs at eta 49: index 0).
    return values[len(values) // eta]
