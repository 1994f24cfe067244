"""A trained checkpoint replayed on fresh seeded episodes of its simulator, as a ``Replay``.

One adapter per trainer: it loads the policy from a checkpoint with the run's saved trainer
config, plays ``episodes`` episodes with deterministic actions and records what the views need.
Episodes are seeded from the analysis seed (``fresh_seeds``), apart from the training ones
(ERL's on the simulator's ``test`` split). Context holds only what the simulator exposes:

- ERL: ``regime`` (with several stocks, the first stock's regime: each stock has its own
  chain and the first stands for the market), ``hour`` (``time_of_day`` on a 24-hour clock,
  whole hours), ``position`` (net position: the sum of the signed positions, in per-stock
  budgets, held when the state was observed) and ``trading`` (1 where the action changed a
  position).
- PPO: ``hour`` (from the observation's sin/cos of the hour), ``segment`` (the batch's
  largest segment) and ``budget_left``.
- AMP: ``tracking_error`` (metres to the target after the step); no clip phase (the
  simulator does not expose one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from agents import amp, checkpoints, erl, ppo
from agents.analysis.replay import F32, Replay
from agents.common import OBS_CLIP
from sims import auction, motion, trading
from telemetry.errors import ConfigError

__all__ = ["ADAPTERS", "Loaded", "fresh_seeds", "load"]


@dataclass(frozen=True, slots=True)
class Loaded:
    """A replayed checkpoint: the ``Replay``, the file, and the training step it was saved at."""

    replay: Replay
    checkpoint: Path
    step: int
    axis: str


def fresh_seeds(seed: int, count: int) -> list[int]:
    """``count`` episode seeds derived from the analysis seed, unlike any training seed."""
    seq = np.random.SeedSequence(seed, spawn_key=(0xA7A1,))
    return [int(s) for s in seq.generate_state(count)]


def _returns_to_go(rewards: Sequence[float]) -> F32:
    return np.cumsum(np.asarray(rewards, np.float64)[::-1])[::-1].astype(np.float32)


def _state(path: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = torch.load(path, weights_only=False)  # our own file
    except Exception as exc:
        raise ConfigError(f"checkpoint {path} cannot be read: {type(exc).__name__}") from None
    return state


_MISMATCH = re.compile(
    r"size mismatch for ([\w.]+): copying a param with shape torch.Size\(\[([\d, ]*)\]\) from "
    r"checkpoint, the shape in current model is torch.Size\(\[([\d, ]*)\]\)"
)


def _load_weights(net: nn.Module, weights: Any, path: Path, section: str) -> None:
    """``load_state_dict``, or ``ConfigError`` saying which tensors do not fit the config."""
    try:
        net.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as exc:
        text = str(exc)
        found = [f"{k} is ({a}) there, ({b}) for the config" for k, a, b in _MISMATCH.findall(text)]
        if not found:  # missing or unexpected keys: torch's own lines after its first
            found = [line.strip() for line in text.splitlines()[1:] if line.strip()] or [text]
        more = f" and {len(found) - 2} more" if len(found) > 2 else ""
        raise ConfigError(
            f"analyze: checkpoint {path} does not match the run's {section} config: "
            f"{'; '.join(found[:2])}{more}"
        ) from None


def _normalizer(rms: dict[str, Any] | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The trainer's observation standardisation (``ObservationInput``) in torch."""
    if rms is None:
        return lambda x: x
    mean = torch.as_tensor(np.asarray(rms["mean"]), dtype=torch.float32)
    scale = torch.as_tensor(np.sqrt(np.asarray(rms["var"]) + 1e-8), dtype=torch.float32)
    return lambda x: torch.clamp((x - mean) / scale, -OBS_CLIP, OBS_CLIP)


# ------------------------------------------------------------------------ ERL


def erl_checkpoint(folder: Path) -> Path | None:
    """The best agent, else the resume checkpoint."""
    for name in (erl.BEST_FILE, erl.RESUME_FILE):
        if (folder / name).is_file():
            return folder / name
    return None


def erl_feature_names(config: trading.TradingConfig) -> list[str]:
    """Observation features by ``observation_layout``: returns oldest first, then the rest."""
    n, w = config.n_stocks, config.window
    names = [f"return/stock{i}/t-{w - 1 - j}" for i in range(n) for j in range(w)]
    names += [f"position/stock{i}" for i in range(n)]
    names += [f"holding/stock{i}" for i in range(n)]
    return [*names, "time_of_day", "progress"]


def erl_replay(config: erl.ERLConfig, path: Path, episodes: int, seed: int) -> tuple[Replay, int]:
    """The ERL actor of ``path`` trading ``episodes`` test-split periods."""
    state = _state(path)
    # erl-resume.pt holds the whole population: its best member ever is the one to analyse.
    keys = ("best_actor", "champion", "actor") if path.name == erl.RESUME_FILE else ("actor",)
    weights = next((state[k] for k in keys if state.get(k) is not None), None)
    sim = config.trading()
    actor = erl.Actor(sim.observation_size, sim.n_stocks, config.hidden_size)
    _load_weights(actor, weights, path, "erl")
    actor.requires_grad_(False)
    act = erl.actor_policy(actor)
    env = trading.TradingEnv(sim, split="test")
    seeds = fresh_seeds(seed, episodes)
    names = trading.REGIME_NAMES if sim.n_regimes == len(trading.REGIME_NAMES) else None
    layout = trading.observation_layout(sim)
    obs_rows: list[F32] = []
    action_rows: list[F32] = []
    rtg: list[F32] = []
    episode: list[int] = []
    regime: list[str] = []
    hour: list[int] = []
    position: list[float] = []
    trades: list[int] = []
    totals: list[float] = []
    for e, s in enumerate(seeds):
        obs, _ = env.reset(seed=s)
        rewards: list[float] = []
        done = False
        while not done:
            t = env.current_step
            k = int(env.regimes[t, 0])
            regime.append(names[k] if names else f"regime{k}")
            hour.append(int(float(obs[layout.time_of_day]) * 24.0))
            position.append(float(obs[layout.positions].sum()))
            before = env.positions
            action = act(obs).astype(np.float32)
            obs_rows.append(obs)
            action_rows.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            trades.append(int(not np.array_equal(before, env.positions)))
            rewards.append(float(reward))
            done = terminated or truncated
        rtg.append(_returns_to_go(rewards))
        episode += [e] * len(rewards)
        totals.append(sum(rewards))

    def policy(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = actor(x)
        return out

    def hidden(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(actor.l2(torch.tanh(actor.l1(x))))

    def evaluate(fn: Callable[[F32], F32]) -> float:
        results = trading.evaluate_policies(trading.TradingEnv(sim, split="test"), fn, seeds)
        return float(np.mean([r.total_reward for r in results]))

    replay = Replay(
        trainer="erl",
        observations=np.stack(obs_rows).astype(np.float32),
        actions=np.stack(action_rows).astype(np.float32),
        feature_names=erl_feature_names(sim),
        action_names=[f"target/stock{i}" for i in range(sim.n_stocks)],
        policy=policy,
        hidden=hidden,
        returns_to_go=np.concatenate(rtg),
        episode=np.asarray(episode, np.int64),
        context={
            "regime": np.asarray(regime),
            "hour": np.asarray(hour, np.int64),
            "position": np.asarray(position, np.float32),
            "trading": np.asarray(trades, np.int64),
        },
        episode_returns=np.asarray(totals, np.float32),
        price_features=list(range(layout.returns.start, layout.returns.stop)),
        evaluate=evaluate,
    )
    return replay, int(state.get("generation", 0))


# ------------------------------------------------------------------------ PPO

_PPO_FILE = re.compile(r"^episode_(\d+)\.pt$")
_AMP_FILE = re.compile(r"^amp-(\d+)\.pt$")


def ppo_replay(config: ppo.PPOConfig, path: Path, episodes: int, seed: int) -> tuple[Replay, int]:
    """The PPO bidder of ``path`` playing ``episodes`` days, greedy bid levels."""
    state = _state(path)
    sim = config.auction_config()
    levels = sim.n_bid_levels
    model = ppo.ActorCritic(len(auction.OBS_FIELDS), levels, config.hidden_size)
    _load_weights(model, state.get("model"), path, "ppo")
    model.requires_grad_(False)
    norm = _normalizer(state.get("obs_rms") if config.norm_obs else None)
    values = torch.arange(levels, dtype=torch.float32)

    def policy(x: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(model.logits(norm(x)), dim=-1)
        return (probs @ values)[:, None]

    def hidden(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = model.actor[:4](norm(x))
        return out

    def greedy(obs: F32) -> int:
        with torch.no_grad():
            return int(torch.argmax(model.logits(norm(torch.as_tensor(obs[None])))[0]))

    seeds = fresh_seeds(seed, episodes)

    def play(choose: Callable[[F32], int]) -> list[tuple[list[F32], list[int], list[float]]]:
        env = auction.AuctionEnv(sim)
        days = []
        for s in seeds:
            obs, _ = env.reset(seed=s)
            seen: list[F32] = []
            chosen: list[int] = []
            rewards: list[float] = []
            done = False
            while not done:
                x = np.asarray(obs, np.float32)
                level = choose(x)
                seen.append(x)
                chosen.append(level)
                obs, reward, terminated, truncated, _ = env.step(level)
                rewards.append(float(reward))
                done = terminated or truncated
            days.append((seen, chosen, rewards))
        return days

    def evaluate(fn: Callable[[F32], F32]) -> float:
        def choose(x: F32) -> int:
            return int(np.clip(np.rint(np.asarray(fn(x)).reshape(-1)[0]), 0, levels - 1))

        return float(np.mean([sum(r) for _, _, r in play(choose)]))

    days = play(greedy)
    obs = np.stack([x for seen, _, _ in days for x in seen]).astype(np.float32)
    fields = list(auction.OBS_FIELDS)
    angle = np.arctan2(obs[:, fields.index("hour_sin")], obs[:, fields.index("hour_cos")])
    replay = Replay(
        trainer="ppo",
        observations=obs,
        actions=np.asarray([a for _, c, _ in days for a in c], np.float32)[:, None],
        feature_names=fields,
        action_names=["bid_level"],
        policy=policy,
        hidden=hidden,
        returns_to_go=np.concatenate([_returns_to_go(r) for _, _, r in days]),
        episode=np.asarray([e for e, (_, c, _) in enumerate(days) for _ in c], np.int64),
        context={
            "hour": np.floor(np.mod(angle * 24.0 / (2.0 * math.pi), 24.0)).astype(np.int64),
            "segment": np.argmax(obs[:, : auction.N_SEGMENTS], axis=1).astype(np.int64),
            "budget_left": obs[:, fields.index("budget_left")].copy(),
        },
        episode_returns=np.asarray([sum(r) for _, _, r in days], np.float32),
        evaluate=evaluate,
    )
    return replay, int(state.get("episode", 0))


# ------------------------------------------------------------------------ AMP


def amp_replay(config: amp.AMPConfig, path: Path, episodes: int, seed: int) -> tuple[Replay, int]:
    """The AMP actor of ``path``: one first episode per env of a seeded ``episodes``-env batch.

    The recorded actions are the policy's means (as ``policy`` gives them); the simulator
    clips them to [-1, 1] when it steps.
    """
    state = _state(path)
    model = amp.ActorCritic(
        motion.OBS_DIM, motion.ACTION_DIM, config.hidden_size, config.init_log_std, True
    )
    _load_weights(model, state.get("model"), path, "amp")
    model.requires_grad_(False)
    norm = _normalizer(state.get("obs_rms") if config.normalize_obs else None)

    def policy(x: torch.Tensor) -> torch.Tensor:
        return model.mean(norm(x))

    def hidden(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = model.actor[:4](norm(x))
        return out

    def act(obs: npt.NDArray[Any]) -> F32:
        with torch.no_grad():
            out: F32 = policy(torch.as_tensor(np.asarray(obs, np.float32))).numpy()
        return out

    sim = replace(config.motion_config(), num_envs=episodes)
    env_seed = fresh_seeds(seed, 1)[0]
    env = motion.MotionEnv(sim)
    obs, _ = env.reset(seed=env_seed)
    live = np.ones(episodes, dtype=bool)
    rows: list[tuple[int, F32, F32, float, float]] = []
    for _ in range(sim.max_episode_steps):
        action = act(obs)
        nxt, reward, terminated, truncated, info = env.step(np.clip(action, -1.0, 1.0))
        for e in np.flatnonzero(live):
            rows.append((int(e), obs[e], action[e], float(reward[e]), info["tracking_error"][e]))
        live &= ~(terminated | truncated)
        obs = nxt
        if not live.any():
            break
    rows.sort(key=lambda row: row[0])  # stable: each episode's steps stay in order
    episode = np.asarray([r[0] for r in rows], np.int64)
    rewards = np.asarray([r[3] for r in rows], np.float32)
    rtg = np.concatenate([_returns_to_go(rewards[episode == e]) for e in range(episodes)])

    def evaluate(fn: Callable[[F32], F32]) -> float:
        def batch(x: npt.NDArray[Any]) -> F32:
            return np.stack([np.asarray(fn(row), np.float32) for row in x])

        result = motion.evaluate(batch, env_seed, episodes, config.motion_config())
        return float(result["mean_episode_return"])

    replay = Replay(
        trainer="amp",
        observations=np.stack([r[1] for r in rows]).astype(np.float32),
        actions=np.stack([r[2] for r in rows]).astype(np.float32),
        feature_names=list(motion.OBS_FIELDS),
        action_names=list(motion.JOINT_NAMES),
        policy=policy,
        hidden=hidden,
        returns_to_go=rtg,
        episode=episode,
        context={"tracking_error": np.asarray([r[4] for r in rows], np.float32)},
        episode_returns=np.asarray(
            [rewards[episode == e].sum() for e in range(episodes)], np.float32
        ),
        evaluate=evaluate,
    )
    return replay, int(state.get("epoch", 0))


# ------------------------------------------------------------------------ registry


@dataclass(frozen=True, slots=True)
class Adapter:
    """How one trainer's checkpoint is found and replayed."""

    default: Callable[[Path], Path | None]
    """The checkpoint a run folder's analysis uses (best, else latest)."""
    replay: Callable[[Any, Path, int, int], tuple[Replay, int]]
    axis: str


def _latest(pattern: re.Pattern[str]) -> Callable[[Path], Path | None]:
    return lambda folder: checkpoints.latest(folder, pattern)


ADAPTERS: dict[str, Adapter] = {
    "erl": Adapter(erl_checkpoint, erl_replay, erl.AXIS),
    "ppo": Adapter(_latest(_PPO_FILE), ppo_replay, ppo.AXIS),
    "amp": Adapter(_latest(_AMP_FILE), amp_replay, amp.AXIS),
}
"""The adapter of each trainer, by its name in ``agents/registry.py``."""


def load(
    trainer: str,
    config: Any,
    run_dir: Path,
    checkpoint: Path | None,
    episodes: int,
    seed: int,
) -> Loaded:
    """Replay ``checkpoint`` (default: the run's best or latest) with the trainer's config."""
    adapter = ADAPTERS.get(trainer)
    if adapter is None:
        raise ConfigError(f"analyze: no adapter for trainer {trainer!r}; known: {sorted(ADAPTERS)}")
    folder = checkpoints.folder(run_dir)
    path = checkpoint or adapter.default(folder)
    if path is None:
        raise ConfigError(f"analyze: no {trainer} checkpoint in {folder}")
    if not path.is_file():
        raise ConfigError(f"analyze: checkpoint {path} does not exist")
    replay, step = adapter.replay(config, path, episodes, seed)
    return Loaded(replay, path, step, adapter.axis)
