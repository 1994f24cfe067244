"""Command line: ``python main.py train [KEY=VALUE ...]`` and ``python main.py replay PATH``."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import anyio
import structlog
from omegaconf import OmegaConf

from agents.amp import AMPConfig
from agents.erl import ERLConfig
from agents.ppo import PPOConfig
from agents.registry import DEFAULT_EPISODES, MAIN_AXIS, TRAINERS, trainer_module
from sinks.console import ConsoleOptions
from sinks.jsonl import JsonlOptions
from sinks.memory import MemoryOptions
from sinks.tensorboard_sink import TensorBoardOptions
from sinks.wandb_sink import WandbOptions
from telemetry.bus import Bus, CloseReport, RunInfo
from telemetry.config import AggregateSection, load_config
from telemetry.errors import ConfigError, LogFormatError, TelemetryError
from telemetry.logging import configure_logging
from telemetry.registry import SinkContext, known_sinks, sink_spec
from telemetry.replay import identify, replay_log
from telemetry.session import (
    CONFIG_NAME,
    RunFolder,
    existing_run_folder,
    new_run_folder,
    until_signal,
)
from telemetry.sink import Sink

EXIT_USAGE = 2


@dataclass
class SinkSections:
    """Each sink's settings, under the sink's name (used only when the sink is chosen)."""

    jsonl: JsonlOptions = field(default_factory=JsonlOptions)
    console: ConsoleOptions = field(default_factory=ConsoleOptions)
    memory: MemoryOptions = field(default_factory=MemoryOptions)
    tensorboard: TensorBoardOptions = field(default_factory=TensorBoardOptions)
    wandb: WandbOptions = field(default_factory=WandbOptions)


@dataclass
class ReplayConfig(SinkSections):
    """What ``replay`` reads: the sinks to feed and how long closing may take."""

    sinks: list[str] = field(default_factory=lambda: ["wandb"])
    """Sinks that receive the replayed events, by name."""
    close_timeout: float = 60.0
    """Seconds closing the bus may take at most."""

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is not allowed."""
        if "jsonl" in self.sinks:
            raise ConfigError("sinks: replay reads the jsonl log, so it cannot also write it")
        if self.close_timeout <= 0:
            raise ConfigError(f"close_timeout must be more than 0, got {self.close_timeout}")
        validate_sinks(self, self.sinks)


@dataclass
class RunConfig(SinkSections):
    """Everything one training run reads: trainer, budget, output, sinks and their settings."""

    trainer: str = "ppo"
    """Which trainer runs: erl, ppo or amp."""
    episodes: int | None = None
    """Episodes (ERL: generations, AMP: epochs) to train; default erl 30, ppo 300, amp 30."""
    seed: int = 0
    """Seed of every random number generator of the run."""
    out: str = "runs"
    """Folder in which each run gets its own sub-folder."""
    name: str | None = None
    """Run name shown by the sinks; default ``<trainer>-<run id>``."""
    project: str = "rltelemetry"
    """Project name (wandb project)."""
    tags: list[str] = field(default_factory=list)
    """Free-form run tags."""
    group: str | None = None
    """Run group, for comparing runs together."""
    notes: str | None = None
    """Free-form notes on the run."""
    sinks: list[str] = field(default_factory=lambda: ["jsonl", "console"])
    """Sinks that receive the events, by name."""
    close_timeout: float = 10.0
    """Seconds closing the bus may take at most; what is late stays in the log for replay."""
    health_interval: float = 5.0
    """Seconds between pipeline health reports (0: only at close)."""
    resume: str | None = None
    """A run folder to continue: same run id, log appended, trainer from its last checkpoint."""
    aggregate: AggregateSection = field(default_factory=AggregateSection)
    erl: ERLConfig = field(default_factory=ERLConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    amp: AMPConfig = field(default_factory=AMPConfig)

    def resolve(self) -> RunConfig:
        """Fill the defaults that depend on the trainer (episodes, aggregated axis)."""
        if self.episodes is None:
            self.episodes = DEFAULT_EPISODES[self.trainer]
        if not self.aggregate.axis:
            self.aggregate.axis = MAIN_AXIS[self.trainer]
        return self

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is not allowed."""
        if self.trainer not in TRAINERS:
            raise ConfigError(f"trainer must be one of {', '.join(TRAINERS)}, got {self.trainer!r}")
        if self.episodes is not None and self.episodes < 1:
            raise ConfigError(f"episodes must be at least 1, got {self.episodes}")
        if self.seed < 0:
            raise ConfigError(f"seed must be 0 or more, got {self.seed}")
        if self.close_timeout <= 0:
            raise ConfigError(f"close_timeout must be more than 0, got {self.close_timeout}")
        if self.health_interval < 0:
            raise ConfigError(f"health_interval must be 0 or more, got {self.health_interval}")
        validate_sinks(self, self.sinks)
        self.aggregate.spec()
        getattr(self, self.trainer).validate()


def validate_sinks(config: Any, names: list[str]) -> None:
    """Each sink known, listed once, and its section's values allowed."""
    if not names:
        known = ", ".join(known_sinks())
        raise ConfigError(f"sinks must name at least one sink; known sinks: {known}")
    for name in names:
        sink_spec(name)
    if len(set(names)) != len(names):
        raise ConfigError(f"sinks lists a sink twice: {names}")
    for name in names:
        section = getattr(config, name, None)
        if section is not None:
            section.validate(name)


def build_sinks(config: Any, names: list[str], context: SinkContext) -> list[tuple[Sink, Any]]:
    """Each named sink built from its config section, paired with its delivery settings."""
    pairs = []
    for name in names:
        spec = sink_spec(name)
        section = getattr(config, name, None) or spec.options()
        pairs.append((spec.build(context, section), section))
    return pairs


async def train(config: RunConfig) -> int:
    """Run one training job with telemetry; returns the process exit status."""
    module = trainer_module(config.trainer)
    trainer_config = getattr(config, config.trainer)
    if config.resume:
        folder = existing_run_folder(Path(config.resume))
    else:
        folder = new_run_folder(Path(config.out), config.trainer)
    OmegaConf.save(OmegaConf.structured(config), folder.path / CONFIG_NAME)
    name = config.name or f"{config.trainer}-{folder.run_id}"
    context = SinkContext(
        run_id=folder.run_id, run_dir=folder.path, run_name=name, resumed=folder.resumed
    )
    run = RunInfo(
        name=name,
        project=config.project,
        tags=tuple(config.tags),
        group=config.group,
        notes=config.notes,
        config=OmegaConf.to_container(OmegaConf.structured(config)),  # type: ignore[arg-type]
        resumed=folder.resumed,
    )
    async with Bus(
        folder.run_id,
        build_sinks(config, config.sinks, context),
        run=run,
        aggregate=config.aggregate.spec(),
        health_interval=config.health_interval or None,
        close_timeout=config.close_timeout,
        first_seq=folder.last_seq,
    ) as bus:
        trainer = module.build(trainer_config, bus, folder.path, config.seed)
        episodes = config.episodes or DEFAULT_EPISODES[config.trainer]
        _, signum = await until_signal(lambda: trainer.train(episodes))
        if signum is not None:
            await bus.aclose(status="interrupted")
    _summarise(bus.report, folder)
    return 128 + signum if signum is not None else 0


async def replay(path: Path, config: ReplayConfig) -> int:
    """Feed a run's log through the chosen sinks; non-zero status if anything was skipped."""
    identity = identify(path)
    run_dir = identity.path.parent
    context = SinkContext(run_id=identity.run_id, run_dir=run_dir, run_name=identity.run_id)
    sinks = build_sinks(config, config.sinks, context)
    outcome = await replay_log(identity.path, sinks, close_timeout=config.close_timeout)
    log = structlog.get_logger("rltelemetry")
    log.info(
        "replay_done",
        log=str(identity.path),
        events=outcome.events,
        skipped_lines=len(outcome.problems),
        undelivered=outcome.report.undelivered or None,
    )
    return 0 if outcome.complete else 1


def _summarise(report: CloseReport | None, folder: RunFolder) -> None:
    log = structlog.get_logger("rltelemetry")
    if report is not None:
        log.info(
            "run_saved",
            run_dir=str(folder.path),
            events=report.published,
            resume=f"python main.py train resume={folder.path}",
        )


def keys_help(schema: type[Any], prefix: str = "") -> list[str]:
    """``key (type, default)`` lines for ``--help``, nested sections included."""
    lines = []
    instance = schema()
    for f in fields(schema):
        value = getattr(instance, f.name)
        if is_dataclass(value):
            lines += keys_help(type(value), f"{prefix}{f.name}.")
        else:
            lines.append(f"  {prefix}{f.name} = {value!r}")
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="Train with asynchronous telemetry, or replay a run's event log into sinks.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train_cmd = commands.add_parser(
        "train",
        help="train one of the trainers with telemetry",
        description="Train with telemetry. Override any config key as KEY=VALUE, "
        "for example: trainer=erl episodes=50 sinks=[jsonl,console] console.every=5",
        epilog="config keys and defaults:\n" + "\n".join(keys_help(RunConfig)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train_cmd.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    train_cmd.add_argument("--config", type=Path, help="YAML config file (default: built-in)")
    replay_cmd = commands.add_parser(
        "replay",
        help="feed a run's JSON Lines log through sinks",
        description="Replay a run folder or its events.jsonl through the chosen sinks, "
        "by the same code path as live logging.",
    )
    replay_cmd.add_argument("path", type=Path, help="a run folder or its events.jsonl")
    replay_cmd.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    return parser


def load_train_config(path: Path | None, overrides: list[str]) -> RunConfig:
    """The train config; with ``resume=FOLDER``, the resumed run's saved config is the base."""
    config = load_config(RunConfig, path, overrides)
    if not config.resume:
        return config
    saved = Path(config.resume) / CONFIG_NAME
    if not saved.is_file():
        raise ConfigError(f"resume: {config.resume} is not a run folder (no {CONFIG_NAME} in it)")
    return load_config(RunConfig, saved, overrides)


def cli(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    configure_logging()
    try:
        if args.command == "train":
            config = load_train_config(args.config, args.overrides)
            config.validate()
            config.resolve()
            return anyio.run(train, config)
        replay_config = load_config(ReplayConfig, None, args.overrides)
        replay_config.validate()
        return anyio.run(replay, args.path, replay_config)
    except (ConfigError, LogFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TelemetryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def main() -> None:
    """Console entry point: exit as soon as the run is closed.

    Everything the run wrote is flushed and closed by then; a sink call that
    missed its deadline may still sit in a worker thread (a wandb ``init`` or
    ``finish`` against a dead server) and must not keep the process alive.
    """
    code = cli()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
