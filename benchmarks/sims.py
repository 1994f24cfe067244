"""7. Simulators: what one episode (or one vectorised step) of each simulator costs.

A trainer's time is mostly its simulator and its network; these figures say the
simulators stay cheap next to the networks. Each figure is the median over
``sizes.repeats`` repeats of the best of three timed blocks (a time slice lost
to another process on this shared machine stays out), with a trivial policy so
that only the simulator is timed:

- trading: one 200-step episode of ``TradingEnv``, holding every stock
  (budget 5 ms);
- auction: one episode of ``AuctionEnv``, always the same bid level (budget
  10 ms);
- motion: one step of 16 ``MotionEnv`` characters at once, random actions
  (budget 1 ms; about 0.2 ms is the target on a dev machine).

These budgets were asserted by timed unit tests before; a loaded CI machine
broke them, so they are measured here instead.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks.common import Report, Sizes
from sims.auction import AuctionEnv, heuristic_action, run_episode
from sims.motion import ACTION_DIM, MotionConfig, MotionEnv
from sims.trading import TradingEnv, evaluate_policy

BUDGET_MS = {"trading_episode": 5.0, "auction_episode": 10.0, "motion_step_16": 1.0}
BLOCKS = 3


def _within(budget: float, value: float, _ratio: float | None) -> bool:
    return value < budget


def best_block_ms(work: Callable[[], None], calls: int) -> float:
    """Milliseconds per call: the best of ``BLOCKS`` blocks of ``calls`` calls."""
    best = float("inf")
    for _ in range(BLOCKS):
        start = time.perf_counter()
        for _ in range(calls):
            work()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def trading(calls: int) -> float:
    env = TradingEnv()
    hold = np.full(4, 1.0, dtype=np.float32)
    seeds = itertools.count()

    def episode() -> None:
        evaluate_policy(env, lambda _obs: hold, seed=next(seeds))

    episode()  # warm-up
    return best_block_ms(episode, calls)


def auction(calls: int) -> float:
    env = AuctionEnv()
    seeds = itertools.count()
    run_episode(env, heuristic_action, seed=0)  # warm-up

    def episode() -> None:
        run_episode(env, lambda _obs: 6, seed=next(seeds))

    return best_block_ms(episode, calls)


def motion(calls: int) -> float:
    env = MotionEnv(MotionConfig(num_envs=16))
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (calls, 16, ACTION_DIM)).astype(np.float32)
    rows = itertools.cycle(actions)

    def step() -> None:
        env.step(next(rows))

    step()  # warm-up
    return best_block_ms(step, calls)


async def run(sizes: Sizes, report: Report, folder: Path) -> None:
    episodes = max(5, sizes.direct_steps // 40)  # per timed block: 50 in a full run, 5 quick
    measures: dict[str, Callable[[], float]] = {
        "trading_episode": lambda: trading(episodes),
        "auction_episode": lambda: auction(episodes),
        "motion_step_16": lambda: motion(10 * episodes),
    }
    titles = {
        "trading_episode": "one 200-step trading episode, holding",
        "auction_episode": "one auction episode, a fixed bid",
        "motion_step_16": "one step of 16 motion characters",
    }
    for key, measure in measures.items():
        samples = [measure() for _ in range(sizes.repeats)]
        budget = BUDGET_MS[key]
        report.compare(
            f"sims.{key}_ms",
            titles[key],
            samples,
            None,
            "ms",
            goal=f"< {budget:g} ms",
            check=partial(_within, budget),
            aggregate=statistics.median,
        )
