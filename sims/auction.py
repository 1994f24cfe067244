"""An ad-auction simulator for PPO: one day of second-price auctions under a budget.

In the spirit of GAELP (a performance-marketing RL environment), but small, vectorised with
numpy and deterministic under a seed.

The day
    An episode is one day of ``steps_per_episode`` slots (48 half-hour slots by default) and a
    ``daily_budget``. In each slot a batch of ``impressions_per_step`` impression opportunities
    arrives. The observation describes that batch *before* the agent acts; the action picks one
    bid multiplier for the whole batch; ``step`` runs the batch's auctions, then draws the next
    batch. The episode terminates (``terminated=True``) after the last slot of the day; it never
    truncates. Once the budget is spent no more auctions are won, but the day runs to its end,
    so every episode has exactly ``steps_per_episode`` steps.

Context of one impression (a row of ``contexts``, see ``CONTEXT_FIELDS``)
    user segment (one-hot among 4), mobile flag, hour of day (slot midpoint, in [0, 24)) and a
    query-intent score in (0, 1). Each slot has its own segment mix (Dirichlet around
    ``segment_mix``) and its own mean intent (an hour-of-day profile peaking in the evening,
    plus slot-level noise), so batches differ in value from slot to slot.

Bids and auctions
    The agent's bid for an impression is ``multiplier * base_bid * segment_base_value[segment]``:
    a per-segment prior value that knows nothing of intent or hour. The highest competing bid
    is lognormal with a log-mean that rises with intent (weakly), segment and business hours
    (competition peaks around 13:00, while user intent peaks around 20:00). Second-price
    auction: the agent wins when its bid exceeds the competing bid and pays the competing bid.
    Impressions are processed in arrival order; an impression can be won only while the money
    spent before it is below the daily budget, so the day's cost never exceeds the budget by
    more than one second price.

Click and conversion model (the "true" model; ``make_calibration_data`` samples it too)
    ``P(click) = sigmoid(features(contexts, bids) @ config.ctr_weights)`` where ``features``
    gives [segment one-hot (4), mobile, sin(hour), cos(hour), intent, log(bid)]: the log-bid
    term is a position effect (a higher bid buys a better slot and so a higher CTR).
    ``P(conversion | click) = sigmoid(cvr_segment_logits[segment] + cvr_intent * intent +
    cvr_mobile * mobile)``. Each conversion earns ``segment_revenue[segment]``.

Action space (the choice)
    ``Discrete(n_bid_levels)``: level ``k`` is the multiplier
    ``k * max_bid_multiplier / (n_bid_levels - 1)``, so level 0 means "do not bid" and the top
    level is ``max_bid_multiplier`` (2.5 by default, 9 levels: 0, 0.3125, ..., 2.5). A small
    discrete set keeps PPO's categorical policy simple and exploration well behaved;
    ``bid_multipliers`` maps levels to multipliers.

Reward
    Profit of the slot, ``(revenue - cost) / reward_scale``. With the defaults (scale 100.0,
    budget 600.0) a slot's reward is mostly within [-1, +1]: over-bidding on a low-intent slot
    costs about -0.1 to -1, a good slot earns about +0.1 to +1 and a rare rich evening slot a
    few units. Over a day, ``heuristic_action`` earns about +7 and uniformly random bidding
    about 0 (averaged over seeds 0-19). Unscaled money is in ``info``.

Observation (``OBS_FIELDS``, float32, all within ``observation_space``)
    The arriving batch's segment shares (4), mean intent, mobile share, sin/cos of the hour;
    remaining budget fraction, remaining time fraction; exponentially smoothed recent CTR,
    conversion rate, win rate and cost per won impression relative to ``base_bid``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, SupportsFloat, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
"""A float64 numpy array."""

ObsArray = NDArray[np.float32]
"""An observation: a float32 vector of length ``len(OBS_FIELDS)``."""

N_SEGMENTS: Final = 4
"""Number of user segments."""

CONTEXT_FIELDS: Final = (
    "segment_0",
    "segment_1",
    "segment_2",
    "segment_3",
    "mobile",
    "hour",
    "intent",
)
"""Columns of a context matrix: segment one-hot, mobile flag (0/1), hour in [0, 24), intent."""

CTX_MOBILE: Final = 4
"""Column of the mobile flag in a context matrix."""

CTX_HOUR: Final = 5
"""Column of the hour of day in a context matrix."""

CTX_INTENT: Final = 6
"""Column of the intent score in a context matrix."""

FEATURE_FIELDS: Final = (
    "segment_0",
    "segment_1",
    "segment_2",
    "segment_3",
    "mobile",
    "hour_sin",
    "hour_cos",
    "intent",
    "log_bid",
)
"""Columns returned by ``features``; ``AuctionConfig.ctr_weights`` follows the same order."""

MIN_BID: Final = 1e-3
"""Bids below this are treated as this in ``features`` (so log(bid) stays finite)."""

OBS_FIELDS: Final = (
    "segment_share_0",
    "segment_share_1",
    "segment_share_2",
    "segment_share_3",
    "mean_intent",
    "mobile_share",
    "hour_sin",
    "hour_cos",
    "budget_left",
    "time_left",
    "recent_ctr",
    "recent_cvr",
    "recent_win_rate",
    "recent_cost_ratio",
)
"""Names of the observation entries, in order."""

OBS_MEAN_INTENT: Final = 4
"""Index of the batch's mean intent in an observation."""

OBS_BUDGET_LEFT: Final = 8
"""Index of the remaining budget fraction in an observation."""

OBS_TIME_LEFT: Final = 9
"""Index of the remaining time fraction in an observation."""

MAX_COST_RATIO: Final = 10.0
"""Upper clip of the ``recent_cost_ratio`` observation entry."""

_OBS_LOW = np.array([0, 0, 0, 0, 0, 0, -1, -1, 0, 0, 0, 0, 0, 0], dtype=np.float32)
_OBS_HIGH = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, MAX_COST_RATIO], dtype=np.float32)
_INTENT_PEAK_HOUR = 20.0
_INTENT_PEAK_WIDTH = 3.0
_COMPETITION_PEAK_HOUR = 13.0
_COMPETITION_PEAK_WIDTH = 3.5
_INTENT_CLIP = (0.03, 0.97)


def _tuple_field(*values: float) -> Any:
    """A dataclass field whose default is the given tuple of floats."""
    return field(default=tuple(float(v) for v in values))


@dataclass(frozen=True, slots=True)
class AuctionConfig:
    """Every knob of the simulator; validated on construction (ValueError names the field)."""

    impressions_per_step: int = 100
    """Impression opportunities arriving in each slot (>= 1)."""
    steps_per_episode: int = 48
    """Slots in one day, i.e. steps per episode (>= 1); 48 means half-hour slots."""
    daily_budget: float = 600.0
    """Money the agent may spend in one day (> 0)."""
    n_bid_levels: int = 9
    """Size of the discrete action space (>= 2); level 0 is 'do not bid'."""
    max_bid_multiplier: float = 2.5
    """Multiplier of the top bid level (> 0)."""
    base_bid: float = 1.0
    """Bid per impression at multiplier 1 for a segment of base value 1 (> 0)."""
    reward_scale: float = 100.0
    """Reward is (revenue - cost) / reward_scale (> 0)."""
    segment_mix: tuple[float, ...] = _tuple_field(0.4, 0.3, 0.2, 0.1)
    """Mean share of each segment in arriving traffic (4 values >= 0, summing to 1)."""
    segment_concentration: float = 20.0
    """Dirichlet concentration of a slot's segment mix around segment_mix (> 0)."""
    segment_base_value: tuple[float, ...] = _tuple_field(0.5, 0.8, 1.2, 2.0)
    """Per-segment prior value scaling base_bid (4 values > 0); blind to intent and hour."""
    segment_revenue: tuple[float, ...] = _tuple_field(8.0, 14.0, 25.0, 44.0)
    """Revenue per conversion for each segment (4 values >= 0)."""
    mobile_share: float = 0.6
    """Probability that an impression is on a mobile device (in [0, 1])."""
    intent_base: float = 0.25
    """Mean intent away from the evening peak (in (0, 1))."""
    intent_evening_amplitude: float = 0.35
    """Extra mean intent at the evening peak around 20:00 (in [0, 1), base + it < 1)."""
    intent_slot_noise: float = 0.12
    """Standard deviation of a slot's mean intent around the hour profile (>= 0)."""
    intent_concentration: float = 8.0
    """Beta concentration of per-impression intent around the slot mean (> 0)."""
    ctr_segment_logits: tuple[float, ...] = _tuple_field(-1.9, -1.8, -1.6, -1.7)
    """Click logit intercept per segment (4 finite values)."""
    ctr_mobile: float = -0.2
    """Click logit shift on mobile (finite)."""
    ctr_hour_sin: float = 0.1
    """Click logit coefficient of sin(2 pi hour / 24) (finite)."""
    ctr_hour_cos: float = -0.1
    """Click logit coefficient of cos(2 pi hour / 24) (finite)."""
    ctr_intent: float = 1.5
    """Click logit coefficient of intent (finite)."""
    ctr_log_bid: float = 0.4
    """Position effect: click logit coefficient of log(bid) (>= 0)."""
    cvr_segment_logits: tuple[float, ...] = _tuple_field(-2.9, -2.6, -2.4, -2.2)
    """Conversion-given-click logit intercept per segment (4 finite values)."""
    cvr_intent: float = 4.0
    """Conversion logit coefficient of intent (finite)."""
    cvr_mobile: float = -0.3
    """Conversion logit shift on mobile (finite)."""
    competitor_log_mean: float = -0.6
    """Log-mean of the highest competing bid for segment 0 at intent 0 off-peak (finite)."""
    competitor_segment_shift: tuple[float, ...] = _tuple_field(0.0, 0.35, 0.7, 1.1)
    """Per-segment shift of the competing bid's log-mean (4 finite values)."""
    competitor_intent: float = 0.8
    """Competing bid log-mean coefficient of intent (finite)."""
    competitor_peak_shift: float = 0.5
    """Extra competing bid log-mean in business hours, peaking at 13:00 (finite)."""
    competitor_sigma: float = 0.45
    """Standard deviation of the competing bid's log (> 0)."""
    recent_decay: float = 0.7
    """Smoothing factor of the 'recent' observation rates (in [0, 1))."""

    def __post_init__(self) -> None:
        """Raise ValueError naming the first field outside its allowed range."""
        _check_int(self, "impressions_per_step", 1)
        _check_int(self, "steps_per_episode", 1)
        _check_int(self, "n_bid_levels", 2)
        for name in (
            "daily_budget",
            "max_bid_multiplier",
            "base_bid",
            "reward_scale",
            "segment_concentration",
            "intent_concentration",
            "competitor_sigma",
        ):
            _check_real(self, name, low=0.0, low_open=True)
        _check_real(self, "mobile_share", low=0.0, high=1.0)
        _check_real(self, "intent_base", low=0.0, high=1.0, low_open=True, high_open=True)
        _check_real(self, "intent_evening_amplitude", low=0.0, high=1.0, high_open=True)
        if self.intent_base + self.intent_evening_amplitude >= 1.0:
            raise ValueError(
                "intent_evening_amplitude must be in [0, 1 - intent_base) so that peak intent "
                f"stays below 1, got {self.intent_evening_amplitude!r}"
            )
        _check_real(self, "intent_slot_noise", low=0.0)
        _check_real(self, "ctr_log_bid", low=0.0)
        _check_real(self, "recent_decay", low=0.0, high=1.0, high_open=True)
        for name in (
            "ctr_mobile",
            "ctr_hour_sin",
            "ctr_hour_cos",
            "ctr_intent",
            "cvr_intent",
            "cvr_mobile",
            "competitor_log_mean",
            "competitor_intent",
            "competitor_peak_shift",
        ):
            _check_real(self, name)
        _check_segments(self, "segment_mix", low=0.0)
        if not math.isclose(sum(self.segment_mix), 1.0, abs_tol=1e-6):
            raise ValueError(
                f"segment_mix must sum to 1 (allowed: 4 values >= 0 summing to 1), "
                f"got {self.segment_mix!r}"
            )
        _check_segments(self, "segment_base_value", low=0.0, low_open=True)
        _check_segments(self, "segment_revenue", low=0.0)
        for name in ("ctr_segment_logits", "cvr_segment_logits", "competitor_segment_shift"):
            _check_segments(self, name)

    @property
    def ctr_weights(self) -> FloatArray:
        """Click logit weights, aligned with ``FEATURE_FIELDS`` (a fresh array)."""
        return np.array(
            [
                *self.ctr_segment_logits,
                self.ctr_mobile,
                self.ctr_hour_sin,
                self.ctr_hour_cos,
                self.ctr_intent,
                self.ctr_log_bid,
            ],
            dtype=np.float64,
        )

    @property
    def bid_multipliers(self) -> FloatArray:
        """Bid multiplier of each action level: 0 (no bid) up to ``max_bid_multiplier``."""
        return np.linspace(0.0, self.max_bid_multiplier, self.n_bid_levels)


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """Describe an allowed range, e.g. '> 0' or 'in [0, 1)'."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "finite"


def _check_value(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    what: str = "",
) -> None:
    """Raise ValueError unless ``value`` is a finite real number within the range."""
    allowed = what or _range_text(low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a real number {allowed}, got {value!r}")
    number = float(value)
    ok = math.isfinite(number)
    if ok and low is not None:
        ok = number > low if low_open else number >= low
    if ok and high is not None:
        ok = number < high if high_open else number <= high
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def _check_real(
    config: AuctionConfig,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Validate one real-valued field of ``config``."""
    _check_value(name, getattr(config, name), low, high, low_open, high_open)


def _check_int(config: AuctionConfig, name: str, low: int) -> None:
    """Validate one integer field of ``config`` (>= low)."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_segments(
    config: AuctionConfig, name: str, low: float | None = None, low_open: bool = False
) -> None:
    """Validate a per-segment tuple field of ``config``: 4 finite values within the range."""
    value = getattr(config, name)
    allowed = f"{N_SEGMENTS} values, each {_range_text(low, None, low_open, False)}"
    if not isinstance(value, tuple) or len(value) != N_SEGMENTS:
        raise ValueError(f"{name} must be a tuple of {allowed}, got {value!r}")
    for item in value:
        _check_value(name, item, low=low, low_open=low_open, what=f"a tuple of {allowed}")


_DEFAULT_CONFIG: Final = AuctionConfig()
"""The default configuration, built once."""


# --------------------------------------------------------------------------- the true model


def _sigmoid(x: FloatArray) -> FloatArray:
    """Logistic function, without overflow warnings."""
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


def features(contexts: NDArray[np.floating[Any]], bids: NDArray[np.floating[Any]]) -> FloatArray:
    """Click-model features: [segment one-hot (4), mobile, sin, cos of hour, intent, log bid].

    ``contexts`` is an (n, 7) matrix with columns ``CONTEXT_FIELDS``; ``bids`` holds the n bids
    (money per impression; values below ``MIN_BID`` count as ``MIN_BID``). Returns an (n, 9)
    float64 matrix with columns ``FEATURE_FIELDS``; the true click probability is
    ``sigmoid(features(contexts, bids) @ config.ctr_weights)``.
    """
    ctx = np.asarray(contexts, dtype=np.float64)
    bid = np.asarray(bids, dtype=np.float64)
    if ctx.ndim != 2 or ctx.shape[1] != len(CONTEXT_FIELDS):
        raise ValueError(f"contexts must have shape (n, {len(CONTEXT_FIELDS)}), got {ctx.shape}")
    if bid.shape != (ctx.shape[0],):
        raise ValueError(f"bids must have shape ({ctx.shape[0]},), got {bid.shape}")
    out = np.empty((ctx.shape[0], len(FEATURE_FIELDS)), dtype=np.float64)
    out[:, : CTX_MOBILE + 1] = ctx[:, : CTX_MOBILE + 1]
    angle = ctx[:, CTX_HOUR] * (2.0 * math.pi / 24.0)
    out[:, 5] = np.sin(angle)
    out[:, 6] = np.cos(angle)
    out[:, 7] = ctx[:, CTX_INTENT]
    out[:, 8] = np.log(np.maximum(bid, MIN_BID))
    return out


def click_probability(
    contexts: NDArray[np.floating[Any]],
    bids: NDArray[np.floating[Any]],
    config: AuctionConfig | None = None,
) -> FloatArray:
    """True click probability of each impression given its context and the bid."""
    cfg = config or _DEFAULT_CONFIG
    return _sigmoid(features(contexts, bids) @ cfg.ctr_weights)


def conversion_probability(
    contexts: NDArray[np.floating[Any]], config: AuctionConfig | None = None
) -> FloatArray:
    """True probability that a click converts, given the impression's context."""
    cfg = config or _DEFAULT_CONFIG
    ctx = np.asarray(contexts, dtype=np.float64)
    logit = (
        ctx[:, :N_SEGMENTS] @ np.asarray(cfg.cvr_segment_logits)
        + cfg.cvr_intent * ctx[:, CTX_INTENT]
        + cfg.cvr_mobile * ctx[:, CTX_MOBILE]
    )
    return _sigmoid(logit)


def _hour_bump(hour: float | FloatArray, centre: float, width: float) -> Any:
    """Gaussian bump in circular hour distance from ``centre``."""
    diff = np.abs(np.asarray(hour) - centre)
    dist = np.minimum(diff, 24.0 - diff)
    return np.exp(-0.5 * (dist / width) ** 2)


def _competitor_log_mean(
    config: AuctionConfig, segments: NDArray[np.intp], intent: FloatArray, hour: float
) -> FloatArray:
    """Log-mean of the highest competing bid for each impression."""
    peak = config.competitor_peak_shift * float(
        _hour_bump(hour, _COMPETITION_PEAK_HOUR, _COMPETITION_PEAK_WIDTH)
    )
    shift = np.asarray(config.competitor_segment_shift)[segments]
    out: FloatArray = config.competitor_log_mean + peak + shift + config.competitor_intent * intent
    return out


def _slot_intent_mean(config: AuctionConfig, hour: float, rng: np.random.Generator) -> float:
    """A slot's mean intent: the hour profile plus slot-level noise, clipped into (0, 1)."""
    mean = config.intent_base + config.intent_evening_amplitude * float(
        _hour_bump(hour, _INTENT_PEAK_HOUR, _INTENT_PEAK_WIDTH)
    )
    mean += config.intent_slot_noise * float(rng.standard_normal())
    return min(max(mean, 0.05), 0.95)


@dataclass(frozen=True, slots=True, eq=False)
class _Batch:
    """The impression opportunities of one slot, drawn before the agent acts."""

    contexts: FloatArray
    segments: NDArray[np.intp]
    competitor_bids: FloatArray
    uniforms: FloatArray
    hour: float


def _draw_batch(config: AuctionConfig, hour: float, n: int, rng: np.random.Generator) -> _Batch:
    """Draw ``n`` impressions for a slot at ``hour``, their competing bids and outcome noise."""
    mix = rng.dirichlet(np.asarray(config.segment_mix) * config.segment_concentration + 1e-3)
    segments = np.searchsorted(np.cumsum(mix)[:-1], rng.random(n), side="right")
    mean = _slot_intent_mean(config, hour, rng)
    conc = config.intent_concentration
    intent = np.clip(rng.beta(mean * conc, (1.0 - mean) * conc, size=n), *_INTENT_CLIP)
    contexts = np.zeros((n, len(CONTEXT_FIELDS)), dtype=np.float64)
    contexts[np.arange(n), segments] = 1.0
    contexts[:, CTX_MOBILE] = rng.random(n) < config.mobile_share
    contexts[:, CTX_HOUR] = hour
    contexts[:, CTX_INTENT] = intent
    log_mean = _competitor_log_mean(config, segments, intent, hour)
    competitor = np.exp(log_mean + config.competitor_sigma * rng.standard_normal(n))
    uniforms = rng.random((2, n))
    return _Batch(contexts, segments, competitor, uniforms, hour)


# --------------------------------------------------------------------------- the environment


class AuctionEnv(gym.Env[ObsArray, np.int64]):
    """One day of second-price ad auctions under a budget; see the module docstring."""

    def __init__(self, config: AuctionConfig | None = None) -> None:
        """Build the environment; call ``reset`` before ``step``."""
        self.config = config or _DEFAULT_CONFIG
        cfg = self.config
        self.action_space: spaces.Discrete = spaces.Discrete(cfg.n_bid_levels)
        # Box is typed over float and int arrays; this one only ever holds float32 vectors.
        self.observation_space = cast(
            "spaces.Space[ObsArray]", spaces.Box(_OBS_LOW, _OBS_HIGH, dtype=np.float32)
        )
        self._multipliers = cfg.bid_multipliers
        self._base_value = cfg.base_bid * np.asarray(cfg.segment_base_value)
        self._ctr_weights = cfg.ctr_weights
        self._revenue = np.asarray(cfg.segment_revenue)
        self._hours = 24.0 * (np.arange(cfg.steps_per_episode) + 0.5) / cfg.steps_per_episode
        self._step = 0
        self._spent = 0.0
        self._recent = np.zeros(5)  # smoothed bids, wins, clicks, conversions, cost
        self._batch: _Batch | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsArray, dict[str, Any]]:
        """Start a new day; ``options`` is accepted and ignored. Returns (obs, info)."""
        super().reset(seed=seed, options=options)
        self._step = 0
        self._spent = 0.0
        self._recent = np.zeros(5)
        self._batch = self._next_batch()
        return self._observation(), {"hour": self._batch.hour, "budget_left": 1.0}

    def step(self, action: Any) -> tuple[ObsArray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Bid on the current batch with action level ``action``; see the module docstring."""
        batch = self._batch
        if batch is None:
            raise RuntimeError("call reset() before step()")
        if self._step >= self.config.steps_per_episode:
            raise RuntimeError("the day is over; call reset() to start a new episode")
        level = int(action)
        if not 0 <= level < self.config.n_bid_levels:
            raise ValueError(f"action must be in [0, {self.config.n_bid_levels}), got {action!r}")
        cfg = self.config
        multiplier = float(self._multipliers[level])
        bids = multiplier * self._base_value[batch.segments]
        wins = bids > batch.competitor_bids
        price = np.where(wins, batch.competitor_bids, 0.0)
        # An impression can be won only while the money spent before it is below the budget.
        spent_before = self._spent + np.cumsum(price) - price
        open_ = spent_before < cfg.daily_budget
        wins &= open_
        n_bids = int(np.count_nonzero(open_)) if multiplier > 0.0 else 0
        n_wins = int(np.count_nonzero(wins))
        clicks = 0
        conversions = 0
        cost = 0.0
        revenue = 0.0
        if n_wins:
            ctx = batch.contexts[wins]
            ctr = _sigmoid(features(ctx, bids[wins]) @ self._ctr_weights)
            cvr = conversion_probability(ctx, cfg)
            clicked = batch.uniforms[0, wins] < ctr
            converted = clicked & (batch.uniforms[1, wins] < cvr)
            clicks = int(np.count_nonzero(clicked))
            conversions = int(np.count_nonzero(converted))
            cost = float(price[wins].sum())
            revenue = float(self._revenue[batch.segments[wins][converted]].sum())
        self._spent += cost
        decay = cfg.recent_decay
        self._recent = decay * self._recent + (1.0 - decay) * np.array(
            [n_bids, n_wins, clicks, conversions, cost]
        )
        self._step += 1
        terminated = self._step >= cfg.steps_per_episode
        if not terminated:
            self._batch = self._next_batch()
        reward = (revenue - cost) / cfg.reward_scale
        info: dict[str, Any] = {
            "impressions": n_wins,
            "clicks": clicks,
            "conversions": conversions,
            "cost": cost,
            "revenue": revenue,
            "bids": n_bids,
            "wins": n_wins,
            "multiplier": multiplier,
            "hour": batch.hour,
            "budget_left": self._budget_left(),
        }
        return self._observation(), reward, terminated, False, info

    @property
    def spent(self) -> float:
        """Money spent so far today."""
        return self._spent

    def _budget_left(self) -> float:
        """Remaining budget as a fraction of the daily budget, in [0, 1]."""
        return max(0.0, 1.0 - self._spent / self.config.daily_budget)

    def _next_batch(self) -> _Batch:
        """Draw the impressions of the current slot."""
        hour = float(self._hours[min(self._step, self.config.steps_per_episode - 1)])
        return _draw_batch(self.config, hour, self.config.impressions_per_step, self.np_random)

    def _observation(self) -> ObsArray:
        """The observation for the current batch and pacing state."""
        batch = self._batch
        assert batch is not None
        cfg = self.config
        n = cfg.impressions_per_step
        ctx = batch.contexts
        obs = np.empty(len(OBS_FIELDS), dtype=np.float64)
        obs[:N_SEGMENTS] = np.bincount(batch.segments, minlength=N_SEGMENTS) / n
        obs[OBS_MEAN_INTENT] = ctx[:, CTX_INTENT].mean()
        obs[5] = ctx[:, CTX_MOBILE].mean()
        angle = batch.hour * (2.0 * math.pi / 24.0)
        obs[6] = math.sin(angle)
        obs[7] = math.cos(angle)
        obs[OBS_BUDGET_LEFT] = self._budget_left()
        obs[OBS_TIME_LEFT] = 1.0 - self._step / cfg.steps_per_episode
        bids, wins, clicks, conversions, cost = (float(v) for v in self._recent)
        obs[10] = clicks / wins if wins > 0.0 else 0.0
        obs[11] = conversions / clicks if clicks > 0.0 else 0.0
        obs[12] = wins / bids if bids > 0.0 else 0.0
        obs[13] = cost / (wins * cfg.base_bid) if wins > 0.0 else 0.0
        return np.clip(obs, _OBS_LOW, _OBS_HIGH).astype(np.float32)


# --------------------------------------------------------------------------- policies


Policy = Callable[[ObsArray], int]
"""Maps an observation to an action level."""


def heuristic_action(obs: ObsArray, config: AuctionConfig | None = None) -> int:
    """A simple baseline: bid level grows with the batch's mean intent, slowed by budget pacing.

    The multiplier is ``4 * (mean_intent - 0.15)`` (clipped to the action range), scaled down by
    ``budget_left / time_left`` when the budget is being spent faster than the day passes.
    """
    cfg = config or _DEFAULT_CONFIG
    intent = float(obs[OBS_MEAN_INTENT])
    multiplier = 4.0 * (intent - 0.15)
    budget_left = float(obs[OBS_BUDGET_LEFT])
    time_left = max(float(obs[OBS_TIME_LEFT]), 1e-6)
    pace = budget_left / time_left
    if pace < 1.0:
        multiplier *= pace
    step = cfg.max_bid_multiplier / (cfg.n_bid_levels - 1)
    return int(np.clip(round(multiplier / step), 0, cfg.n_bid_levels - 1))


# --------------------------------------------------------------------------- episode stats


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, or 0.0 when the denominator is 0."""
    return numerator / denominator if denominator else 0.0


@dataclass(frozen=True, slots=True)
class EpisodeStats:
    """Totals of one episode, with derived rates (each 0.0 when its denominator is 0)."""

    total_reward: float
    """Sum of the (scaled) rewards."""
    steps: int
    """Number of steps taken."""
    impressions: int
    """Auctions won."""
    clicks: int
    """Clicks on won impressions."""
    conversions: int
    """Conversions from clicks."""
    total_cost: float
    """Money spent (unscaled)."""
    total_revenue: float
    """Money earned (unscaled)."""

    @property
    def roas(self) -> float:
        """Return on ad spend: revenue / cost."""
        return _ratio(self.total_revenue, self.total_cost)

    @property
    def ctr(self) -> float:
        """Click-through rate: clicks / impressions."""
        return _ratio(self.clicks, self.impressions)

    @property
    def conversion_rate(self) -> float:
        """Conversions / clicks."""
        return _ratio(self.conversions, self.clicks)

    @property
    def cost_per_conversion(self) -> float:
        """Cost / conversions."""
        return _ratio(self.total_cost, self.conversions)

    @property
    def revenue_per_step(self) -> float:
        """Revenue / steps."""
        return _ratio(self.total_revenue, self.steps)

    @property
    def reward_per_step(self) -> float:
        """Total reward / steps."""
        return _ratio(self.total_reward, self.steps)

    def as_dict(self) -> dict[str, float]:
        """Totals and derived rates as a flat dict of floats (e.g. for telemetry)."""
        return {
            "total_reward": self.total_reward,
            "steps": float(self.steps),
            "impressions": float(self.impressions),
            "clicks": float(self.clicks),
            "conversions": float(self.conversions),
            "total_cost": self.total_cost,
            "total_revenue": self.total_revenue,
            "roas": self.roas,
            "ctr": self.ctr,
            "conversion_rate": self.conversion_rate,
            "cost_per_conversion": self.cost_per_conversion,
            "revenue_per_step": self.revenue_per_step,
            "reward_per_step": self.reward_per_step,
        }


class EpisodeAccumulator:
    """Accumulates per-step rewards and ``info`` dicts into ``EpisodeStats``."""

    __slots__ = (
        "clicks",
        "conversions",
        "impressions",
        "steps",
        "total_cost",
        "total_revenue",
        "total_reward",
    )

    def __init__(self) -> None:
        """Start with all totals at zero."""
        self.total_reward = 0.0
        self.steps = 0
        self.impressions = 0
        self.clicks = 0
        self.conversions = 0
        self.total_cost = 0.0
        self.total_revenue = 0.0

    def add(self, reward: SupportsFloat, info: Mapping[str, Any]) -> None:
        """Add one step: its reward and the ``info`` dict ``AuctionEnv.step`` returned."""
        self.total_reward += float(reward)
        self.steps += 1
        self.impressions += int(info["impressions"])
        self.clicks += int(info["clicks"])
        self.conversions += int(info["conversions"])
        self.total_cost += float(info["cost"])
        self.total_revenue += float(info["revenue"])

    def stats(self) -> EpisodeStats:
        """The totals so far as an immutable ``EpisodeStats``."""
        return EpisodeStats(
            self.total_reward,
            self.steps,
            self.impressions,
            self.clicks,
            self.conversions,
            self.total_cost,
            self.total_revenue,
        )


def run_episode(env: AuctionEnv, policy: Policy, seed: int | None = None) -> EpisodeStats:
    """Play one episode of ``env`` with ``policy`` (obs -> action level) and return its stats."""
    obs, _ = env.reset(seed=seed)
    acc = EpisodeAccumulator()
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        acc.add(reward, info)
        if terminated or truncated:
            return acc.stats()


# --------------------------------------------------------------------------- calibration data


@dataclass(frozen=True, slots=True, eq=False)
class CalibrationData:
    """Impressions sampled from the true click/conversion model, for checking CTR predictions.

    Row ``i`` is one won impression: its context, the bid, the true probabilities and the
    sampled outcomes (a conversion needs a click).
    """

    contexts: FloatArray
    """(n, 7) context matrix, columns ``CONTEXT_FIELDS``."""
    bids: FloatArray
    """(n,) bids, money per impression (all > 0)."""
    features: FloatArray
    """(n, 9) ``features(contexts, bids)``."""
    true_ctr: FloatArray
    """(n,) true click probabilities."""
    true_cvr: FloatArray
    """(n,) true conversion-given-click probabilities."""
    clicks: NDArray[np.int8]
    """(n,) observed clicks, 0 or 1."""
    conversions: NDArray[np.int8]
    """(n,) observed conversions, 0 or 1 (only where clicked)."""

    @property
    def n(self) -> int:
        """Number of impressions."""
        return int(self.bids.shape[0])

    def statistics(self) -> dict[str, float]:
        """Summary statistics: n, observed and true mean CTR and CVR, bid and intent means."""
        n_clicks = float(self.clicks.sum())
        segments = self.contexts[:, :N_SEGMENTS].mean(axis=0)
        stats = {
            "n": float(self.n),
            "mean_ctr": _ratio(n_clicks, self.n),
            "mean_true_ctr": float(self.true_ctr.mean()) if self.n else 0.0,
            "mean_cvr": _ratio(float(self.conversions.sum()), n_clicks),
            "mean_true_cvr": float(self.true_cvr.mean()) if self.n else 0.0,
            "mean_bid": float(self.bids.mean()) if self.n else 0.0,
            "mean_intent": float(self.contexts[:, CTX_INTENT].mean()) if self.n else 0.0,
            "mobile_share": float(self.contexts[:, CTX_MOBILE].mean()) if self.n else 0.0,
            "clicks": n_clicks,
            "conversions": float(self.conversions.sum()),
        }
        for s in range(N_SEGMENTS):
            stats[f"segment_share_{s}"] = float(segments[s]) if self.n else 0.0
        return stats


def make_calibration_data(
    seed: int = 0, n: int = 2000, *, config: AuctionConfig | None = None
) -> CalibrationData:
    """Sample ``n`` impressions reproducibly from the true model of ``config`` (default config).

    Contexts are drawn as the environment draws them (slot segment mix and intent profile, an
    hour uniform over the day); bids are ``base_bid * segment_base_value * m`` with ``m``
    uniform on (0.1, max_bid_multiplier]; outcomes are Bernoulli draws of the true
    probabilities.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    cfg = config or _DEFAULT_CONFIG
    rng = np.random.default_rng(seed)
    n_slots = max(1, math.ceil(n / cfg.impressions_per_step))
    hours = rng.uniform(0.0, 24.0, size=n_slots)
    batches = [_draw_batch(cfg, float(h), cfg.impressions_per_step, rng) for h in hours]
    contexts = np.concatenate([b.contexts for b in batches])[:n]
    segments = np.concatenate([b.segments for b in batches])[:n]
    multipliers = rng.uniform(0.1, cfg.max_bid_multiplier, size=n)
    bids = cfg.base_bid * np.asarray(cfg.segment_base_value)[segments] * multipliers
    feats = features(contexts, bids)
    true_ctr = _sigmoid(feats @ cfg.ctr_weights)
    true_cvr = conversion_probability(contexts, cfg)
    clicks = rng.random(n) < true_ctr
    conversions = clicks & (rng.random(n) < true_cvr)
    return CalibrationData(
        contexts,
        bids,
        feats,
        true_ctr,
        true_cvr,
        clicks.astype(np.int8),
        conversions.astype(np.int8),
    )


def evaluate_predictions(
    data: CalibrationData, predicted_ctr: NDArray[np.floating[Any]]
) -> dict[str, float]:
    """Score predicted click probabilities against the *true* CTR of each impression.

    The reference is ``data.true_ctr`` (not the 0/1 clicks), so perfect predictions score
    ``mae == rmse == 0`` and ``correlation == 1``. Returns ``mae``, ``rmse``, ``correlation``
    (Pearson; 0.0 when either side is constant), ``bias`` (mean predicted minus mean true) and
    ``log_loss`` of the predictions against the observed clicks (predictions clipped to
    [1e-6, 1 - 1e-6]). Raises ValueError on a shape mismatch or non-finite predictions.
    """
    pred = np.asarray(predicted_ctr, dtype=np.float64)
    truth = data.true_ctr
    if pred.shape != truth.shape:
        raise ValueError(f"predicted_ctr must have shape {truth.shape}, got {pred.shape}")
    if not np.all(np.isfinite(pred)):
        raise ValueError("predicted_ctr must be finite")
    err = pred - truth
    pred_c = pred - pred.mean()
    truth_c = truth - truth.mean()
    denom = math.sqrt(float(pred_c @ pred_c) * float(truth_c @ truth_c))
    correlation = float(pred_c @ truth_c) / denom if denom > 1e-12 else 0.0
    p = np.clip(pred, 1e-6, 1.0 - 1e-6)
    y = data.clicks.astype(np.float64)
    log_loss = -float(np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": math.sqrt(float(np.mean(err * err))),
        "correlation": max(-1.0, min(1.0, correlation)),
        "bias": float(err.mean()),
        "log_loss": log_loss,
    }
