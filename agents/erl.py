"""Evolutionary RL on the trading simulator: an evolving population plus a DDPG learner.

After Khadka & Tumer, "Evolution-Guided Policy Gradient in Reinforcement
Learning" (2018). Each generation every actor of the population trades the same
training periods; its fitness is its mean episode reward there. Every transition
the population (and the learner's noisy explorer) experiences goes into one
shared replay buffer, from which a DDPG learner trains. Selection keeps the
elites, fills the rest by tournament, optional crossover and Gaussian mutation,
and every ``sync_period`` generations the learner's actor replaces the worst
member, so gradient information enters the population.

"The best agent" that validation trades is each generation's champion (its
fittest member, kept as an elite); ``erl-best.pt`` holds the member with the
best fitness ever, written whenever that record improves. Fitness is compared
across generations on different price paths, so the record also reflects how
easy a generation's periods were; the champion's validation score is the fair
measure of progress.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from agents import checkpoints
from agents.base import TrainerSpec, TrainResult, train_result
from agents.callbacks import Callback
from agents.common import (
    NON_NEGATIVE,
    POSITIVE,
    UNIT,
    Interval,
    check_bool,
    check_number,
    check_numbers,
)
from agents.loop import Evaluated, Publication, Saved, StepRecord, TrainerLoop
from agents.sim_settings import sim_config
from sims.trading import (
    EpisodeResult,
    PolicyFn,
    Trade,
    TradingConfig,
    TradingEnv,
    evaluate_policies,
)
from telemetry.bus import Bus
from telemetry.errors import ConfigError
from telemetry.events import TradeClosed

__all__ = [
    "CONFIG",
    "Actor",
    "Critic",
    "ERLConfig",
    "ERLTrainer",
    "ReplayBuffer",
    "actor_policy",
    "build",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
M = TypeVar("M", bound=nn.Module)

AXIS = "generation"
"""The step axis of every per-generation event."""
RESUME_FILE = "erl-resume.pt"
"""The full-state checkpoint a trainer resumes from, under ``run_dir / "checkpoints"``."""
BEST_FILE = "erl-best.pt"
"""The best agent so far (actor weights, fitness, generation)."""
_FORMAT = 1
# Fields that fix the shape of what a resume checkpoint holds.
_STRUCTURAL = ("population_size", "hidden_size", "n_stocks", "buffer_capacity")


@dataclass
class ERLConfig:
    """Settings of the ERL trainer: population, evolution, DDPG learner, budget and logging."""

    population_size: int = 10
    """Actors in the evolving population (>= 2)."""
    elite_fraction: float = 0.2
    """Share of the population kept unchanged each generation (at least one, never all)."""
    tournament_size: int = 3
    """Members drawn per tournament when picking a parent (>= 1)."""
    crossover_rate: float = 0.1
    """Chance that an offspring mixes two parents neuron by neuron, in [0, 1]."""
    mutation_rate: float = 0.3
    """Fraction of an offspring's weights perturbed, in (0, 1]."""
    mutation_std: float = 0.3
    """Standard deviation of the Gaussian weight perturbation (> 0)."""
    episodes_per_generation: int = 2
    """Training periods every member trades per generation; fitness is the mean reward."""
    actor_lr: float = 3e-4
    """Adam learning rate of the DDPG actor (> 0)."""
    critic_lr: float = 1e-3
    """Adam learning rate of the DDPG critic (> 0)."""
    gamma: float = 0.9
    """Discount factor of the critic's targets, in [0, 1)."""
    tau: float = 0.005
    """Soft-update rate of the target networks, in (0, 1]."""
    noise_scale: float = 0.3
    """Std of the Gaussian exploration noise on the learner's actions at generation 0 (>= 0)."""
    noise_decay: float = 0.95
    """Factor applied to the exploration noise each generation, in (0, 1]."""
    gradient_steps_per_generation: int = 200
    """DDPG updates per generation (>= 0)."""
    batch_size: int = 128
    """Transitions per DDPG update (>= 1)."""
    buffer_capacity: int = 50_000
    """Transitions the shared replay buffer holds (>= batch_size)."""
    hidden_size: int = 64
    """Width of the two hidden layers of actors and critic (>= 1)."""
    log_frequency: int = 5
    """Generations between validations (>= 1); each train() call's last one validates too."""
    validation_episodes: int = 5
    """Validation periods the best agent trades at each validation (>= 1)."""
    sync_period: int = 5
    """Generations between injections of the DDPG actor into the population; 0 never."""
    checkpoint_on_improvement: bool = True
    """Save the best agent (erl-best.pt) whenever the best fitness ever improves."""
    checkpoint_frequency: int = 5
    """Generations between resume checkpoints; the end of every train() also saves one."""
    n_stocks: int = 4
    """Stocks traded by the simulator (1 to 256)."""
    episode_length: int = 200
    """Steps of one trading period (1 to 100_000)."""
    sim: dict[str, Any] = field(default_factory=dict)
    """Any other trading simulator setting by name, e.g. ``erl.sim.inaction_penalty=1e-3``
    (``sims.trading.TradingConfig``: loss_penalty_multiplier, max_holding_period...)."""

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first field whose value is not allowed."""
        check_numbers("erl", self, _ALLOWED)
        self.trading()
        check_bool("erl", self, "checkpoint_on_improvement")
        if self.elites >= self.population_size:
            raise ConfigError(
                f"erl.elite_fraction must be small enough to leave offspring in a population of "
                f"{self.population_size} (it keeps {self.elites}), got {self.elite_fraction!r}"
            )
        batch = self.batch_size
        within = Interval(batch, integer=True, text=f"at least batch_size ({batch})")
        check_number("erl", self, "buffer_capacity", within)

    @property
    def elites(self) -> int:
        """Members kept unchanged each generation."""
        return max(1, round(self.elite_fraction * self.population_size))

    def trading(self) -> TradingConfig:
        """The simulator's configuration for this run."""
        own = {"n_stocks": self.n_stocks, "episode_length": self.episode_length}
        return sim_config(TradingConfig, "erl", self.sim, **own)


CONFIG = ERLConfig


_ALLOWED = {
    "population_size": Interval(2, 100_000, integer=True),
    **dict.fromkeys(
        ("tournament_size", "episodes_per_generation", "hidden_size", "validation_episodes"),
        Interval(1, 100_000, integer=True),
    ),
    "gradient_steps_per_generation": Interval(0, 10_000_000, integer=True),
    "batch_size": Interval(1, 10_000_000, integer=True),
    "buffer_capacity": Interval(1, 100_000_000, integer=True),
    **dict.fromkeys(("log_frequency", "checkpoint_frequency"), Interval(1, 10**9, integer=True)),
    "sync_period": Interval(0, 10**9, integer=True),
    "n_stocks": Interval(1, 256, integer=True),
    "episode_length": Interval(1, 100_000, integer=True),
    "elite_fraction": Interval(0.0, 1.0, low_open=True, high_open=True),
    "crossover_rate": UNIT,
    "gamma": Interval(0.0, 1.0, high_open=True),
    **dict.fromkeys(("mutation_rate", "tau", "noise_decay"), Interval(0.0, 1.0, low_open=True)),
    **dict.fromkeys(("mutation_std", "actor_lr", "critic_lr"), POSITIVE),
    "noise_scale": NON_NEGATIVE,
}
"""What each numeric field of ``ERLConfig`` allows."""


# ---------------------------------------------------------------------- networks


class Actor(nn.Module):
    """Observation to target positions in [-1, 1]: two tanh hidden layers, tanh output."""

    def __init__(self, obs_size: int, n_actions: int, hidden: int) -> None:
        super().__init__()
        self.l1 = nn.Linear(obs_size, hidden)
        self.l2 = nn.Linear(hidden, hidden)
        self.l3 = nn.Linear(hidden, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions for a batch of observations."""
        x = torch.tanh(self.l1(obs))
        x = torch.tanh(self.l2(x))
        return torch.tanh(self.l3(x))


class Critic(nn.Module):
    """Q(observation, action): two ReLU hidden layers over their concatenation."""

    def __init__(self, obs_size: int, n_actions: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(obs_size + n_actions, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q values, shape ``(batch,)``."""
        q: torch.Tensor = self.net(torch.cat([obs, action], dim=-1))
        return q.squeeze(-1)


class _Stack:
    """Several actors' weights stacked in numpy, to act for all of them in one pass.

    A rollout step costs a few microseconds this way instead of one torch call per
    member; the arithmetic is the actors' own (float32, same layers).
    """

    def __init__(self, actors: Sequence[Actor]) -> None:
        layers = [(a.l1, a.l2, a.l3) for a in actors]
        self.layers: list[tuple[F32, F32]] = [
            (
                np.stack([m[k].weight.detach().numpy() for m in layers]),
                np.stack([m[k].bias.detach().numpy() for m in layers]),
            )
            for k in range(3)
        ]
        self.size = len(actors)

    def __call__(self, obs: F32) -> F32:
        """Actions of member ``m`` for ``obs[m]``, shape ``(members, n_actions)``."""
        x = obs
        for weight, bias in self.layers:
            x = np.tanh(np.matmul(weight, x[:, :, None])[:, :, 0] + bias)
        return x


def actor_policy(actor: Actor) -> PolicyFn:
    """A deterministic policy function of one actor, for the simulator's evaluation helpers."""
    stack = _Stack([actor])

    def policy(obs: F32) -> F32:
        return cast("F32", stack(obs[None, :])[0])

    return policy


def _clone(net: M) -> M:
    return copy.deepcopy(net)


# ------------------------------------------------------------------ replay buffer


class ReplayBuffer:
    """A numpy ring buffer of transitions ``(obs, action, reward, next_obs, done)``."""

    def __init__(self, capacity: int, obs_size: int, n_actions: int) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_size), dtype=np.float32)
        self.actions = np.zeros((capacity, n_actions), dtype=np.float32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_size), dtype=np.float32)
        self.dones = np.zeros(capacity, dtype=np.float32)
        self.ptr = 0
        self.size = 0

    def add(self, obs: F32, actions: F32, rewards: F32, next_obs: F32, dones: F32) -> None:
        """Append a batch of transitions, overwriting the oldest once full."""
        count = len(rewards)
        if count > self.capacity:  # only the newest fit
            obs, actions, rewards = (
                obs[-self.capacity :],
                actions[-self.capacity :],
                rewards[-self.capacity :],
            )
            next_obs, dones = next_obs[-self.capacity :], dones[-self.capacity :]
            count = self.capacity
        idx = (self.ptr + np.arange(count)) % self.capacity
        self.obs[idx] = obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.next_obs[idx] = next_obs
        self.dones[idx] = dones
        self.ptr = int((self.ptr + count) % self.capacity)
        self.size = min(self.capacity, self.size + count)

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[F32, F32, F32, F32, F32]:
        """``batch`` transitions drawn uniformly with replacement."""
        idx = rng.integers(0, self.size, size=batch)
        return (
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.dones[idx],
        )

    def state_dict(self) -> dict[str, Any]:
        """The filled part of the buffer and its write position."""
        n = self.size
        return {
            "obs": self.obs[:n].copy(),
            "actions": self.actions[:n].copy(),
            "rewards": self.rewards[:n].copy(),
            "next_obs": self.next_obs[:n].copy(),
            "dones": self.dones[:n].copy(),
            "ptr": self.ptr,
            "size": n,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved."""
        n = int(state["size"])
        for name in ("obs", "actions", "rewards", "next_obs", "dones"):
            getattr(self, name)[:n] = state[name]
        self.size = n
        self.ptr = int(state["ptr"])


# ---------------------------------------------------------------------- trainer


@dataclass(frozen=True, slots=True)
class _Rollout:
    """Total reward of each member over the generation's periods, and every transition."""

    rewards: F64
    obs: F32
    actions: F32
    step_rewards: F32
    next_obs: F32
    dones: F32


class ERLTrainer:
    """Evolves actors on the trading simulator with a DDPG learner; publishes only events."""

    def __init__(
        self,
        config: ERLConfig,
        bus: Bus,
        run_dir: Path,
        seed: int,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        config.validate()
        self.config = config
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = checkpoints.folder(self.run_dir)
        self.seed = int(seed)
        self.sim = config.trading()
        self.obs_size = self.sim.observation_size
        self.n_actions = self.sim.n_stocks
        self.rng = np.random.default_rng(self.seed)
        hidden = config.hidden_size
        # A local torch RNG stream: initial weights depend on the seed alone, and other
        # code sharing the process keeps its own global RNG state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.population = [self._new_actor() for _ in range(config.population_size)]
            self.actor = self._new_actor()
            self.critic = Critic(self.obs_size, self.n_actions, hidden)
            self.torch_rng = torch.get_rng_state()
        self.actor_target = _clone(self.actor)
        self.critic_target = _clone(self.critic)
        for net in (self.actor_target, self.critic_target):
            net.requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.buffer = ReplayBuffer(config.buffer_capacity, self.obs_size, self.n_actions)
        self.generation = 0
        """Generations completed; the step of the next generation."""
        self.best_fitness = -math.inf
        """Best fitness any member reached in any generation."""
        self.best_validation = -math.inf
        """Best validation fitness so far."""
        self.best_actor: Actor | None = None
        """The member that reached ``best_fitness``."""
        self.champion: Actor | None = None
        """The fittest member of the latest generation (the one validated)."""
        self.total_time = 0.0
        self.last_metrics: dict[str, float] = {}
        """The latest generation's metrics (and its validation results, if it validated)."""
        self._envs = [TradingEnv(self.sim) for _ in range(config.population_size + 1)]
        self._validation_env = TradingEnv(self.sim, split="validation")
        self.loop = TrainerLoop(bus, AXIS, name="erl", run_dir=self.run_dir, callbacks=callbacks)
        self.callbacks = self.loop.callbacks
        """Users' callbacks (``agents.callbacks``), in call order: append to add one."""
        self.resumed = self._resume()

    def _new_actor(self) -> Actor:
        return Actor(self.obs_size, self.n_actions, self.config.hidden_size)

    # -- the training loop --

    async def train(self, num_episodes: int) -> TrainResult:
        """Run ``num_episodes`` more generations, validating and checkpointing as configured."""
        return await self.loop.run(self, num_episodes)

    def begin(self) -> StepRecord:
        """Nothing to publish beyond the hyperparameters; the step the trainer runs next."""
        return StepRecord(self.generation, {})

    def result(self) -> TrainResult:
        """The last generation's metrics, the best fitness and the best validation so far."""
        best = {"fitness/best_ever": self.best_fitness, "validation/fitness": self.best_validation}
        return train_result(self.run_dir, self.generation, self.last_metrics, best)

    def step(self, last: bool) -> StepRecord:
        """One generation: evaluate, learn, select; validate when due and on the last one."""
        torch.set_num_threads(1)
        cfg = self.config
        g = self.generation
        start = time.perf_counter()
        metrics, improved = self._generation(g)
        elapsed = time.perf_counter() - start
        self.total_time += elapsed
        self.generation = g + 1
        metrics["training/generation_time"] = elapsed
        metrics["training/avg_generation_time"] = self.total_time / self.generation
        saved = (self._save_best(g),) if improved and cfg.checkpoint_on_improvement else ()
        self.last_metrics = dict(metrics)
        evaluations: tuple[Evaluated, ...] = ()
        trades: tuple[Publication, ...] = ()
        if (g + 1) % cfg.log_frequency == 0 or last:
            values, trades = self._validate()
            self.last_metrics.update(values)
            evaluations = (Evaluated("validation", values),)
        due = (g + 1) % cfg.checkpoint_frequency == 0
        return StepRecord(g, metrics, evaluations, trades, saved, checkpoint=due)

    def _generation(self, g: int) -> tuple[dict[str, float], bool]:
        """Generation ``g``'s rollout, DDPG updates and selection; its metrics, and whether the
        best fitness ever improved."""
        cfg = self.config
        members = [*self.population, self.actor]
        noise = np.zeros(len(members))
        noise[-1] = cfg.noise_scale * cfg.noise_decay**g
        rollout = self._rollout(members, self._train_seeds(g), noise)
        self.buffer.add(
            rollout.obs, rollout.actions, rollout.step_rewards, rollout.next_obs, rollout.dones
        )
        fitness = rollout.rewards[: cfg.population_size]
        actor_loss, critic_loss = self._learn()
        top = int(np.argmax(fitness))
        self.champion = _clone(self.population[top])
        improved = float(fitness[top]) > self.best_fitness
        if improved:
            self.best_fitness = float(fitness[top])
            self.best_actor = self.champion
        self.population = self._evolve(fitness)
        if cfg.sync_period and (g + 1) % cfg.sync_period == 0:
            # Offspring sit after the elites, so the last slot is never an elite.
            self.population[-1] = _clone(self.actor)
        metrics = {
            "fitness/mean": float(fitness.mean()),
            "fitness/max": float(fitness.max()),
            "fitness/min": float(fitness.min()),
            "fitness/std": float(fitness.std()),
            "fitness/best_ever": self.best_fitness,
            "train/actor_loss": actor_loss,
            "train/critic_loss": critic_loss,
            "train/learner_reward": float(rollout.rewards[-1]),
            "train/noise_scale": float(noise[-1]),
            "buffer/size": self.buffer.size,
            "buffer/utilization": self.buffer.size / self.buffer.capacity,
            "buffer/capacity": self.buffer.capacity,
        }
        return metrics, improved

    def _train_seeds(self, generation: int) -> list[int]:
        """The training periods of one generation: fresh ones every generation, shared by all."""
        seq = np.random.SeedSequence(self.seed, spawn_key=(generation,))
        states = seq.generate_state(self.config.episodes_per_generation, dtype=np.uint32)
        return [int(s) for s in states]

    def _rollout(self, members: Sequence[Actor], seeds: Sequence[int], noise: F64) -> _Rollout:
        """Every member trades every period in lockstep; the same prices for all of them.

        ``noise[m]`` is the std of Gaussian noise added to member ``m``'s actions.
        The totals equal ``evaluate_population`` on the same seeds for noise-free members.
        """
        stack = _Stack(members)
        count, length, n = len(members), self.sim.episode_length, self.n_actions
        envs = self._envs[:count]
        shape = (len(seeds), length, count)
        obs_log = np.zeros((*shape, self.obs_size), dtype=np.float32)
        next_log = np.zeros_like(obs_log)
        act_log = np.zeros((*shape, n), dtype=np.float32)
        rew_log = np.zeros(shape, dtype=np.float32)
        done_log = np.zeros(shape, dtype=np.float32)
        valid = np.zeros(shape, dtype=bool)
        totals = np.zeros(count)
        noisy = noise > 0
        for e, seed in enumerate(seeds):
            obs = np.stack([env.reset(seed=seed)[0] for env in envs])
            active = np.ones(count, dtype=bool)
            for t in range(length):
                actions = stack(obs)
                if noisy.any():
                    jitter = self.rng.standard_normal((count, n)) * noise[:, None]
                    actions = np.clip(actions + jitter, -1.0, 1.0).astype(np.float32)
                next_obs = obs.copy()
                for m in np.flatnonzero(active):
                    o, reward, terminated, truncated, _ = envs[m].step(actions[m])
                    next_obs[m] = o
                    rew_log[e, t, m] = reward
                    totals[m] += reward
                    if terminated or truncated:
                        active[m] = False
                        done_log[e, t, m] = float(terminated)
                    valid[e, t, m] = True
                obs_log[e, t] = obs
                act_log[e, t] = actions
                next_log[e, t] = next_obs
                obs = next_obs
                if not active.any():
                    break
        return _Rollout(
            rewards=totals / len(seeds),
            obs=obs_log[valid],
            actions=act_log[valid],
            step_rewards=rew_log[valid],
            next_obs=next_log[valid],
            dones=done_log[valid],
        )

    def _learn(self) -> tuple[float, float]:
        """DDPG updates from the shared buffer; mean actor and critic losses (NaN if none)."""
        cfg = self.config
        steps = cfg.gradient_steps_per_generation
        if steps == 0 or self.buffer.size < cfg.batch_size:
            return math.nan, math.nan
        actor_total = critic_total = 0.0
        for _ in range(steps):
            obs, actions, rewards, next_obs, dones = (
                torch.from_numpy(a) for a in self.buffer.sample(self.rng, cfg.batch_size)
            )
            with torch.no_grad():
                next_q = self.critic_target(next_obs, self.actor_target(next_obs))
                target = rewards + cfg.gamma * (1.0 - dones) * next_q
            critic_loss = F.mse_loss(self.critic(obs, actions), target)
            self.critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()  # type: ignore[no-untyped-call]
            self.critic_opt.step()
            actor_loss = -self.critic(obs, self.actor(obs)).mean()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            with torch.no_grad():
                for net, target_net in (
                    (self.actor, self.actor_target),
                    (self.critic, self.critic_target),
                ):
                    for p, tp in zip(net.parameters(), target_net.parameters(), strict=True):
                        tp.lerp_(p, cfg.tau)
            actor_total += actor_loss.item()
            critic_total += critic_loss.item()
        return actor_total / steps, critic_total / steps

    def _evolve(self, fitness: F64) -> list[Actor]:
        """The next population: elites unchanged, then mutated (crossed) tournament winners."""
        cfg = self.config
        order = np.argsort(-fitness, kind="stable")
        nxt = [_clone(self.population[i]) for i in order[: cfg.elites]]
        while len(nxt) < cfg.population_size:
            child = _clone(self.population[self._tournament(fitness)])
            if cfg.crossover_rate > 0 and self.rng.random() < cfg.crossover_rate:
                self._crossover(child, self.population[self._tournament(fitness)])
            self._mutate(child)
            nxt.append(child)
        return nxt

    def _tournament(self, fitness: F64) -> int:
        picks = self.rng.choice(len(fitness), size=min(self.config.tournament_size, len(fitness)))
        return int(picks[np.argmax(fitness[picks])])

    @torch.no_grad()
    def _crossover(self, child: Actor, other: Actor) -> None:
        """Take each output neuron (its weights and bias) from ``other`` with chance one half."""
        for mine, theirs in zip(
            (child.l1, child.l2, child.l3), (other.l1, other.l2, other.l3), strict=True
        ):
            rows = torch.from_numpy(self.rng.random(mine.out_features) < 0.5)
            mine.weight[rows] = theirs.weight[rows]
            mine.bias[rows] = theirs.bias[rows]

    @torch.no_grad()
    def _mutate(self, actor: Actor) -> None:
        """Add N(0, mutation_std) to a ``mutation_rate`` share of the weights."""
        cfg = self.config
        for p in actor.parameters():
            shape = tuple(p.shape)
            mask = self.rng.random(shape) < cfg.mutation_rate
            delta = np.where(mask, self.rng.standard_normal(shape) * cfg.mutation_std, 0.0)
            p.add_(torch.from_numpy(delta.astype(np.float32)))

    # -- validation --

    def _validate(
        self,
    ) -> tuple[dict[str, float], tuple[Publication, ...]]:
        """Trade the validation periods with the generation's champion: results and trades."""
        assert self.champion is not None
        seeds = range(self.config.validation_episodes)
        results: list[EpisodeResult] = evaluate_policies(
            self._validation_env, actor_policy(self.champion), seeds
        )
        trades = [trade for result in results for trade in result.trades]
        wins = sum(1 for trade in trades if trade.pnl > 0)
        fitness = float(np.mean([r.total_reward for r in results]))
        values: dict[str, float] = {
            "validation/fitness": fitness,
            "validation/win_rate": wins / len(trades) if trades else 0.0,
            "validation/total_trades": len(trades),
            "validation/winning_trades": wins,
        }
        self.best_validation = max(self.best_validation, fitness)
        return values, tuple((TradeClosed, _trade_fields(trade)) for trade in trades)

    def champion_policy(self) -> PolicyFn:
        """The latest generation's fittest member as a policy function."""
        if self.champion is None:
            raise RuntimeError("no generation has run yet; call train() first")
        return actor_policy(self.champion)

    def best_policy(self) -> PolicyFn:
        """The member with the best fitness ever as a policy function."""
        if self.best_actor is None:
            raise RuntimeError("no generation has run yet; call train() first")
        return actor_policy(self.best_actor)

    # -- checkpoints --

    def _save_best(self, g: int) -> Saved:
        assert self.best_actor is not None
        state = {
            "actor": self.best_actor.state_dict(),
            "fitness": self.best_fitness,
            "generation": g,
            "config": asdict(self.config),
        }
        path = checkpoints.save(state, self.checkpoint_dir / BEST_FILE)
        return Saved(path, {"generation": g, "fitness": self.best_fitness})

    def save(self) -> Saved:
        """Write everything needed to continue the run exactly where it stopped."""
        state = {
            "format": _FORMAT,
            "config": asdict(self.config),
            "seed": self.seed,
            "generation": self.generation,
            "best_fitness": self.best_fitness,
            "best_validation": self.best_validation,
            "total_time": self.total_time,
            "population": [a.state_dict() for a in self.population],
            "champion": None if self.champion is None else self.champion.state_dict(),
            "best_actor": None if self.best_actor is None else self.best_actor.state_dict(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "buffer": self.buffer.state_dict(),
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": self.torch_rng,
        }
        path = checkpoints.save(state, self.checkpoint_dir / RESUME_FILE)
        return Saved(path, {"generation": self.generation, "fitness": self.best_fitness})

    def _resume(self) -> bool:
        """Load the run's resume checkpoint if ``run_dir`` holds one."""
        path = self.checkpoint_dir / RESUME_FILE
        if not path.exists():
            return False
        state = torch.load(path, weights_only=False)  # our own file: numpy RNG state inside
        saved = state["config"]
        for name in _STRUCTURAL:
            if saved.get(name) != getattr(self.config, name):
                raise ConfigError(
                    f"erl.{name} must be {saved.get(name)!r} to resume the run in {self.run_dir} "
                    f"(its checkpoint was written with it), got {getattr(self.config, name)!r}"
                )
        self.seed = int(state["seed"])
        self.generation = int(state["generation"])
        self.best_fitness = float(state["best_fitness"])
        self.best_validation = float(state["best_validation"])
        self.total_time = float(state["total_time"])
        for actor, weights in zip(self.population, state["population"], strict=True):
            actor.load_state_dict(weights)
        if state["champion"] is not None:
            self.champion = self._new_actor()
            self.champion.load_state_dict(state["champion"])
        if state["best_actor"] is not None:
            self.best_actor = self._new_actor()
            self.best_actor.load_state_dict(state["best_actor"])
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        # Optimizer state carries the old learning rates; the config given now wins.
        for opt, lr in (
            (self.actor_opt, self.config.actor_lr),
            (self.critic_opt, self.config.critic_lr),
        ):
            for group in opt.param_groups:
                group["lr"] = lr
        self.buffer.load_state_dict(state["buffer"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.torch_rng = state["torch_rng"]
        return True


def _trade_fields(trade: Trade) -> dict[str, Any]:
    """A closed trade as the fields of its ``TradeClosed`` event."""
    return {
        "stock": trade.stock,
        "direction": trade.direction,
        "size": trade.size,
        "entry_price": trade.entry_price,
        "exit_price": trade.exit_price,
        "entry_step": trade.entry_step,
        "exit_step": trade.exit_step,
        "holding_duration": trade.holding_duration,
        "pnl": trade.pnl,
        "time_of_day": trade.time_of_day,
    }


def build(
    config: ERLConfig, bus: Bus, run_dir: Path, seed: int, callbacks: Sequence[Callback] = ()
) -> ERLTrainer:
    """An ERL trainer; resumes from ``run_dir``'s checkpoint when there is one."""
    return ERLTrainer(config, bus, run_dir, seed, callbacks)


SPEC = TrainerSpec(
    config=ERLConfig,
    build=build,
    episodes=30,
    axis=AXIS,
    sim=TradingConfig,
    # The seeds' sweep names for these settings.
    aliases={
        "num_generations": "episodes",
        "population_size": "erl.population_size",
        "buffer_size": "erl.buffer_capacity",
    },
)
