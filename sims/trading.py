"""A multi-stock trading simulator (Gymnasium environment) for evolutionary RL + DDPG.

Price model
-----------
Each of ``n_stocks`` stocks follows a Markov regime-switching geometric Brownian
motion, simulated in discrete steps. With the default parameters there are three
regimes, ``0 = bull``, ``1 = bear``, ``2 = sideways``; any number ``K >= 1`` of
regimes may be configured. Every stock has its own regime chain ``s[t, i]`` (the
chains are independent) with transition matrix ``P`` (``P[a, b]`` is the chance
of going from regime ``a`` to regime ``b`` in one step) and initial regime drawn
from the stationary distribution of ``P``. The log return of stock ``i`` over
step ``t`` (from price ``t`` to price ``t + 1``) is::

    sigma = vol[s[t, i]] * vol_mult[i] * m(tod(t))
    r[t, i] = drift[s[t, i]] * drift_mult[i] - sigma**2 / 2 + sigma * eps[t, i]
    eps[t, i] = sqrt(rho) * z_market[t] + sqrt(1 - rho) * z[t, i]

* ``drift_mult`` and ``vol_mult`` are per-stock multipliers, evenly spaced over
  ``[1 - stock_dispersion, 1 + stock_dispersion]`` (stock 0 is the calmest and
  slowest, the last stock the most volatile and fastest-trending).
* ``m(f) = 1 + intraday_vol_amplitude * ((2f - 1)**2 - 1/3)`` is a U-shaped
  intraday volatility profile (busier at the open and the close) with mean 1 over
  the day, ``f = tod(t)`` the fraction of the trading day at step ``t``.
* ``z_market`` and ``z`` are independent standard normals; ``rho`` is
  ``market_correlation``, the share of variance from a common market factor.
* The first price of every stock is log-uniform on ``initial_price_range``.

The whole episode (``window`` warm-up returns plus ``episode_length`` steps) is
generated at ``reset`` with numpy, the regime chains by a parallel prefix scan
over the one-step transition maps. The default parameters are stylised, chosen
for learnability rather than realism: regimes persist for about 50 steps and the
trending regimes drift by a third (bear) to three sevenths (bull) of their
per-step volatility, so trend following over the observation window is clearly
profitable after costs and reward shaping, while random trading loses.

Trading
-------
The action is a vector in ``[-1, 1]``, one entry per stock: the *target
position* in that stock as a signed fraction of the per-stock budget
``equity / n_stocks`` (so the gross exposure is at most 100 % of equity).
Negative entries are short positions; with ``allow_short=False`` they mean
"flat". Orders fill at the current price at the start of the step, the position
is then held over the step, and ``transaction_cost`` (a fraction of the traded
notional) is paid on every fill. Targets with ``|a| < rebalance_threshold`` mean
flat, and a position is only resized when the target differs from the current
weight by at least ``rebalance_threshold``, so small action noise does not churn.

Positions are kept as FIFO lots. Growing a position opens a new lot; shrinking
it closes the oldest lots first; flipping direction closes everything and opens
a new lot. Every closed (part of a) lot is recorded as a ``Trade`` whose
``pnl`` is ``direction * size * (exit_price - entry_price)`` minus the
transaction costs of its entry and exit, so the P&L of all trades of an episode
sums to the change in equity. A lot open for ``max_holding_period`` steps is
force-closed at the start of the step (before the action applies) and the step
pays ``forced_close_penalty`` per unit of per-stock budget closed. The episode
lasts ``episode_length`` steps; at its end every open lot is closed at the final
price and recorded, and ``terminated`` is ``True`` (``truncated`` is always
``False``).

Reward
------
With ``R`` the step's portfolio return (change in equity over equity at the
start of the step, costs included)::

    shaped = R if R >= 0 else loss_penalty_multiplier * R
    shaped -= inaction_penalty        (if no position was held over the step)
    shaped -= forced_close_penalty * forced_size
    reward = reward_scale * shaped

The default ``reward_scale = 100`` puts rewards in percent of equity, typically
``O(0.01-1)`` per step.

Observation
-----------
A float32 vector (see ``observation_layout``): for each stock the last
``window`` one-step log returns in percent, oldest first (stock-major, clipped
to +-50); the current position of each stock as a signed fraction of the
per-stock budget (clipped to +-3); the age of each stock's oldest open lot
divided by ``max_holding_period`` (0 when flat); the time of day as a fraction
of the trading day; and the fraction of the episode elapsed. All parts lie
within the finite bounds of ``observation_space``.

Seeds and splits
----------------
``reset(seed=s)`` starts period 0 of seed ``s``; later ``reset()`` calls without
a seed go on to periods 1, 2, ... of the same seed, and
``reset(options={"period": k})`` jumps to period ``k``. The prices of a period
come from ``numpy.random.SeedSequence(s, spawn_key=(split, k))``, so an env made
with ``split="validation"`` (or ``"test"``) sees price paths disjoint from the
``"train"`` ones for every seed, and everything is deterministic given the seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

__all__ = [
    "REGIME_NAMES",
    "EpisodeResult",
    "ObservationLayout",
    "PolicyFn",
    "Split",
    "Trade",
    "TradingConfig",
    "TradingEnv",
    "evaluate_policies",
    "evaluate_policy",
    "evaluate_population",
    "momentum_policy",
    "observation_layout",
    "random_policy",
]

Split = Literal["train", "validation", "test"]
"""Which seed stream an environment draws its price paths from."""

PolicyFn = Callable[[npt.NDArray[np.float32]], npt.NDArray[Any]]
"""A deterministic or stochastic policy: observation in, action (one entry per stock) out."""

REGIME_NAMES: tuple[str, ...] = ("bull", "bear", "sideways")
"""Names of the regimes of the default three-regime model, by index."""

_SPLIT_IDS: dict[str, int] = {"train": 0, "validation": 1, "test": 2}
_RETURN_OBS_SCALE = 100.0  # log returns are observed in percent
_RETURN_OBS_LIMIT = 50.0  # observed returns are clipped to +-50 % (never reached by sane params)
_POSITION_OBS_LIMIT = 3.0  # observed positions are clipped to +-3 budgets (drift past 1 is small)
_BANKRUPT_EQUITY = 1e-9  # equity (relative to initial capital) at which an episode ends early

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _check(ok: bool, name: str, allowed: str, value: object) -> None:
    if not ok:
        raise ValueError(f"TradingConfig.{name} must be {allowed}, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


@dataclass(frozen=True, slots=True)
class TradingConfig:
    """Parameters of the trading simulator; validated on construction."""

    n_stocks: int = 4
    """Number of stocks traded (1 to 256)."""
    episode_length: int = 200
    """Steps in one trading period (episode), 1 to 1_000_000."""
    steps_per_day: int = 50
    """Steps in one trading day; sets the time of day of each step (>= 1)."""
    window: int = 10
    """Number of recent log returns per stock in the observation (1 to 10_000)."""
    transaction_cost: float = 5e-4
    """Cost of a fill as a fraction of its notional, in [0, 0.1]."""
    loss_penalty_multiplier: float = 1.5
    """Negative step returns are multiplied by this in the reward, in (0, 100]."""
    inaction_penalty: float = 1e-4
    """Return-units penalty for a step without any position, in [0, 1]."""
    max_holding_period: int = 20
    """Lots held this many steps are force-closed (>= 1)."""
    forced_close_penalty: float = 1e-3
    """Return-units penalty per unit of per-stock budget force-closed, in [0, 1]."""
    initial_capital: float = 100_000.0
    """Equity at the start of every episode (finite, > 0)."""
    reward_scale: float = 100.0
    """Multiplier from shaped return to reward (finite, > 0); 100 = percent."""
    rebalance_threshold: float = 0.05
    """Smallest target change (fraction of per-stock budget) that trades, in [0, 1)."""
    allow_short: bool = True
    """Whether negative actions open short positions (else they mean flat)."""
    regime_drifts: tuple[float, ...] = (0.003, -0.003, 0.0)
    """Per-step log drift of each regime (bull, bear, sideways), each in [-0.1, 0.1]."""
    regime_vols: tuple[float, ...] = (0.007, 0.009, 0.004)
    """Per-step volatility of each regime, each in (0, 0.5]."""
    regime_transition: tuple[tuple[float, ...], ...] = (
        (0.98, 0.005, 0.015),
        (0.005, 0.98, 0.015),
        (0.01, 0.01, 0.98),
    )
    """Regime transition matrix, rows = from, columns = to; rows sum to 1."""
    stock_dispersion: float = 0.25
    """Spread of per-stock drift/volatility multipliers around 1, in [0, 1)."""
    market_correlation: float = 0.3
    """Share of each stock's return variance from a common market factor, in [0, 1)."""
    intraday_vol_amplitude: float = 0.5
    """Depth of the U-shaped intraday volatility profile, in [0, 2]."""
    initial_price_range: tuple[float, float] = (20.0, 200.0)
    """Range of the log-uniform first price of each stock, 0 < low <= high."""
    _stationary: FloatArray = field(init=False, repr=False, compare=False)
    _cum_transition: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check every field, raising ``ValueError`` naming the field and its allowed range."""
        for name, lo, hi in (
            ("n_stocks", 1, 256),
            ("episode_length", 1, 1_000_000),
            ("steps_per_day", 1, 1_000_000),
            ("window", 1, 10_000),
            ("max_holding_period", 1, 1_000_000_000),
        ):
            value = getattr(self, name)
            _check(_is_int(value) and lo <= value <= hi, name, f"an int in [{lo}, {hi}]", value)
        for name, low, high, low_closed, high_closed in (
            ("transaction_cost", 0.0, 0.1, True, True),
            ("loss_penalty_multiplier", 0.0, 100.0, False, True),
            ("inaction_penalty", 0.0, 1.0, True, True),
            ("forced_close_penalty", 0.0, 1.0, True, True),
            ("stock_dispersion", 0.0, 1.0, True, False),
            ("market_correlation", 0.0, 1.0, True, False),
            ("intraday_vol_amplitude", 0.0, 2.0, True, True),
            ("rebalance_threshold", 0.0, 1.0, True, False),
        ):
            value = getattr(self, name)
            ok = (
                _is_real(value)
                and (low <= value if low_closed else low < value)
                and (value <= high if high_closed else value < high)
            )
            interval = f"{'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}"
            _check(ok, name, f"a finite number in {interval}", value)
        for name in ("initial_capital", "reward_scale"):
            value = getattr(self, name)
            _check(_is_real(value) and value > 0, name, "a finite number > 0", value)
        _check(isinstance(self.allow_short, bool), "allow_short", "a bool", self.allow_short)
        self._validate_regimes()
        low_high = self.initial_price_range
        _check(
            isinstance(low_high, tuple)
            and len(low_high) == 2
            and all(_is_real(v) for v in low_high)
            and 0 < low_high[0] <= low_high[1],
            "initial_price_range",
            "a (low, high) pair with 0 < low <= high",
            low_high,
        )
        matrix = np.array(self.regime_transition, dtype=np.float64)
        object.__setattr__(self, "_cum_transition", np.cumsum(matrix, axis=1))
        object.__setattr__(self, "_stationary", _stationary_distribution(matrix))

    def _validate_regimes(self) -> None:
        drifts, vols, matrix = self.regime_drifts, self.regime_vols, self.regime_transition
        _check(
            isinstance(drifts, tuple)
            and 1 <= len(drifts) <= 16
            and all(_is_real(v) and -0.1 <= v <= 0.1 for v in drifts),
            "regime_drifts",
            "a tuple of 1 to 16 numbers in [-0.1, 0.1]",
            drifts,
        )
        k = len(drifts)
        _check(
            isinstance(vols, tuple)
            and len(vols) == k
            and all(_is_real(v) and 0 < v <= 0.5 for v in vols),
            "regime_vols",
            f"a tuple of {k} numbers (one per regime) in (0, 0.5]",
            vols,
        )
        rows_ok = (
            isinstance(matrix, tuple)
            and len(matrix) == k
            and all(
                isinstance(row, tuple)
                and len(row) == k
                and all(_is_real(p) and 0 <= p <= 1 for p in row)
                and abs(math.fsum(row) - 1.0) <= 1e-9
                for row in matrix
            )
        )
        _check(
            rows_ok,
            "regime_transition",
            f"a {k}x{k} tuple of tuples of probabilities in [0, 1] with rows summing to 1",
            matrix,
        )

    @property
    def n_regimes(self) -> int:
        """Number of regimes of the price model."""
        return len(self.regime_drifts)

    @property
    def stationary_distribution(self) -> FloatArray:
        """Long-run share of time spent in each regime (a copy)."""
        return self._stationary.copy()

    @property
    def observation_size(self) -> int:
        """Length of the observation vector."""
        return self.n_stocks * (self.window + 2) + 2


def _stationary_distribution(matrix: FloatArray) -> FloatArray:
    """Stationary distribution of a row-stochastic matrix (uniform average if not unique)."""
    k = matrix.shape[0]
    # Cesaro average of P^n converges for every stochastic matrix; squaring reaches
    # large n fast, and averaging with the identity removes periodicity.
    lazy = 0.5 * (matrix + np.eye(k))
    power = lazy
    for _ in range(60):
        power = power @ power
    dist = power.mean(axis=0)
    dist = np.clip(dist, 0.0, None)
    total = float(dist.sum())
    return dist / total if total > 0 else np.full(k, 1.0 / k)


@dataclass(frozen=True, slots=True)
class Trade:
    """One closed (part of a) position: a FIFO lot from its entry fill to its exit fill."""

    stock: int
    """Index of the stock traded."""
    entry_price: float
    """Fill price at entry."""
    exit_price: float
    """Fill price at exit."""
    entry_step: int
    """Step at whose start the lot was opened."""
    exit_step: int
    """Step at whose start the lot was closed (``episode_length`` for the final close)."""
    holding_duration: int
    """``exit_step - entry_step``, in steps."""
    direction: int
    """+1 for a long position, -1 for a short one."""
    size: float
    """Number of shares (always > 0)."""
    pnl: float
    """Realised P&L in currency: direction * size * (exit - entry) minus entry and exit costs."""
    time_of_day: float
    """Fraction of the trading day elapsed at the exit step, in [0, 1)."""
    forced: bool = False
    """Whether the lot was force-closed for exceeding ``max_holding_period``."""


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """Summary of one episode run by ``evaluate_policy``."""

    total_reward: float
    """Sum of the (shaped, scaled) rewards."""
    total_pnl: float
    """Final equity minus initial capital (equals the sum of the trades' pnl)."""
    trades: tuple[Trade, ...]
    """Every trade closed in the episode, in closing order."""
    n_steps: int
    """Steps taken."""
    final_equity: float
    """Equity after the final liquidation."""

    @property
    def total_return(self) -> float:
        """Total P&L as a fraction of the initial equity."""
        return self.total_pnl / (self.final_equity - self.total_pnl)


@dataclass(frozen=True, slots=True)
class ObservationLayout:
    """Where each part of the observation vector lies."""

    returns: slice
    """Recent log returns in percent, ``n_stocks`` blocks of ``window``, oldest first."""
    positions: slice
    """Signed position of each stock as a fraction of the per-stock budget."""
    holding: slice
    """Age of each stock's oldest open lot over ``max_holding_period`` (0 when flat)."""
    time_of_day: int
    """Index of the fraction of the trading day elapsed."""
    progress: int
    """Index of the fraction of the episode elapsed."""


def observation_layout(config: TradingConfig) -> ObservationLayout:
    """Slices of the observation vector of an environment with ``config``."""
    r = config.n_stocks * config.window
    n = config.n_stocks
    return ObservationLayout(
        returns=slice(0, r),
        positions=slice(r, r + n),
        holding=slice(r + n, r + 2 * n),
        time_of_day=r + 2 * n,
        progress=r + 2 * n + 1,
    )


class _Lot:
    """An open FIFO lot of one stock (mutable; internal)."""

    __slots__ = ("entry_cost", "entry_price", "entry_step", "shares")

    def __init__(self, shares: float, entry_price: float, entry_step: int, entry_cost: float):
        self.shares = shares
        self.entry_price = entry_price
        self.entry_step = entry_step
        self.entry_cost = entry_cost


def _simulate_regimes(
    rng: np.random.Generator,
    cum_transition: FloatArray,
    stationary: FloatArray,
    n_steps: int,
    n_stocks: int,
) -> IntArray:
    """Regime of each stock at each step, shape ``(n_steps, n_stocks)``.

    Step ``t``'s draw defines a map ``f_t`` from the current regime to the next
    one; an inclusive prefix scan composes the maps in ``log2(n_steps)``
    vectorised rounds, so no Python loop over time is needed.
    """
    k = cum_transition.shape[0]
    first = np.minimum((rng.random(n_stocks)[:, None] >= np.cumsum(stationary)).sum(-1), k - 1)
    states = np.empty((n_steps, n_stocks), dtype=np.int64)
    states[0] = first
    if n_steps == 1:
        return states
    u = rng.random((n_steps - 1, n_stocks))
    maps = (u[:, :, None, None] >= cum_transition).sum(-1)  # (n_steps - 1, n_stocks, k)
    np.minimum(maps, k - 1, out=maps)
    shift = 1
    while shift < maps.shape[0]:
        maps[shift:] = np.take_along_axis(maps[shift:], maps[:-shift], axis=-1)
        shift *= 2
    states[1:] = np.take_along_axis(
        maps, np.broadcast_to(first[None, :, None], (n_steps - 1, n_stocks, 1)), axis=-1
    )[..., 0]
    return states


def _per_stock_multipliers(config: TradingConfig) -> FloatArray:
    n = config.n_stocks
    if n == 1:
        return np.ones(1)
    d = config.stock_dispersion
    return np.linspace(1.0 - d, 1.0 + d, n)


def _simulate_prices(
    config: TradingConfig, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Prices ``(episode_length + 1, n)``, log returns ``(window + episode_length, n)``, regimes.

    Log return ``j`` runs from price ``j - window`` to ``j - window + 1`` in episode
    steps; the first ``window`` returns are the warm-up history seen at reset.
    """
    n, w, length = config.n_stocks, config.window, config.episode_length
    total = w + length
    regimes = _simulate_regimes(rng, config._cum_transition, config._stationary, total, n)
    mult = _per_stock_multipliers(config)
    steps = np.arange(-w, length)
    day_frac = np.mod(steps, config.steps_per_day) / config.steps_per_day
    intraday = 1.0 + config.intraday_vol_amplitude * ((2.0 * day_frac - 1.0) ** 2 - 1.0 / 3.0)
    drift = np.asarray(config.regime_drifts)[regimes] * mult
    sigma = np.asarray(config.regime_vols)[regimes] * mult * intraday[:, None]
    rho = config.market_correlation
    eps = math.sqrt(rho) * rng.standard_normal((total, 1)) + math.sqrt(
        1.0 - rho
    ) * rng.standard_normal((total, n))
    log_returns = drift - 0.5 * sigma * sigma + sigma * eps
    low, high = config.initial_price_range
    log_first = rng.uniform(math.log(low), math.log(high), size=n)
    log_prices = log_first + np.cumsum(log_returns[w:], axis=0)
    prices = np.exp(np.vstack([log_first[None, :], log_prices]))
    return prices, log_returns, regimes[w:]


class TradingEnv(gym.Env[npt.NDArray[np.float32], npt.NDArray[np.floating[Any]]]):
    """Multi-stock trading with regime-switching prices; see the module docstring."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium API attribute

    def __init__(self, config: TradingConfig | None = None, split: Split = "train") -> None:
        if split not in _SPLIT_IDS:
            raise ValueError(f"split must be one of {sorted(_SPLIT_IDS)}, got {split!r}")
        self.config = config if config is not None else TradingConfig()
        self.split: Split = split
        cfg = self.config
        n = cfg.n_stocks
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)
        size = cfg.observation_size
        layout = observation_layout(cfg)
        low = np.zeros(size, dtype=np.float32)
        high = np.ones(size, dtype=np.float32)
        low[layout.returns] = -_RETURN_OBS_LIMIT
        high[layout.returns] = _RETURN_OBS_LIMIT
        low[layout.positions] = -_POSITION_OBS_LIMIT
        high[layout.positions] = _POSITION_OBS_LIMIT
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self._layout = layout
        self._base_seed: int | None = None
        self._period = 0
        self._current_period = 0
        self._cash_costs = 0.0
        self._t = -1
        self._done = True
        self._cash = cfg.initial_capital
        self._shares: list[float] = [0.0] * n
        self._lots: list[list[_Lot]] = [[] for _ in range(n)]
        self._trades: list[Trade] = []
        self._prices = np.empty((0, n))
        self._price_rows: list[list[float]] = []
        self._regimes = np.empty((0, n), dtype=np.int64)
        self._return_features = np.empty((0, n * cfg.window), dtype=np.float32)
        self._equity = cfg.initial_capital

    # ------------------------------------------------------------------ API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        """Start a new trading period and return its first observation and info.

        ``seed`` restarts the period sequence of that seed at period 0; without it
        the next period of the current seed is used. ``options={"period": k}``
        selects period ``k`` explicitly.
        """
        super().reset(seed=seed)
        if seed is not None:
            self._base_seed = int(seed)
            self._period = 0
        elif self._base_seed is None:
            self._base_seed = int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
            self._period = 0
        if options and "period" in options:
            period = options["period"]
            if not _is_int(period) or period < 0:
                raise ValueError(f"options['period'] must be an int >= 0, got {period!r}")
            self._period = int(period)
        seq = np.random.SeedSequence(
            self._base_seed, spawn_key=(_SPLIT_IDS[self.split], self._period)
        )
        self._current_period = self._period
        self._period += 1
        cfg = self.config
        prices, log_returns, regimes = _simulate_prices(cfg, np.random.default_rng(seq))
        prices.flags.writeable = False
        regimes.flags.writeable = False
        self._prices = prices
        self._regimes = regimes
        self._price_rows = prices.tolist()
        windows = np.lib.stride_tricks.sliding_window_view(log_returns, cfg.window, axis=0)
        features = windows.reshape(windows.shape[0], -1) * _RETURN_OBS_SCALE
        np.clip(features, -_RETURN_OBS_LIMIT, _RETURN_OBS_LIMIT, out=features)
        self._return_features = features.astype(np.float32)
        n = cfg.n_stocks
        self._t = 0
        self._done = False
        self._cash = cfg.initial_capital
        self._equity = cfg.initial_capital
        self._shares = [0.0] * n
        self._lots = [[] for _ in range(n)]
        self._trades = []
        info: dict[str, Any] = {
            "closed_trades": [],
            "equity": self._equity,
            "step": 0,
            "period": self._current_period,
            "split": self.split,
        }
        return self._observation(0, self._equity), info

    def step(
        self, action: npt.NDArray[np.floating[Any]]
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """Trade towards the target positions in ``action`` and advance one step."""
        if self._done:
            raise RuntimeError("TradingEnv.step called before reset() or after the episode ended")
        cfg = self.config
        n = cfg.n_stocks
        arr = np.asarray(action, dtype=np.float64)
        if arr.shape != (n,):
            raise ValueError(f"action must have shape ({n},), got {arr.shape}")
        targets: list[float] = arr.tolist()
        t = self._t
        row = self._price_rows[t]
        shares = self._shares
        equity0 = self._cash
        for i in range(n):
            equity0 += shares[i] * row[i]
        budget = equity0 / n
        threshold = cfg.rebalance_threshold
        max_hold = cfg.max_holding_period
        closed: list[Trade] = []
        forced_size = 0.0
        self._cash_costs = 0.0
        holding_any = False
        for i in range(n):
            x = targets[i]
            if not math.isfinite(x):
                raise ValueError(f"action[{i}] is {x}; actions must be finite")
            p = row[i]
            lots = self._lots[i]
            if lots and t - lots[0].entry_step >= max_hold:
                before = abs(shares[i])
                while lots and t - lots[0].entry_step >= max_hold:
                    self._close_lot(i, lots[0], lots[0].shares, p, t, True, closed)
                forced_size += (before - abs(shares[i])) * p / budget
            x = 1.0 if x > 1.0 else (-1.0 if x < -1.0 else x)
            if x < 0.0 and not cfg.allow_short:
                x = 0.0
            if abs(x) < threshold:
                x = 0.0
            cur = shares[i]
            if x == 0.0:
                if cur != 0.0:
                    self._close_all(i, p, t, closed)
            elif cur == 0.0 or (cur > 0.0) != (x > 0.0):
                if cur != 0.0:
                    self._close_all(i, p, t, closed)
                self._open(i, x * budget / p, p, t)
            else:
                target = x * budget / p
                if abs(target - cur) * p >= threshold * budget:
                    if abs(target) > abs(cur):
                        self._open(i, target - cur, p, t)
                    else:
                        self._reduce(i, abs(cur - target), p, t, closed)
            if shares[i] != 0.0:
                holding_any = True
        t1 = t + 1
        row1 = self._price_rows[t1]
        equity1 = self._cash
        for i in range(n):
            equity1 += shares[i] * row1[i]
        terminated = t1 >= cfg.episode_length or equity1 <= _BANKRUPT_EQUITY * cfg.initial_capital
        if terminated:
            for i in range(n):
                if shares[i] != 0.0:
                    self._close_all(i, row1[i], t1, closed)
            equity1 = self._cash
        ret = equity1 / equity0 - 1.0
        shaped = ret if ret >= 0.0 else ret * cfg.loss_penalty_multiplier
        if not holding_any:
            shaped -= cfg.inaction_penalty
        if forced_size:
            shaped -= cfg.forced_close_penalty * forced_size
        reward = cfg.reward_scale * shaped
        self._t = t1
        self._equity = equity1
        self._done = terminated
        if closed:
            self._trades.extend(closed)
        info: dict[str, Any] = {
            "closed_trades": closed,
            "equity": equity1,
            "portfolio_return": ret,
            "transaction_costs": self._cash_costs,
            "forced_close_size": forced_size,
            "step": t1,
        }
        return self._observation(t1, equity1), reward, terminated, False, info

    # ------------------------------------------------------------ accessors

    @property
    def trades(self) -> list[Trade]:
        """Trades closed so far in the current episode (a copy, in closing order)."""
        return list(self._trades)

    @property
    def prices(self) -> FloatArray:
        """Read-only prices of the current episode, shape ``(episode_length + 1, n_stocks)``."""
        return self._prices

    @property
    def regimes(self) -> IntArray:
        """Read-only regime of each stock for each step, shape ``(episode_length, n_stocks)``."""
        return self._regimes

    @property
    def equity(self) -> float:
        """Current marked-to-market equity."""
        return self._equity

    @property
    def positions(self) -> FloatArray:
        """Current signed number of shares held of each stock."""
        return np.array(self._shares, dtype=np.float64)

    @property
    def current_step(self) -> int:
        """Steps taken in the current episode (-1 before the first reset)."""
        return self._t

    @property
    def period(self) -> int:
        """Index of the current period in the current seed's sequence."""
        return self._current_period

    # ------------------------------------------------------------- internals

    def _observation(self, t: int, equity: float) -> npt.NDArray[np.float32]:
        cfg = self.config
        layout = self._layout
        n = cfg.n_stocks
        row = self._price_rows[t]
        budget = equity / n
        obs = np.empty(cfg.observation_size, dtype=np.float32)
        obs[layout.returns] = self._return_features[t]
        lim = _POSITION_OBS_LIMIT
        obs[layout.positions] = [
            min(lim, max(-lim, self._shares[i] * row[i] / budget)) for i in range(n)
        ]
        max_hold = cfg.max_holding_period
        obs[layout.holding] = [
            (t - lots[0].entry_step) / max_hold if lots else 0.0 for lots in self._lots
        ]
        obs[layout.time_of_day] = (t % cfg.steps_per_day) / cfg.steps_per_day
        obs[layout.progress] = t / cfg.episode_length
        return obs

    def _open(self, i: int, delta: float, price: float, t: int) -> None:
        """Add ``delta`` signed shares of stock ``i`` (same direction as any holding) as a lot."""
        qty = abs(delta)
        cost = self.config.transaction_cost * qty * price
        self._cash -= delta * price + cost
        self._cash_costs += cost
        self._shares[i] += delta
        self._lots[i].append(_Lot(qty, price, t, cost))

    def _close_lot(
        self,
        i: int,
        lot: _Lot,
        qty: float,
        price: float,
        t: int,
        forced: bool,
        closed: list[Trade],
    ) -> None:
        """Close ``qty`` shares of ``lot`` (the oldest lot of stock ``i``) and record the trade."""
        direction = 1 if self._shares[i] > 0.0 else -1
        full = qty >= lot.shares
        if full:
            qty = lot.shares
            entry_cost = lot.entry_cost
        else:
            entry_cost = lot.entry_cost * (qty / lot.shares)
        exit_cost = self.config.transaction_cost * qty * price
        self._cash += direction * qty * price - exit_cost
        self._cash_costs += exit_cost
        pnl = direction * qty * (price - lot.entry_price) - entry_cost - exit_cost
        spd = self.config.steps_per_day
        closed.append(
            Trade(
                stock=i,
                entry_price=lot.entry_price,
                exit_price=price,
                entry_step=lot.entry_step,
                exit_step=t,
                holding_duration=t - lot.entry_step,
                direction=direction,
                size=qty,
                pnl=pnl,
                time_of_day=(t % spd) / spd,
                forced=forced,
            )
        )
        lots = self._lots[i]
        if full:
            lots.pop(0)
            if not lots:
                self._shares[i] = 0.0
                return
        else:
            lot.shares -= qty
            lot.entry_cost -= entry_cost
        self._shares[i] -= direction * qty

    def _close_all(self, i: int, price: float, t: int, closed: list[Trade]) -> None:
        lots = self._lots[i]
        while lots:
            self._close_lot(i, lots[0], lots[0].shares, price, t, False, closed)

    def _reduce(self, i: int, qty: float, price: float, t: int, closed: list[Trade]) -> None:
        """Close ``qty`` shares of stock ``i``, oldest lots first."""
        lots = self._lots[i]
        while lots and qty > 0.0:
            lot = lots[0]
            take = qty if qty < lot.shares * (1.0 - 1e-12) else lot.shares
            self._close_lot(i, lot, take, price, t, False, closed)
            qty -= take


# ------------------------------------------------------------------ evaluation

EnvSource = TradingEnv | Callable[[], TradingEnv]
"""An environment, or a zero-argument factory making one."""


def _as_env(env: EnvSource) -> TradingEnv:
    return env if isinstance(env, TradingEnv) else env()


def evaluate_policy(env: EnvSource, policy_fn: PolicyFn, seed: int) -> EpisodeResult:
    """Run one full episode (period 0 of ``seed``) with ``policy_fn`` and summarise it."""
    environment = _as_env(env)
    obs, _ = environment.reset(seed=seed)
    total_reward = 0.0
    steps = 0
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, _ = environment.step(policy_fn(obs))
        total_reward += reward
        steps += 1
    initial = environment.config.initial_capital
    return EpisodeResult(
        total_reward=total_reward,
        total_pnl=environment.equity - initial,
        trades=tuple(environment._trades),
        n_steps=steps,
        final_equity=environment.equity,
    )


def evaluate_policies(
    env: EnvSource, policy_fn: PolicyFn, seeds: Sequence[int]
) -> list[EpisodeResult]:
    """Run ``policy_fn`` for one episode on each seed, reusing one environment."""
    environment = _as_env(env)
    return [evaluate_policy(environment, policy_fn, seed) for seed in seeds]


def evaluate_population(
    env: EnvSource,
    policies: Sequence[PolicyFn],
    seeds: Sequence[int],
    metric: Literal["reward", "pnl", "return"] = "reward",
) -> FloatArray:
    """Fitness table of shape ``(len(policies), len(seeds))`` for evolutionary selection.

    Every policy meets the same price paths (one per seed), so fitness differences
    come from the policies alone. ``metric`` picks total reward, total P&L, or
    total return as the fitness.
    """
    if metric not in ("reward", "pnl", "return"):
        raise ValueError(f"metric must be 'reward', 'pnl' or 'return', got {metric!r}")
    environment = _as_env(env)
    table = np.empty((len(policies), len(seeds)), dtype=np.float64)
    for p, policy in enumerate(policies):
        for s, seed in enumerate(seeds):
            result = evaluate_policy(environment, policy, seed)
            if metric == "reward":
                table[p, s] = result.total_reward
            elif metric == "pnl":
                table[p, s] = result.total_pnl
            else:
                table[p, s] = result.total_return
    return table


# -------------------------------------------------------------------- baselines


def momentum_policy(config: TradingConfig, lookback: int | None = None) -> PolicyFn:
    """Trend follower: all-in long (short) a stock whose last ``lookback`` returns sum > 0 (< 0)."""
    n, w = config.n_stocks, config.window
    span = w if lookback is None else lookback
    if not 1 <= span <= w:
        raise ValueError(f"lookback must be in [1, {w}] (the window), got {lookback!r}")
    end = n * w

    def policy(obs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        signal = obs[:end].reshape(n, w)[:, w - span :].sum(axis=1)
        out: npt.NDArray[np.float32] = np.sign(signal).astype(np.float32)
        return out

    return policy


def random_policy(config: TradingConfig, seed: int | None = None) -> PolicyFn:
    """Uniformly random target positions in ``[-1, 1]`` every step (a no-skill baseline)."""
    rng = np.random.default_rng(seed)
    n = config.n_stocks

    def policy(obs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return rng.uniform(-1.0, 1.0, n).astype(np.float32)

    return policy
