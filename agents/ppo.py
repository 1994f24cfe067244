"""PPO bidding agent for the ad-auction simulator (GAELP-style performance marketing).

The policy
    A CleanRL-style actor-critic (two tanh MLPs) picks one of the simulator's bid levels per
    slot from a categorical distribution; trained with PPO: GAE advantages, a clipped surrogate,
    a value loss, an entropy bonus, per-minibatch advantage normalisation and gradient clipping.
    One update follows every ``episodes_per_update`` episodes (days).

The CTR model, and where its data comes from
    ``AuctionEnv.step`` reports per-slot counts (impressions won, clicks) but not the won
    impressions' contexts. The agent therefore learns its click model from what it does see: each
    slot's batch summary (the observation before it bid: segment shares, mean intent, mobile
    share, hour) and its own bid. That summary is exactly the batch average of the simulator's
    per-impression ``features(contexts, bids)`` vector, so the model is a logistic regression on
    ``features`` fitted to the observed clicks as binomial counts (``clicks`` of ``impressions``
    won in the slot). It never reads the true model's weights. Clicks come only from the won
    impressions, which skew cheaper (lower intent) than the batch, so the fit is slightly biased;
    after 30 default days its correlation with the true CTR was 0.94-0.99 over seeds 0-9.
    Every ``eval_frequency`` episodes
    it predicts the CTR of each impression of ``make_calibration_data`` and is scored with
    ``evaluate_predictions`` against the true CTR.

Telemetry (all through the bus, published by the shared loop ``agents.loop`` from each
episode's ``StepRecord``)
    Hyperparameters and system info, and the calibration data's statistics (``calibration/*``,
    once per trainer, at the step it starts from: 0 for a fresh run); per episode one
    ``Metrics`` event on axis ``episode`` with ``episode/*`` and, after an update, ``losses/*``;
    the calibration evaluation (``eval/*``) every ``eval_frequency`` episodes; a checkpoint every
    ``save_freq`` episodes and at the end of ``train`` (``ArtifactSaved``). Windowed aggregates
    come from the bus's aggregator, not from here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from agents import checkpoints, ppo_kit
from agents.base import TrainerSpec, TrainResult, train_result
from agents.callbacks import Callback
from agents.common import NON_NEGATIVE, POSITIVE, UNIT, at_least, check_bool, check_numbers
from agents.loop import Evaluated, Saved, StepRecord, TrainerLoop
from agents.ppo_kit import Heads, Means, ObservationInput, gae
from agents.sim_settings import sim_config
from sims.auction import (
    N_SEGMENTS,
    OBS_FIELDS,
    OBS_MEAN_INTENT,
    AuctionConfig,
    AuctionEnv,
    CalibrationData,
    EpisodeAccumulator,
    EpisodeStats,
    ObsArray,
    evaluate_predictions,
    make_calibration_data,
)
from telemetry.bus import Bus

AXIS = "episode"
"""The step axis of every per-episode event."""

EPISODE_KEYS = (
    "total_reward",
    "steps",
    "reward_per_step",
    "roas",
    "ctr",
    "conversion_rate",
    "total_cost",
    "total_revenue",
    "cost_per_conversion",
    "revenue_per_step",
    "impressions",
    "clicks",
    "conversions",
)
"""Metric names published per episode, each under ``episode/``."""

LOSS_KEYS = (
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_frac",
    "explained_variance",
    "ctr_loss",
)
"""Metric names published after each update, each under ``losses/``."""

_CHECKPOINT = re.compile(r"^episode_(\d+)\.pt$")


@dataclass
class PPOConfig:
    """Hyperparameters of the PPO bidding agent and its CTR model."""

    lr: float = 3e-3
    """Adam learning rate of the actor-critic (> 0)."""
    gamma: float = 0.9
    """Discount factor (in [0, 1]); rewards are mostly immediate profit, so it is short."""
    gae_lambda: float = 0.5
    """GAE lambda (in [0, 1]); low, leaning on the critic: slot rewards are very noisy."""
    clip_coef: float = 0.2
    """PPO surrogate clipping coefficient (> 0)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient (>= 0); 0 learned fastest in 30 days (0.01 and 0.03 slower)."""
    vf_coef: float = 0.5
    """Value loss coefficient (>= 0)."""
    update_epochs: int = 8
    """Passes over each rollout per update (>= 1)."""
    minibatch_size: int = 48
    """Transitions per gradient step (>= 1); the default is one day's 48 slots."""
    hidden_size: int = 64
    """Width of the two hidden layers of actor and critic (>= 1)."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip (> 0)."""
    norm_obs: bool = True
    """Standardise observations with running mean and variance (clipped to +-5)."""
    episodes_per_update: int = 1
    """Episodes (days) collected per PPO update (>= 1)."""
    eval_frequency: int = 5
    """Evaluate the CTR model on the calibration data every this many episodes (0: never)."""
    save_freq: int = 10
    """Save a checkpoint every this many episodes (0: only at the end of train)."""
    ctr_lr: float = 0.05
    """Adam learning rate of the CTR logistic regression (> 0)."""
    ctr_steps: int = 20
    """Full-batch gradient steps on the CTR model per update (>= 0; 0 freezes it)."""
    ctr_buffer_size: int = 4800
    """Most recent slots kept to fit the CTR model (>= 1)."""
    ctr_l2: float = 1e-4
    """L2 penalty on the CTR model's weights (>= 0)."""
    calibration_size: int = 2000
    """Impressions in the calibration data set (>= 1)."""
    calibration_seed: int = 12345
    """Seed of the calibration data set (>= 0), independent of the run's seed."""
    steps_per_episode: int = 48
    """Slots per simulated day (>= 1)."""
    impressions_per_step: int = 100
    """Impression opportunities per slot (>= 1)."""
    daily_budget: float = 600.0
    """Daily budget of the simulated advertiser (> 0)."""
    sim: dict[str, Any] = field(default_factory=dict)
    """Any other auction simulator setting by name, e.g. ``ppo.sim.mobile_share=0.5``
    (``sims.auction.AuctionConfig``: n_bid_levels, max_bid_multiplier, segment_mix...)."""

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first field whose value is not allowed."""
        check_numbers("ppo", self, _ALLOWED)
        check_bool("ppo", self, "norm_obs")
        self.auction_config()

    def auction_config(self) -> AuctionConfig:
        """The simulator's configuration for this run."""
        own = {
            "steps_per_episode": self.steps_per_episode,
            "impressions_per_step": self.impressions_per_step,
            "daily_budget": self.daily_budget,
        }
        return sim_config(AuctionConfig, "ppo", self.sim, **own)


CONFIG = PPOConfig
"""The config dataclass of this trainer (``ppo.<field>=value`` on the command line)."""


_ALLOWED = {
    "lr": POSITIVE,
    "gamma": UNIT,
    "gae_lambda": UNIT,
    "clip_coef": POSITIVE,
    "ent_coef": NON_NEGATIVE,
    "vf_coef": NON_NEGATIVE,
    "update_epochs": at_least(1),
    "minibatch_size": at_least(1),
    "hidden_size": at_least(1),
    "max_grad_norm": POSITIVE,
    "episodes_per_update": at_least(1),
    "eval_frequency": at_least(0),
    "save_freq": at_least(0),
    "ctr_lr": POSITIVE,
    "ctr_steps": at_least(0),
    "ctr_buffer_size": at_least(1),
    "ctr_l2": NON_NEGATIVE,
    "calibration_size": at_least(1),
    "calibration_seed": at_least(0),
    "steps_per_episode": at_least(1),
    "impressions_per_step": at_least(1),
    "daily_budget": POSITIVE,
}
"""What each numeric field of ``PPOConfig`` allows."""


# --------------------------------------------------------------------------- models


class ActorCritic(Heads):
    """Separate tanh MLPs for the bid-level logits and the state value."""

    def logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Unnormalised log-probabilities of the bid levels, shape (n, n_actions)."""
        return self.head(obs)


class CTRModel(nn.Module):
    """Logistic regression on the simulator's click features (``FEATURE_FIELDS``)."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.constant_(self.linear.bias, -2.0)  # a CTR near 12%: a neutral prior

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Click logits, shape (n,)."""
        out: torch.Tensor = self.linear(feats).squeeze(-1)
        return out


# --------------------------------------------------------------------------- rollouts


@dataclass
class _Rollout:
    """Transitions of whole episodes, with their GAE advantages and returns."""

    obs: list[torch.Tensor]
    actions: list[torch.Tensor]
    logprobs: list[torch.Tensor]
    advantages: list[torch.Tensor]
    returns: list[torch.Tensor]
    values: list[torch.Tensor]


def _empty_rollout() -> _Rollout:
    return _Rollout([], [], [], [], [], [])


class PPOTrainer:
    """Plays days of the auction simulator, learns to bid with PPO, and publishes telemetry."""

    def __init__(
        self,
        config: PPOConfig,
        bus: Bus,
        run_dir: Path,
        seed: int,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        config.validate()
        self.config = config
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.sim_config = config.auction_config()
        self.env = AuctionEnv(self.sim_config)
        self.n_actions = self.sim_config.n_bid_levels
        self._multipliers = self.sim_config.bid_multipliers
        self._log_segment_bid = np.log(
            self.sim_config.base_bid * np.asarray(self.sim_config.segment_base_value)
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = ActorCritic(len(OBS_FIELDS), self.n_actions, config.hidden_size)
            self.ctr_model = CTRModel(N_SEGMENTS + 5)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, eps=1e-5)
        self.ctr_optimizer = torch.optim.Adam(self.ctr_model.parameters(), lr=config.ctr_lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.obs_input = ObservationInput(len(OBS_FIELDS), config.norm_obs)
        self.calibration: CalibrationData = make_calibration_data(
            config.calibration_seed, config.calibration_size, config=self.sim_config
        )
        self.episode = 0
        """Episodes played so far; the next episode's step number."""
        self.best_reward = -math.inf
        self.best_correlation = -math.inf
        self.last_metrics: dict[str, float] = {}
        self._rollout = _empty_rollout()
        self._pending = 0
        self._ctr_feats = torch.zeros((0, N_SEGMENTS + 5))
        self._ctr_clicks = torch.zeros(0)
        self._ctr_trials = torch.zeros(0)
        self.loop = TrainerLoop(bus, AXIS, name="ppo", run_dir=self.run_dir, callbacks=callbacks)
        self.callbacks = self.loop.callbacks
        """Users' callbacks (``agents.callbacks``), in call order: append to add one."""
        self.resumed_from = checkpoints.latest(checkpoints.folder(self.run_dir), _CHECKPOINT)
        if self.resumed_from is not None:
            self.load(self.resumed_from)

    # -- the policy --

    def act(
        self, obs: ObsArray, *, greedy: bool = False, generator: torch.Generator | None = None
    ) -> int:
        """The bid level for one observation: the policy's mode if ``greedy``, else a sample.

        Samples draw from ``generator``, by default the trainer's own (part of its state).
        """
        return self._choose(self.obs_input.tensor(obs), greedy, generator or self.generator)

    def _choose(self, x: torch.Tensor, greedy: bool, generator: torch.Generator) -> int:
        with torch.no_grad():
            logits = self.model.logits(x[None])[0]
            if greedy:
                return int(torch.argmax(logits))
            probs = torch.softmax(logits, dim=-1)
            return int(torch.multinomial(probs, 1, generator=generator))

    def episode_seed(self, episode: int) -> int:
        """The simulator seed of training episode ``episode`` (same seed, same days)."""
        return int(np.random.SeedSequence([self.seed, episode]).generate_state(1)[0])

    def evaluate_policy(self, seeds: list[int], *, greedy: bool = True) -> list[float]:
        """Total reward of one day per seed on a fresh environment, without learning.

        Sampled actions (``greedy=False``) draw from a generator seeded by the first seed, so
        evaluating never moves the trainer's own random state.
        """
        torch.set_num_threads(1)
        env = AuctionEnv(self.sim_config)
        gen = torch.Generator().manual_seed(seeds[0] if seeds else 0)
        rewards = []
        for s in seeds:
            obs, _ = env.reset(seed=s)
            acc = EpisodeAccumulator()
            done = False
            while not done:
                level = self.act(obs, greedy=greedy, generator=gen)
                obs, reward, terminated, truncated, info = env.step(level)
                acc.add(reward, info)
                done = terminated or truncated
            rewards.append(acc.total_reward)
        return rewards

    # -- the CTR model --

    def slot_features(self, obs: ObsArray, level: int) -> NDArray[np.float64]:
        """The batch average of ``features(contexts, bids)`` for a slot bid at ``level``.

        Exact from the observation: segment shares, mobile share, sin/cos of the slot's hour,
        mean intent, and the mean log bid (log multiplier plus the share-weighted log of each
        segment's base bid).
        """
        shares = np.asarray(obs[:N_SEGMENTS], dtype=np.float64)
        shares = shares / max(float(shares.sum()), 1e-12)
        multiplier = max(float(self._multipliers[level]), 1e-3)
        out = np.empty(N_SEGMENTS + 5, dtype=np.float64)
        out[:N_SEGMENTS] = shares
        out[N_SEGMENTS] = obs[5]  # mobile share
        out[N_SEGMENTS + 1] = obs[6]  # sin(hour)
        out[N_SEGMENTS + 2] = obs[7]  # cos(hour)
        out[N_SEGMENTS + 3] = obs[OBS_MEAN_INTENT]
        out[N_SEGMENTS + 4] = math.log(multiplier) + float(shares @ self._log_segment_bid)
        return out

    def predict_ctr(self, feats: NDArray[np.float64]) -> NDArray[np.float64]:
        """Predicted click probability for each row of a ``features`` matrix."""
        with torch.no_grad():
            logits = self.ctr_model(torch.as_tensor(feats, dtype=torch.float32))
            out: NDArray[np.float64] = torch.sigmoid(logits).double().numpy()
        return out

    def _add_ctr_data(
        self, feats: list[NDArray[np.float64]], clicks: list[int], won: list[int]
    ) -> None:
        """Append the slots that won impressions to the CTR buffer, keeping the newest."""
        keep = [i for i, n in enumerate(won) if n > 0]
        if not keep:
            return
        cap = self.config.ctr_buffer_size
        new = torch.as_tensor(np.stack([feats[i] for i in keep]), dtype=torch.float32)
        self._ctr_feats = torch.cat([self._ctr_feats, new])[-cap:]
        c = torch.tensor([float(clicks[i]) for i in keep])
        n = torch.tensor([float(won[i]) for i in keep])
        self._ctr_clicks = torch.cat([self._ctr_clicks, c])[-cap:]
        self._ctr_trials = torch.cat([self._ctr_trials, n])[-cap:]

    def _fit_ctr(self) -> float:
        """Full-batch steps of binomial log-likelihood on the buffer; the last loss per trial."""
        trials = self._ctr_trials.sum()
        if self._ctr_feats.shape[0] == 0 or float(trials) == 0.0:
            return math.nan
        loss = torch.tensor(math.nan)
        for _ in range(self.config.ctr_steps):
            logits = self.ctr_model(self._ctr_feats)
            # -[c log p + (n - c) log(1 - p)], via log-sigmoid for stability
            nll = (
                -(
                    self._ctr_clicks * nn.functional.logsigmoid(logits)
                    + (self._ctr_trials - self._ctr_clicks) * nn.functional.logsigmoid(-logits)
                ).sum()
                / trials
            )
            loss = nll + self.config.ctr_l2 * self.ctr_model.linear.weight.pow(2).sum()
            self.ctr_optimizer.zero_grad()
            torch.autograd.backward(loss)
            self.ctr_optimizer.step()
        return float(loss.detach())

    def evaluate_ctr(self) -> dict[str, float]:
        """Score the CTR model on the calibration data against the true CTR."""
        return evaluate_predictions(self.calibration, self.predict_ctr(self.calibration.features))

    # -- one episode, off the event loop --

    def begin(self) -> StepRecord:
        """The calibration data's statistics, once per trainer, at the step it starts from."""
        stats = self.calibration.statistics()
        values = {f"calibration/{k}": v for k, v in stats.items()}
        return StepRecord(self.episode, {}, (Evaluated("calibration_data", values),))

    def step(self, last: bool) -> StepRecord:
        """Play one day, update when a rollout is complete, evaluate and checkpoint when due."""
        torch.set_num_threads(1)
        cfg = self.config
        ep = self.episode
        stats = self._play_day(self.env, self.episode_seed(ep))
        self._pending += 1
        metrics = {f"episode/{k}": float(getattr(stats, k)) for k in EPISODE_KEYS}
        losses = self._update() if self._pending >= cfg.episodes_per_update else {}
        self.episode = ep + 1
        self.last_metrics = metrics
        self.best_reward = max(self.best_reward, stats.total_reward)
        evaluations: tuple[Evaluated, ...] = ()
        if cfg.eval_frequency and self.episode % cfg.eval_frequency == 0:
            scores = self.evaluate_ctr()
            self.best_correlation = max(self.best_correlation, scores["correlation"])
            evaluations = (Evaluated("calibration", {f"eval/{k}": v for k, v in scores.items()}),)
        return StepRecord(
            ep,
            metrics | losses,
            evaluations,
            checkpoint=bool(cfg.save_freq and self.episode % cfg.save_freq == 0),
        )

    def _play_day(self, env: AuctionEnv, seed: int) -> EpisodeStats:
        """Play one day with sampled bids, adding it to the rollout and the CTR buffer."""
        obs, _ = env.reset(seed=seed)
        acc = EpisodeAccumulator()
        inputs: list[torch.Tensor] = []
        actions: list[int] = []
        rewards: list[float] = []
        feats: list[NDArray[np.float64]] = []
        clicks: list[int] = []
        won: list[int] = []
        done = False
        while not done:
            self.obs_input.update(obs)
            x = self.obs_input.tensor(obs)
            level = self._choose(x, False, self.generator)
            feats.append(self.slot_features(obs, level))
            obs, reward, terminated, truncated, info = env.step(level)
            acc.add(reward, info)
            inputs.append(x)
            actions.append(level)
            rewards.append(float(reward))
            clicks.append(int(info["clicks"]))
            won.append(int(info["impressions"]))
            done = terminated or truncated
        self._store(inputs, actions, rewards)
        self._add_ctr_data(feats, clicks, won)
        return acc.stats()

    def _store(self, obs: list[torch.Tensor], actions: list[int], rewards: list[float]) -> None:
        """Add one finished episode to the rollout, with its log-probs, values and GAE."""
        x = torch.stack(obs)
        a = torch.tensor(actions)
        with torch.no_grad():
            logp = torch.log_softmax(self.model.logits(x), dim=-1).gather(1, a[:, None])[:, 0]
            values = self.model.value(x)
        adv, ret = gae(torch.tensor(rewards), values, self.config.gamma, self.config.gae_lambda)
        r = self._rollout
        r.obs.append(x)
        r.actions.append(a)
        r.logprobs.append(logp)
        r.advantages.append(adv)
        r.returns.append(ret)
        r.values.append(values)

    def _update(self) -> dict[str, float]:
        """One PPO update on the collected rollout (CleanRL's loop) and the CTR model's fit."""
        cfg = self.config
        r = self._rollout
        obs, actions, old_logp = torch.cat(r.obs), torch.cat(r.actions), torch.cat(r.logprobs)
        advantages, returns = torch.cat(r.advantages), torch.cat(r.returns)
        means = Means()
        for _ in range(cfg.update_epochs):
            for idx in ppo_kit.minibatches(
                len(obs), cfg.minibatch_size, self.generator, drop_last=False
            ):
                log_probs = torch.log_softmax(self.model.logits(obs[idx]), dim=-1)
                new_logp = log_probs.gather(1, actions[idx, None])[:, 0]
                entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
                surrogate = ppo_kit.clipped_surrogate(
                    new_logp, old_logp[idx], advantages[idx], cfg.clip_coef
                )
                v_loss = 0.5 * ppo_kit.value_loss(self.model.value(obs[idx]), returns[idx])
                loss = surrogate.loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
                ppo_kit.gradient_step(
                    self.optimizer, loss, [self.model.parameters()], cfg.max_grad_norm
                )
                means.add(
                    policy_loss=surrogate.loss,
                    value_loss=v_loss,
                    entropy=entropy,
                    approx_kl=surrogate.approx_kl,
                    clip_frac=surrogate.clip_frac,
                )
        out = means.means()
        out["explained_variance"] = ppo_kit.explained_variance(returns, torch.cat(r.values))
        out["ctr_loss"] = self._fit_ctr()
        self._rollout = _empty_rollout()
        self._pending = 0
        return {f"losses/{k}": out[k] for k in LOSS_KEYS}

    # -- checkpoints --

    def save(self) -> Saved:
        """Write a checkpoint of everything needed to continue exactly."""
        path = checkpoints.folder(self.run_dir) / f"episode_{self.episode:06d}.pt"
        r = self._rollout
        state = {
            "episode": self.episode,
            "seed": self.seed,
            "config": asdict(self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ctr_model": self.ctr_model.state_dict(),
            "ctr_optimizer": self.ctr_optimizer.state_dict(),
            "ctr_data": (self._ctr_feats, self._ctr_clicks, self._ctr_trials),
            "generator": self.generator.get_state(),
            "obs_rms": self.obs_input.state(),
            "rollout": (r.obs, r.actions, r.logprobs, r.advantages, r.returns, r.values),
            "pending": self._pending,
            "best_reward": self.best_reward,
            "best_correlation": self.best_correlation,
            "last_metrics": self.last_metrics,
        }
        reward = self.last_metrics.get("episode/total_reward", math.nan)
        metadata = {"episode": self.episode, "total_reward": reward}
        return Saved(checkpoints.save(state, path), metadata)

    def load(self, path: Path) -> None:
        """Restore the state saved by ``save``."""
        state = torch.load(path, weights_only=True)
        self.episode = int(state["episode"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ctr_model.load_state_dict(state["ctr_model"])
        self.ctr_optimizer.load_state_dict(state["ctr_optimizer"])
        self._ctr_feats, self._ctr_clicks, self._ctr_trials = state["ctr_data"]
        self.generator.set_state(state["generator"])
        self.obs_input.load(state["obs_rms"])
        self._rollout = _Rollout(*(list(part) for part in state["rollout"]))
        self._pending = int(state["pending"])
        self.best_reward = float(state["best_reward"])
        self.best_correlation = float(state["best_correlation"])
        self.last_metrics = dict(state["last_metrics"])

    # -- the loop --

    async def train(self, num_episodes: int) -> TrainResult:
        """Train for ``num_episodes`` more episodes (days) and return final and best metrics."""
        return await self.loop.run(self, num_episodes)

    def result(self) -> TrainResult:
        """Final (last episode's) and best metrics so far."""
        best = {"episode/total_reward": self.best_reward, "eval/correlation": self.best_correlation}
        return train_result(self.run_dir, self.episode, self.last_metrics, best)


def build(
    config: PPOConfig, bus: Bus, run_dir: Path, seed: int, callbacks: Sequence[Callback] = ()
) -> PPOTrainer:
    """A PPO trainer; resumes from the latest checkpoint in ``run_dir / "checkpoints"``."""
    return PPOTrainer(config, bus, run_dir, seed, callbacks)


SPEC = TrainerSpec(config=PPOConfig, build=build, episodes=300, axis=AXIS, sim=AuctionConfig)

__all__ = [
    "CONFIG",
    "EPISODE_KEYS",
    "LOSS_KEYS",
    "SPEC",
    "ActorCritic",
    "CTRModel",
    "PPOConfig",
    "PPOTrainer",
    "build",
    "gae",
]
