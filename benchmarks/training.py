"""4. Training overhead: each trainer with all four sinks in its process, with the sinks
``sidecar.default=sidecar`` moves (console, TensorBoard, wandb) in a sidecar process at its
default priority, and with the memory sink only, interleaved.

Each run is set up as ``main.py train`` sets it up (run info with the config,
aggregates every 10 steps of the trainer's axis, health every 5 s), in a fresh
folder, seed 0. The figure is the time of ``await trainer.train(n)``; the
time from opening the bus to the end of its close (wandb's start and finish
included) is reported beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.amp import AMPConfig
from agents.erl import ERLConfig
from agents.ppo import PPOConfig
from agents.registry import trainer_spec
from benchmarks import sinks4
from benchmarks.common import Report, Sizes, devnull_text, interleave, quiet_stderr
from benchmarks.throughput import check_report
from telemetry.aggregate import AggregateSpec
from telemetry.bus import Bus, RunInfo
from telemetry.sink import Sink

GOAL_PCT = 3.0
SIDECAR_GOAL_PCT = 1.0

SMALL: dict[str, Any] = {
    "erl": lambda: ERLConfig(
        population_size=4,
        episode_length=20,
        episodes_per_generation=1,
        gradient_steps_per_generation=5,
        batch_size=16,
        buffer_capacity=1000,
        hidden_size=16,
        validation_episodes=2,
        log_frequency=2,
        sync_period=2,
    ),
    "ppo": lambda: PPOConfig(
        steps_per_episode=8,
        impressions_per_step=30,
        daily_budget=100.0,
        minibatch_size=8,
        update_epochs=2,
        hidden_size=16,
        calibration_size=300,
        ctr_steps=5,
        eval_frequency=3,
        save_freq=0,
    ),
    "amp": lambda: AMPConfig(
        num_envs=8,
        horizon=8,
        max_episode_steps=6,
        mini_epochs=2,
        minibatch_size=32,
        hidden_size=32,
        eval_frequency=2,
        eval_trials=4,
        save_freq=2,
    ),
}


async def train_once(
    name: str,
    episodes: int,
    folder: Path,
    sinks: list[Sink],
    small: bool,
    around: Callable[[bool], None] | None = None,
) -> dict[str, float]:
    """One training run; returns the seconds of ``train`` and of the whole bus lifetime.
    ``around(True)`` is called just before ``train``, ``around(False)`` just after."""
    spec = trainer_spec(name)
    config = SMALL[name]() if small else spec.config()
    rid = folder.name
    opened = time.perf_counter()
    async with Bus(
        rid,
        sinks,
        run=RunInfo(name=rid, config={"trainer": name, "episodes": episodes}),
        aggregate=AggregateSpec(every=10, axis=spec.axis),
        health_interval=5.0,
        close_timeout=120,
    ) as bus:
        trainer = spec.build(config, bus, folder, 0)
        if around is not None:
            around(True)
        start = time.perf_counter()
        await trainer.train(episodes)
        trained = time.perf_counter() - start
        if around is not None:
            around(False)
    total = time.perf_counter() - opened
    check_report(bus.report, f"{name} training")
    return {"train_s": trained, "total_s": total, "events": float(bus.published)}


async def run(sizes: Sizes, report: Report, folder: Path) -> None:
    with devnull_text() as stream:
        for name, episodes in sizes.training.items():
            await trainer(name, episodes, sizes, report, folder, stream)


async def trainer(
    name: str, episodes: int, sizes: Sizes, report: Report, folder: Path, stream: Any
) -> None:
    """All four sinks in process, the heavy ones in a sidecar, and the memory sink only
    (twice: the second against the first is an A/A pair, the noise floor of the others),
    for one trainer, interleaved, after a warm-up of each."""
    count = 0

    def fresh(kind: str) -> Path:
        nonlocal count
        count += 1
        path = folder / f"{name}-{kind}-{count}"
        path.mkdir(parents=True)
        return path

    def sinks(kind: str, path: Path) -> list[Sink]:
        return sinks4.for_kind(kind, path, stream)

    def block(kind: str) -> Any:
        async def one() -> dict[str, float]:
            path = fresh(kind)
            with quiet_stderr():  # the sidecar's console prints where the in-process one does
                return await train_once(
                    name, episodes, path, sinks(kind, path), sizes.training_small
                )

        return one

    # Warm-up, untimed: imports, first allocations, torch's first kernels, wandb's service.
    for kind in ("all", "side", "mem"):
        path = fresh(f"warm-{kind}")
        with quiet_stderr():
            await train_once(name, 1, path, sinks(kind, path), sizes.training_small)
    kinds = ("all", "side", "mem", "again")
    samples = await interleave(sizes.training_repeats, {kind: block(kind) for kind in kinds})
    events = int(samples["all.events"][0])
    all_label = (
        f"{name} train({episodes}): all four sinks vs memory sink only ({events} events per run)"
    )
    _overhead(report, f"training.{name}.overhead_pct", all_label, samples, "all", GOAL_PCT)
    side_label = (
        f"{name} train({episodes}): console, TensorBoard and wandb in the sidecar (priority "
        "idle) vs memory sink only"
    )
    _overhead(
        report,
        f"training.{name}.sidecar_overhead_pct",
        side_label,
        samples,
        "side",
        SIDECAR_GOAL_PCT,
    )
    noise = report.compare(
        f"training.{name}.noise_pct",
        f"{name}: memory sink only again vs memory sink only (A/A: the noise floor)",
        samples["again.train_s"],
        samples["mem.train_s"],
        "s",
        anchor_label="memory sink only",
    )
    if noise.ratio is not None:
        again, mem = samples["again.train_s"], samples["mem.train_s"]
        pairs = [a / m - 1 for a, m in zip(again, mem, strict=True)]
        noise.note = (
            f"A/A {(noise.ratio - 1) * 100:+.1f}%, single pairs "
            f"{min(pairs) * 100:+.1f}% to {max(pairs) * 100:+.1f}%"
        )
    report.compare(
        f"training.{name}.total_s",
        f"{name}: bus open to close done, all four sinks (wandb start and finish included)",
        samples["all.total_s"],
        samples["mem.total_s"],
        "s",
        anchor_label="memory sink only",
    )
    report.compare(
        f"training.{name}.sidecar_total_s",
        f"{name}: bus open to close done, heavy sinks in the sidecar (start, finish included)",
        samples["side.total_s"],
        samples["mem.total_s"],
        "s",
        anchor_label="memory sink only",
    )


def _overhead(
    report: Report, key: str, label: str, samples: dict[str, list[float]], kind: str, goal: float
) -> None:
    """``kind``'s training time against the memory sink only's, as an overhead in percent."""
    figure = report.compare(
        key,
        label,
        samples[f"{kind}.train_s"],
        samples["mem.train_s"],
        "s",
        anchor_label="memory sink only",
        goal=f"overhead <= {goal:g}%",
        check=lambda v, r: r is not None and (r - 1) * 100 <= goal,
    )
    if figure.ratio is not None:
        figure.note = f"overhead {(figure.ratio - 1) * 100:+.1f}% = (ratio - 1) * 100"
