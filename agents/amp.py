"""Adversarial Motion Priors (AMP) on the planar character simulator ``sims.motion``.

The policy
    A Gaussian PPO actor-critic (two separate tanh MLPs, state-independent log std, no tanh
    squashing of actions): the environment clips actions to ``[-1, 1]`` and, as in AMP /
    rl_games, a *bounds loss* pulls action means that leave ``[-1, 1]`` back inside. Policy
    observations are normalised by running statistics (``normalize_obs``). GAE advantages
    (truncated episodes bootstrap from the value of their terminal observation), a clipped
    surrogate, a clipped value loss, an entropy bonus, per-minibatch advantage normalisation,
    gradient clipping, and an optional KL-adaptive learning rate (rl_games' ``adaptive``
    schedule) or linear decay.

The motion prior
    A discriminator (MLP on AMP transitions ``(n, 28)``: two consecutive heading-local frames,
    ``info["amp_obs"]``) is trained with the least-squares GAN loss of AMP, reference
    transitions from :func:`sims.motion.make_reference_clips` towards ``+1`` and the agent's
    towards ``-1``, plus a gradient penalty on the reference samples, an L2 penalty on its
    output layer (``disc_logit_reg``) and weight decay. Its inputs are standardised with
    fixed statistics of the reference data. The style reward of a transition is
    ``max(0, 1 - 0.25 (d - 1)^2)``; the policy's reward is
    ``task_reward_weight * task + style_reward_weight * style``.

Telemetry (all through the bus, axis ``epoch``, step = epoch index, continuing on resume;
published by the shared loop ``agents.loop`` from each epoch's ``StepRecord``)
    Hyperparameters and system info once; per epoch ONE ``Metrics`` event with the AMP /
    rl_games names (:data:`EPOCH_KEYS`); every ``eval_frequency`` epochs and at the end of
    ``train`` an ``Evaluation`` of the deterministic policy (action means) with
    :func:`sims.motion.evaluate`, keys ``eval/<experiment>/...`` (:data:`EVAL_KEYS`); a
    checkpoint every ``save_freq`` epochs and at the end of ``train`` (``ArtifactSaved``
    named ``amp-<epochs done>``, metadata ``epoch``, ``frames``, ``reward``).

``rewards/mean`` and ``episode_lengths/mean`` are, as rl_games' ``rewards/step`` and
``episode_lengths/step``, the mean task return and length of the last ``games_to_track``
finished episodes (NaN until one has finished).
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
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
from agents.common import (
    NON_NEGATIVE,
    POSITIVE,
    UNIT,
    Interval,
    RunningMeanStd,
    at_least,
    check_bool,
    check_number,
    check_numbers,
)
from agents.common import orthogonal_layer as _layer
from agents.loop import Evaluated, Saved, StepRecord, TrainerLoop
from agents.ppo_kit import Heads, Means, ObservationInput, gae
from agents.sim_settings import sim_config
from sims.motion import (
    ACTION_DIM,
    AMP_TRANSITION_DIM,
    OBS_DIM,
    MotionClip,
    MotionConfig,
    MotionEnv,
    evaluate,
    make_reference_clips,
    sample_reference_transitions,
)
from telemetry.bus import Bus
from telemetry.errors import ConfigError

AXIS = "epoch"
"""The step axis of every per-epoch event."""

EPOCH_KEYS = (
    "performance/total_fps",
    "performance/step_fps",
    "performance/update_time",
    "performance/play_time",
    "losses/a_loss",
    "losses/c_loss",
    "losses/disc_loss",
    "losses/bounds_loss",
    "losses/entropy",
    "info/epochs",
    "info/last_lr",
    "info/lr_mul",
    "info/clip_frac",
    "info/kl",
    "info/disc_agent_acc",
    "info/disc_demo_acc",
    "info/disc_agent_logit",
    "info/disc_demo_logit",
    "info/disc_grad_penalty",
    "info/disc_reward_mean",
    "info/disc_reward_std",
    "rewards/mean",
    "episode_lengths/mean",
)
"""The AMP / rl_games metric names published on every epoch (a few extra ones follow them)."""

EXTRA_KEYS = (
    "info/frames",
    "info/std",
    "info/explained_variance",
    "rewards/task_mean",
    "rewards/style_mean",
    "rewards/total_mean",
    "rewards/episodes",
    "episode_lengths/fall_rate",
)
"""Further per-epoch metrics: frames so far, policy std, per-step rewards, finished episodes."""

EVAL_KEYS = ("success_rate", "success_precision", "num_trials", "success_trials", "fail_trials")
"""The evaluation results published, each as ``eval/<experiment>/<key>``."""

EVAL_EXTRA_KEYS = ("mean_episode_return", "mean_episode_length", "fall_trials")
"""Further evaluation results published, each as ``eval/<experiment>/<key>``."""

LR_SCHEDULES = ("adaptive", "linear", "constant")
"""Allowed values of ``lr_schedule``."""

_CHECKPOINT = re.compile(r"^amp-(\d+)\.pt$")
_DISC_KEYS = ("agent_acc", "demo_acc", "agent_logit", "demo_logit", "grad_penalty")
_AMP_CLIP = 10.0


@dataclass
class AMPConfig:
    """Hyperparameters of the AMP trainer (PPO policy, discriminator, schedule, telemetry)."""

    num_envs: int = 256
    """Characters simulated in parallel (>= 1)."""
    horizon: int = 32
    """Steps per env in each epoch's rollout (>= 1)."""
    max_episode_steps: int = 200
    """Episode length before truncation, in steps (>= 1)."""
    lr: float = 1e-3
    """Initial Adam learning rate of the actor-critic (> 0)."""
    disc_lr: float = 5e-4
    """Adam learning rate of the discriminator (> 0)."""
    gamma: float = 0.97
    """Discount factor (in (0, 1])."""
    gae_lambda: float = 0.95
    """GAE lambda (in [0, 1])."""
    clip_coef: float = 0.2
    """PPO surrogate (and, with clip_value, value) clipping coefficient (> 0)."""
    clip_value: bool = False
    """Clip the value loss around the rollout's values by clip_coef (rl_games' clip_value)."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient (>= 0)."""
    vf_coef: float = 2.0
    """Critic loss coefficient (rl_games' critic_coef; the loss is 0.5 * coef * c_loss) (>= 0)."""
    bounds_loss_coef: float = 10.0
    """Coefficient of the loss on action means outside [-1, 1] (>= 0)."""
    max_grad_norm: float = 1.0
    """Gradient norm clip, applied to actor and critic separately (> 0)."""
    mini_epochs: int = 4
    """Passes over each rollout per epoch (>= 1)."""
    minibatch_size: int = 512
    """Transitions per gradient step (>= 1)."""
    hidden_size: int = 128
    """Width of the two hidden layers of actor, critic and discriminator (>= 1)."""
    init_log_std: float = -0.7
    """Initial log standard deviation of the Gaussian policy (in [-5, 2])."""
    learn_std: bool = True
    """Learn the state-independent log std (False keeps it fixed, as AMP's fixed sigma)."""
    normalize_obs: bool = True
    """Standardise policy observations with running statistics."""
    task_reward_weight: float = 0.5
    """Weight of the simulator's task reward in the policy's reward (>= 0)."""
    style_reward_weight: float = 0.5
    """Weight of the discriminator's style reward in the policy's reward (>= 0)."""
    disc_grad_penalty: float = 5.0
    """Coefficient of the gradient penalty on reference samples (>= 0)."""
    disc_logit_reg: float = 0.05
    """L2 penalty on the discriminator's output-layer weights (>= 0)."""
    disc_weight_decay: float = 1e-4
    """L2 penalty on all other discriminator weights (>= 0)."""
    num_clips: int = 8
    """Reference clips generated for the discriminator's real data (>= 1)."""
    clip_frames: int = 120
    """Frames per reference clip (>= 2)."""
    clip_seed: int = 0
    """Seed of the reference clips (>= 0), independent of the run's seed."""
    lr_schedule: str = "adaptive"
    """Learning-rate schedule: adaptive (KL-driven, rl_games), linear or constant."""
    kl_threshold: float = 0.02
    """Target KL of the adaptive schedule: lr / 1.5 above 2x, lr * 1.5 below 0.5x (> 0)."""
    min_lr: float = 1e-6
    """Lower bound of the adaptive and linear schedules (> 0, <= lr)."""
    max_lr: float = 1e-2
    """Upper bound of the adaptive schedule (>= lr)."""
    lr_schedule_epochs: int = 100
    """Epochs over which the linear schedule decays lr to min_lr (>= 1)."""
    games_to_track: int = 100
    """Finished episodes averaged in rewards/mean and episode_lengths/mean (>= 1)."""
    eval_frequency: int = 10
    """Evaluate the deterministic policy every this many epochs (0: only at the end)."""
    eval_trials: int = 32
    """Episodes (one per env) per evaluation (>= 1)."""
    eval_seed: int = 1_000_003
    """Simulator seed of every evaluation (>= 0): the same trials each time."""
    experiment: str = "track"
    """Name of the evaluation, used in its metric keys eval/<experiment>/..."""
    save_freq: int = 10
    """Save a checkpoint every this many epochs (0: only at the end of train)."""
    sim: dict[str, Any] = field(default_factory=dict)
    """Any other motion simulator setting by name, e.g. ``amp.sim.max_torque=120``
    (``sims.motion.MotionConfig``: joint_stiffness, fall_angle, target_speed_max...)."""

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first field whose value is not allowed."""
        check_numbers("amp", self, _ALLOWED)
        self.motion_config()
        lr = self.lr
        check_number("amp", self, "min_lr", Interval(high=lr, text=f"<= lr ({lr!r})"))
        check_number("amp", self, "max_lr", Interval(low=lr, text=f">= lr ({lr!r})"))
        for name in ("clip_value", "learn_std", "normalize_obs"):
            check_bool("amp", self, name)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"amp.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, "
                f"got {self.lr_schedule!r}"
            )
        name_ok = isinstance(self.experiment, str) and re.fullmatch(
            r"[\w.-]+", self.experiment, re.ASCII
        )
        if not name_ok:
            raise ConfigError(
                "amp.experiment must be a non-empty name of letters, digits, '_', '.' or '-', "
                f"got {self.experiment!r}"
            )
        if self.task_reward_weight + self.style_reward_weight <= 0:
            raise ConfigError(
                "amp.style_reward_weight must be > 0 when task_reward_weight is 0, "
                f"got {self.style_reward_weight!r}"
            )

    def motion_config(self) -> MotionConfig:
        """The simulator's configuration for this run's training envs."""
        own = {"num_envs": self.num_envs, "max_episode_steps": self.max_episode_steps}
        return sim_config(MotionConfig, "amp", self.sim, **own)


CONFIG = AMPConfig
"""The config dataclass of this trainer (``amp.<field>=value`` on the command line)."""


_ALLOWED = {
    **dict.fromkeys(
        (
            "num_envs",
            "horizon",
            "max_episode_steps",
            "mini_epochs",
            "minibatch_size",
            "hidden_size",
            "num_clips",
            "lr_schedule_epochs",
            "games_to_track",
            "eval_trials",
        ),
        at_least(1),
    ),
    "clip_frames": at_least(2),
    **dict.fromkeys(("clip_seed", "eval_seed", "eval_frequency", "save_freq"), at_least(0)),
    **dict.fromkeys(
        ("lr", "disc_lr", "clip_coef", "max_grad_norm", "kl_threshold", "min_lr"), POSITIVE
    ),
    **dict.fromkeys(
        (
            "ent_coef",
            "vf_coef",
            "bounds_loss_coef",
            "task_reward_weight",
            "style_reward_weight",
            "disc_grad_penalty",
            "disc_logit_reg",
            "disc_weight_decay",
        ),
        NON_NEGATIVE,
    ),
    "gamma": Interval(0.0, 1.0, low_open=True),
    "gae_lambda": UNIT,
    "init_log_std": Interval(-5.0, 2.0),
}
"""What each numeric field of ``AMPConfig`` allows (``min_lr`` and ``max_lr`` also bound ``lr``)."""


# --------------------------------------------------------------------------- models


class ActorCritic(Heads):
    """Separate tanh MLPs for the Gaussian policy's mean and the state value; a free log std."""

    def __init__(
        self, obs_dim: int, action_dim: int, hidden: int, init_log_std: float, learn_std: bool
    ) -> None:
        super().__init__(obs_dim, action_dim, hidden)
        self.log_std = nn.Parameter(
            torch.full((action_dim,), float(init_log_std)), requires_grad=learn_std
        )

    def mean(self, obs: torch.Tensor) -> torch.Tensor:
        """Action means, shape (n, action_dim); not squashed."""
        return self.head(obs)

    def log_prob(self, mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-density of ``actions`` under N(mean, exp(log_std)^2), summed over dims, (n,)."""
        log_std = self.log_std.expand_as(mean)
        z = (actions - mean) * torch.exp(-log_std)
        out = (-0.5 * z * z - log_std - 0.5 * math.log(2.0 * math.pi)).sum(-1)
        return out

    def entropy(self) -> torch.Tensor:
        """Entropy of the (state-independent) Gaussian, a scalar."""
        return (self.log_std + 0.5 * (1.0 + math.log(2.0 * math.pi))).sum()


class Discriminator(nn.Module):
    """MLP on (standardised) AMP transitions; one logit per transition."""

    def __init__(self, input_dim: int, hidden: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            _layer(input_dim, hidden),
            nn.ReLU(),
            _layer(hidden, hidden),
            nn.ReLU(),
        )
        self.logit = _layer(hidden, 1, std=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Discriminator outputs, shape (n,)."""
        out: torch.Tensor = self.logit(self.trunk(x)).squeeze(-1)
        return out


def bounds_loss(mean: torch.Tensor) -> torch.Tensor:
    """How far action means leave ``[-1, 1]``: the mean over the batch of summed squares."""
    outside = torch.clamp(mean - 1.0, min=0.0) ** 2 + torch.clamp(mean + 1.0, max=0.0) ** 2
    return outside.sum(-1).mean()


def style_reward(logits: torch.Tensor) -> torch.Tensor:
    """AMP's least-squares style reward ``max(0, 1 - 0.25 (d - 1)^2)``."""
    return torch.clamp(1.0 - 0.25 * (logits - 1.0) ** 2, min=0.0)


# --------------------------------------------------------------------------- trainer


@dataclass
class _Rollout:
    """One epoch's transitions, (T, n, ...) tensors, and what playing them measured."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    task_rewards: torch.Tensor
    bootstrap: torch.Tensor
    dones: torch.Tensor
    amp_obs: torch.Tensor
    last_value: torch.Tensor
    raw_obs: NDArray[np.float32]
    play_time: float = 0.0
    step_time: float = 0.0

    @classmethod
    def zeros(cls, horizon: int, n: int) -> _Rollout:
        """A rollout of ``horizon`` steps of ``n`` envs, all zeros, to fill step by step."""
        return cls(
            obs=torch.zeros((horizon, n, OBS_DIM)),
            actions=torch.zeros((horizon, n, ACTION_DIM)),
            logprobs=torch.zeros((horizon, n)),
            values=torch.zeros((horizon, n)),
            task_rewards=torch.zeros((horizon, n)),
            bootstrap=torch.zeros((horizon, n)),
            dones=torch.zeros((horizon, n)),
            amp_obs=torch.zeros((horizon, n, AMP_TRANSITION_DIM)),
            last_value=torch.zeros(n),
            raw_obs=np.zeros((horizon, n, OBS_DIM), dtype=np.float32),
        )


@dataclass(frozen=True, slots=True)
class _Batch:
    """A rollout flattened to (T * n, ...) for minibatches, with what the update computed."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    amp_obs: torch.Tensor
    style: torch.Tensor
    rewards: torch.Tensor


class AMPTrainer:
    """Plays the motion simulator, learns with PPO and an adversarial motion prior, publishes."""

    def __init__(
        self,
        config: AMPConfig,
        bus: Bus,
        run_dir: Path,
        seed: int,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        config.validate()
        self.config = config
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.sim_config = config.motion_config()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = ActorCritic(
                OBS_DIM, ACTION_DIM, config.hidden_size, config.init_log_std, config.learn_std
            )
            self.disc = Discriminator(AMP_TRANSITION_DIM, config.hidden_size)
        self.optimizer = torch.optim.Adam(
            [p for p in self.model.parameters() if p.requires_grad], lr=config.lr, eps=1e-5
        )
        self.disc_optimizer = torch.optim.Adam(self.disc.parameters(), lr=config.disc_lr)
        # Actor and critic clip their gradient norms separately (rl_games).
        learned_std = [self.model.log_std] if config.learn_std else []
        actor = [*self.model.actor.parameters(), *learned_std]
        self._clip_groups = [actor, [*self.model.critic.parameters()]]
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        self.clips: list[MotionClip] = make_reference_clips(
            config.clip_seed, config.num_clips, config.clip_frames, config=self.sim_config
        )
        ref = sample_reference_transitions(
            self.clips, 8192, np.random.default_rng(config.clip_seed)
        ).astype(np.float64)
        self._amp_mean = torch.as_tensor(ref.mean(axis=0), dtype=torch.float32)
        self._amp_std = torch.as_tensor(np.maximum(ref.std(axis=0), 1e-3), dtype=torch.float32)
        self.obs_input = ObservationInput(OBS_DIM, config.normalize_obs)
        self.env = MotionEnv(self.sim_config)
        env_seed = int(np.random.SeedSequence([seed, 2]).generate_state(1)[0])
        self.obs: NDArray[np.float32] = self.env.reset(seed=env_seed)[0]
        self.epoch = 0
        """Epochs done so far; the next epoch's step number."""
        self.frames = 0
        """Environment steps (over all envs) taken so far."""
        self.lr = config.lr
        self.episodes_finished = 0
        """Training episodes finished so far."""
        self.episode_returns: deque[float] = deque(maxlen=config.games_to_track)
        self.episode_lengths: deque[float] = deque(maxlen=config.games_to_track)
        self.episode_falls: deque[float] = deque(maxlen=config.games_to_track)
        self.best_reward = -math.inf
        self.best_success = -math.inf
        self.last_metrics: dict[str, float] = {}
        self.loop = TrainerLoop(bus, AXIS, name="amp", run_dir=self.run_dir, callbacks=callbacks)
        self.callbacks = self.loop.callbacks
        """Users' callbacks (``agents.callbacks``), in call order: append to add one."""
        self.resumed_from = checkpoints.latest(checkpoints.folder(self.run_dir), _CHECKPOINT)
        if self.resumed_from is not None:
            self.load(self.resumed_from)

    # -- the policy --

    def _amp_input(self, amp_obs: torch.Tensor) -> torch.Tensor:
        """Standardise AMP transitions with the reference data's statistics."""
        return torch.clamp((amp_obs - self._amp_mean) / self._amp_std, -_AMP_CLIP, _AMP_CLIP)

    def act(self, obs: NDArray[Any]) -> NDArray[np.float32]:
        """Deterministic actions (the policy's means, clipped to [-1, 1]) for ``(n, OBS_DIM)``."""
        with torch.no_grad():
            mean = self.model.mean(self.obs_input.tensor(obs))
        out: NDArray[np.float32] = torch.clamp(mean, -1.0, 1.0).numpy().astype(np.float32)
        return out

    def style_rewards(self, amp_obs: NDArray[Any]) -> NDArray[np.float32]:
        """The discriminator's style reward of each AMP transition ``(n, 28)``."""
        with torch.no_grad():
            d = self.disc(self._amp_input(torch.as_tensor(np.asarray(amp_obs, np.float32))))
        out: NDArray[np.float32] = style_reward(d).numpy()
        return out

    def evaluate_policy(self, seed: int, n_trials: int) -> dict[str, float | int]:
        """Run the simulator's ``evaluate`` on the deterministic policy (``n_trials``, seeded)."""
        torch.set_num_threads(1)
        return evaluate(self.act, seed, n_trials, self.sim_config)

    # -- one epoch, off the event loop --

    def _play(self) -> _Rollout:
        """Collect ``horizon`` steps of every env with the stochastic policy."""
        start = time.perf_counter()
        r = _Rollout.zeros(self.config.horizon, self.config.num_envs)
        obs = self.obs
        std = torch.exp(self.model.log_std.detach())
        for t in range(self.config.horizon):
            r.raw_obs[t] = obs
            x = self.obs_input.tensor(obs)
            with torch.no_grad():
                mean = self.model.mean(x)
                action = mean + std * torch.randn(mean.shape, generator=self.generator)
                r.logprobs[t] = self.model.log_prob(mean, action)
                r.values[t] = self.model.value(x)
            r.obs[t] = x
            r.actions[t] = action
            tick = time.perf_counter()
            obs, reward, terminated, truncated, info = self.env.step(action.numpy())
            r.step_time += time.perf_counter() - tick
            r.task_rewards[t] = torch.as_tensor(reward)
            r.amp_obs[t] = torch.as_tensor(info["amp_obs"])
            r.dones[t] = torch.as_tensor((terminated | truncated).astype(np.float32))
            if truncated.any():
                # A truncated episode is not over for the value: bootstrap from its final obs.
                rows = np.flatnonzero(truncated)
                with torch.no_grad():
                    final_value = self.model.value(self.obs_input.tensor(info["final_obs"][rows]))
                r.bootstrap[t, torch.as_tensor(rows)] = final_value
            self._track_finished(terminated, truncated, info)
        self.obs = obs
        with torch.no_grad():
            r.last_value = self.model.value(self.obs_input.tensor(obs))
        r.play_time = time.perf_counter() - start
        return r

    def _track_finished(
        self, terminated: NDArray[np.bool_], truncated: NDArray[np.bool_], info: dict[str, Any]
    ) -> None:
        """Count the episodes that ended this step and track their return, length and fall."""
        done = terminated | truncated
        self.episodes_finished += int(done.sum())
        for i in np.flatnonzero(done):
            self.episode_returns.append(float(info["episode_return"][i]))
            self.episode_lengths.append(float(info["episode_length"][i]))
            self.episode_falls.append(float(terminated[i]))

    def _disc_step(self, agent_amp: torch.Tensor) -> dict[str, float]:
        """One discriminator step: LSGAN loss, gradient penalty on demo data, regularisers."""
        cfg = self.config
        n = agent_amp.shape[0]
        demo = torch.as_tensor(sample_reference_transitions(self.clips, n, self.rng))
        demo_x = self._amp_input(demo).requires_grad_(True)
        agent_x = self._amp_input(agent_amp)
        d_demo = self.disc(demo_x)
        d_agent = self.disc(agent_x)
        loss_demo = ((d_demo - 1.0) ** 2).mean()
        loss_agent = ((d_agent + 1.0) ** 2).mean()
        grad = torch.autograd.grad(d_demo.sum(), demo_x, create_graph=True)[0]
        grad_penalty = (grad * grad).sum(-1).mean()
        logit_reg = self.disc.logit.weight.pow(2).sum()
        weight_decay = sum(
            (m.weight.pow(2).sum() for m in self.disc.trunk if isinstance(m, nn.Linear)),
            torch.tensor(0.0),
        )
        disc_loss = 0.5 * (loss_demo + loss_agent)
        loss = (
            disc_loss
            + cfg.disc_grad_penalty * grad_penalty
            + cfg.disc_logit_reg * logit_reg
            + cfg.disc_weight_decay * weight_decay
        )
        self.disc_optimizer.zero_grad()
        torch.autograd.backward(loss)
        self.disc_optimizer.step()
        return {
            "disc_loss": float(disc_loss.detach()),
            "agent_acc": float((d_agent < 0).float().mean()),
            "demo_acc": float((d_demo > 0).float().mean()),
            "agent_logit": float(d_agent.detach().mean()),
            "demo_logit": float(d_demo.detach().mean()),
            "grad_penalty": float(grad_penalty.detach()),
        }

    def _set_lr(self, lr: float) -> None:
        self.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _update(self, r: _Rollout) -> dict[str, float]:
        """PPO on the rollout (style rewards from the current discriminator), then the disc."""
        cfg = self.config
        batch = self._batch(r)
        means = Means()
        for _ in range(cfg.mini_epochs):
            kls: list[float] = []
            n = len(batch.obs)
            for idx in ppo_kit.minibatches(n, cfg.minibatch_size, self.generator, drop_last=True):
                stats = self._ppo_step(batch, idx)
                means.add(**stats, **self._disc_step(batch.amp_obs[idx]))
                kls.append(stats["kl"])
            if cfg.lr_schedule == "adaptive" and kls:
                self._adapt_lr(float(np.mean(kls)))
        if cfg.lr_schedule == "linear":
            frac = min((self.epoch + 1) / cfg.lr_schedule_epochs, 1.0)
            self._set_lr(max(cfg.lr * (1.0 - frac), cfg.min_lr))
        self.obs_input.update(r.raw_obs.reshape(-1, OBS_DIM))
        return means.means() | {
            "style_mean": float(batch.style.mean()),
            "style_std": float(batch.style.std()),
            "task_mean": float(r.task_rewards.mean()),
            "total_mean": float(batch.rewards.mean()),
            "explained_variance": ppo_kit.explained_variance(batch.returns, batch.values),
        }

    def _batch(self, r: _Rollout) -> _Batch:
        """The rollout flattened, with style rewards, GAE advantages and returns."""
        cfg = self.config
        horizon, n_envs = r.task_rewards.shape
        amp_obs = r.amp_obs.reshape(-1, AMP_TRANSITION_DIM)
        style = torch.as_tensor(self.style_rewards(amp_obs.numpy())).reshape(horizon, n_envs)
        rewards = cfg.task_reward_weight * r.task_rewards + cfg.style_reward_weight * style
        advantages, returns = gae(
            rewards + cfg.gamma * r.bootstrap,
            r.values,
            cfg.gamma,
            cfg.gae_lambda,
            dones=r.dones,
            last_value=r.last_value,
        )
        return _Batch(
            obs=r.obs.reshape(-1, OBS_DIM),
            actions=r.actions.reshape(-1, ACTION_DIM),
            logprobs=r.logprobs.reshape(-1),
            values=r.values.reshape(-1),
            advantages=advantages.reshape(-1),
            returns=returns.reshape(-1),
            amp_obs=amp_obs,
            style=style,
            rewards=rewards,
        )

    def _ppo_step(self, batch: _Batch, idx: torch.Tensor) -> dict[str, float]:
        """One gradient step of the actor-critic on the minibatch ``idx``."""
        cfg = self.config
        mean = self.model.mean(batch.obs[idx])
        entropy = self.model.entropy()
        new_logp = self.model.log_prob(mean, batch.actions[idx])
        surrogate = ppo_kit.clipped_surrogate(
            new_logp, batch.logprobs[idx], batch.advantages[idx], cfg.clip_coef
        )
        c_loss = ppo_kit.value_loss(
            self.model.value(batch.obs[idx]),
            batch.returns[idx],
            clip_around=batch.values[idx] if cfg.clip_value else None,
            clip_coef=cfg.clip_coef,
        )
        b_loss = bounds_loss(mean)
        loss = (
            surrogate.loss
            + 0.5 * cfg.vf_coef * c_loss
            - cfg.ent_coef * entropy
            + cfg.bounds_loss_coef * b_loss
        )
        ppo_kit.gradient_step(self.optimizer, loss, self._clip_groups, cfg.max_grad_norm)
        return {
            "a_loss": float(surrogate.loss.detach()),
            "c_loss": float(c_loss.detach()),
            "b_loss": float(b_loss.detach()),
            "entropy": float(entropy.detach()),
            "kl": surrogate.approx_kl,
            "clip_frac": surrogate.clip_frac,
        }

    def _adapt_lr(self, kl: float) -> None:
        """rl_games' adaptive schedule: lr / 1.5 above twice the target KL, * 1.5 below half."""
        cfg = self.config
        if kl > 2.0 * cfg.kl_threshold:
            self._set_lr(max(self.lr / 1.5, cfg.min_lr))
        elif kl < 0.5 * cfg.kl_threshold:
            self._set_lr(min(self.lr * 1.5, cfg.max_lr))

    def step(self, last: bool) -> StepRecord:
        """Play one rollout, update policy and discriminator; evaluate when due and at the end."""
        torch.set_num_threads(1)
        cfg = self.config
        epoch = self.epoch
        episodes_seen = self.episodes_finished
        rollout = self._play()
        update_start = time.perf_counter()
        stats = self._update(rollout)
        update_time = time.perf_counter() - update_start
        self.frames += cfg.horizon * cfg.num_envs
        self.epoch = epoch + 1
        metrics = self._epoch_metrics(stats, rollout, update_time, episodes_seen)
        self.last_metrics = metrics
        if math.isfinite(metrics["rewards/mean"]):
            self.best_reward = max(self.best_reward, metrics["rewards/mean"])
        evaluations: tuple[Evaluated, ...] = ()
        if last or (cfg.eval_frequency and self.epoch % cfg.eval_frequency == 0):
            evaluations = (Evaluated(cfg.experiment, self._evaluate()),)
        due = bool(cfg.save_freq and self.epoch % cfg.save_freq == 0)
        return StepRecord(epoch, metrics, evaluations, checkpoint=due)

    def _epoch_metrics(
        self, stats: dict[str, float], rollout: _Rollout, update_time: float, episodes_seen: int
    ) -> dict[str, float]:
        """The epoch's metrics under the AMP / rl_games names, then the extra ones."""
        frames = self.config.horizon * self.config.num_envs
        return {
            "performance/total_fps": frames / max(rollout.play_time + update_time, 1e-9),
            "performance/step_fps": frames / max(rollout.step_time, 1e-9),
            "performance/update_time": update_time,
            "performance/play_time": rollout.play_time,
            "losses/a_loss": stats["a_loss"],
            "losses/c_loss": stats["c_loss"],
            "losses/disc_loss": stats["disc_loss"],
            "losses/bounds_loss": stats["b_loss"],
            "losses/entropy": stats["entropy"],
            "info/epochs": float(self.epoch),
            "info/last_lr": self.lr,
            "info/lr_mul": self.lr / self.config.lr,
            "info/clip_frac": stats["clip_frac"],
            "info/kl": stats["kl"],
            **{f"info/disc_{k}": stats[k] for k in _DISC_KEYS},
            "info/disc_reward_mean": stats["style_mean"],
            "info/disc_reward_std": stats["style_std"],
            "rewards/mean": _mean(self.episode_returns),
            "episode_lengths/mean": _mean(self.episode_lengths),
            "info/frames": float(self.frames),
            "info/std": float(torch.exp(self.model.log_std.detach()).mean()),
            "info/explained_variance": stats["explained_variance"],
            "rewards/task_mean": stats["task_mean"],
            "rewards/style_mean": stats["style_mean"],
            "rewards/total_mean": stats["total_mean"],
            "rewards/episodes": float(self.episodes_finished - episodes_seen),
            "episode_lengths/fall_rate": _mean(self.episode_falls),
        }

    def _evaluate(self) -> dict[str, float]:
        """Evaluate the deterministic policy; the ``eval/<experiment>/...`` values."""
        scores = self.evaluate_policy(self.config.eval_seed, self.config.eval_trials)
        self.best_success = max(self.best_success, float(scores["success_rate"]))
        prefix = f"eval/{self.config.experiment}/"
        return {f"{prefix}{k}": float(scores[k]) for k in (*EVAL_KEYS, *EVAL_EXTRA_KEYS)}

    # -- checkpoints --

    def save(self) -> Saved:
        """Write a checkpoint of everything needed to continue exactly."""
        path = checkpoints.folder(self.run_dir) / f"amp-{self.epoch}.pt"
        state = {
            "epoch": self.epoch,
            "frames": self.frames,
            "episodes_finished": self.episodes_finished,
            "seed": self.seed,
            "config": asdict(self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "disc": self.disc.state_dict(),
            "disc_optimizer": self.disc_optimizer.state_dict(),
            "lr": self.lr,
            "obs_rms": self.obs_input.state(),
            "generator": self.generator.get_state(),
            "rng": self.rng.bit_generator.state,
            "env": self.env,
            "obs": self.obs,
            "episode_returns": list(self.episode_returns),
            "episode_lengths": list(self.episode_lengths),
            "episode_falls": list(self.episode_falls),
            "best_reward": self.best_reward,
            "best_success": self.best_success,
            "last_metrics": self.last_metrics,
        }
        reward = float(self.last_metrics.get("rewards/mean", math.nan))
        metadata = {"epoch": self.epoch, "frames": self.frames, "reward": reward}
        return Saved(checkpoints.save(state, path), metadata)

    def load(self, path: Path) -> None:
        """Restore the state saved by ``save``."""
        state = torch.load(path, weights_only=False)
        self.epoch = int(state["epoch"])
        self.frames = int(state["frames"])
        self.episodes_finished = int(state["episodes_finished"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.disc.load_state_dict(state["disc"])
        self.disc_optimizer.load_state_dict(state["disc_optimizer"])
        self._set_lr(float(state["lr"]))
        self.obs_input.load(state["obs_rms"])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
        env = state["env"]
        if isinstance(env, MotionEnv) and env.num_envs == self.config.num_envs:
            self.env = env
            self.obs = np.asarray(state["obs"], dtype=np.float32)
        self.episode_returns.extend(state["episode_returns"])
        self.episode_lengths.extend(state["episode_lengths"])
        self.episode_falls.extend(state["episode_falls"])
        self.best_reward = float(state["best_reward"])
        self.best_success = float(state["best_success"])
        self.last_metrics = dict(state["last_metrics"])

    # -- the loop --

    async def train(self, num_episodes: int) -> TrainResult:
        """Train for ``num_episodes`` more epochs and return final and best metrics."""
        return await self.loop.run(self, num_episodes)

    def begin(self) -> StepRecord:
        """Nothing to publish beyond the hyperparameters; the step the trainer runs next."""
        return StepRecord(self.epoch, {})

    def result(self) -> TrainResult:
        """Final (last epoch's) and best metrics so far."""
        best = {
            "rewards/mean": self.best_reward,
            f"eval/{self.config.experiment}/success_rate": self.best_success,
        }
        return train_result(self.run_dir, self.epoch, self.last_metrics, best)


def _mean(values: deque[float]) -> float:
    """The mean of the tracked values, NaN while there are none."""
    return float(np.mean(values)) if values else math.nan


def build(
    config: AMPConfig, bus: Bus, run_dir: Path, seed: int, callbacks: Sequence[Callback] = ()
) -> AMPTrainer:
    """An AMP trainer; resumes from the latest checkpoint in ``run_dir / "checkpoints"``."""
    return AMPTrainer(config, bus, run_dir, seed, callbacks)


SPEC = TrainerSpec(config=AMPConfig, build=build, episodes=30, axis=AXIS, sim=MotionConfig)

__all__ = [
    "CONFIG",
    "EPOCH_KEYS",
    "EVAL_EXTRA_KEYS",
    "EVAL_KEYS",
    "EXTRA_KEYS",
    "LR_SCHEDULES",
    "SPEC",
    "AMPConfig",
    "AMPTrainer",
    "ActorCritic",
    "Discriminator",
    "RunningMeanStd",
    "build",
    "gae",
    "style_reward",
]
