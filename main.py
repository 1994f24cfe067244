"""Command line: ``train [KEY=VALUE ...]``, ``replay PATH``, ``sweep FILE``, ``agent SWEEP``,
``analyze CHECKPOINT_OR_RUN_FOLDER``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import structlog
from omegaconf import OmegaConf

from agents.callbacks import attach, load_callbacks
from agents.registry import TRAINERS, trainer_spec
from agents.sim_settings import sim_setting_names
from sinks.registry import LOG_SINK
from sinks.settings import build_sinks, validate_sinks
from sinks.settings import with_sections as sink_with_sections
from telemetry import commands as commands_more
from telemetry.alerts import AlertsSection, until_stop_requested
from telemetry.bus import Bus, CloseReport
from telemetry.checks import COUNT, TIMEOUT, Interval, check_number, check_numbers
from telemetry.config import AggregateSection, load_config
from telemetry.errors import ConfigError, LogFormatError, TelemetryError
from telemetry.intake import INTAKE_CAPACITY
from telemetry.logging import configure_logging
from telemetry.replay import identify, replay_log
from telemetry.session import (
    CONFIG_NAME,
    STOP_SIGNAL,
    RunFolder,
    existing_run_folder,
    ignored_signals,
    new_run_folder,
    run_identity,
    until_signal,
)
from telemetry.sink import SinkContext
from telemetry.sweep.names import config_keys, field_names
from telemetry.system import sample_system

EXIT_USAGE = 2
logger = structlog.get_logger("rltelemetry")
S = TypeVar("S")


@dataclass
class ReplaySettings:
    """What ``replay`` reads besides the sink sections: the sinks to feed, the close budget."""

    sinks: list[str] = field(default_factory=lambda: ["wandb"])
    """Sinks that receive the replayed events, by name."""
    close_timeout: float = 60.0
    """Seconds closing the bus may take at most."""

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is not allowed."""
        if LOG_SINK in self.sinks:
            raise ConfigError(f"sinks: replay reads the {LOG_SINK} log, so it cannot also write it")
        check_number("", self, "close_timeout", TIMEOUT)
        validate_sinks(self, self.sinks)


@dataclass
class RunSettings:
    """What one training run reads besides the sink and trainer sections."""

    trainer: str = "ppo"
    """Which trainer runs, by its name in ``agents/registry.py``: erl, ppo, amp..."""
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
    """Sinks that receive the events besides the log (written by every run), by name."""
    close_timeout: float = 10.0
    """Seconds closing the bus may take at most; what is late stays in the log for replay."""
    health_interval: float = 5.0
    """Seconds between pipeline health reports (0: only at close)."""
    intake_capacity: int = INTAKE_CAPACITY
    """Events published and not yet handed to the sinks at most; past it the publisher waits."""
    resume: str | None = None
    """A run folder to continue: same run id, log appended, trainer from its last checkpoint."""
    system_interval: float = 10.0
    """Seconds between system metrics (CPU, memory, threads, disk, GPU) under system/; 0 off."""
    callbacks: list[str] = field(default_factory=list)
    """Trainer callbacks as ``pkg.module:Class`` (``agents.callbacks.Callback``), in order."""
    aggregate: AggregateSection = field(default_factory=AggregateSection)
    alerts: AlertsSection = field(default_factory=AlertsSection)

    def resolve(self) -> RunSettings:
        """Fill the defaults that depend on the trainer (episodes, aggregated axis)."""
        spec = trainer_spec(self.trainer)
        if self.episodes is None:
            self.episodes = spec.episodes
        if not self.aggregate.axis:
            self.aggregate.axis = spec.axis
        return self

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is not allowed."""
        trainer_spec(self.trainer)
        if self.episodes is not None:
            check_number("", self, "episodes", COUNT)
        check_numbers("", self, _RUN_LIMITS)
        validate_sinks(self, self.sinks)
        if LOG_SINK not in self.sinks:  # written all the same, so its section applies
            getattr(self, LOG_SINK).validate(LOG_SINK)
        self.aggregate.spec()
        self.alerts.spec()
        getattr(self, self.trainer).validate()

    @property
    def sink_names(self) -> list[str]:
        """The sinks a run feeds: the durable log first, then the others ``sinks`` lists."""
        return [LOG_SINK, *(name for name in self.sinks if name != LOG_SINK)]


_RUN_LIMITS = {
    "seed": Interval(0, integer=True, text="0 or more"),
    "close_timeout": TIMEOUT,
    "health_interval": Interval(0.0, text="0 or more"),
    "intake_capacity": COUNT,
    "system_interval": Interval(0.0, text="0 or more"),
}


def with_sections(name: str, base: type[S], *, trainers: bool) -> type[S]:
    """``base`` plus a section per registered sink (and trainer), typed by its options class."""
    extra = [(trainer, trainer_spec(trainer).config) for trainer in TRAINERS] if trainers else []
    return sink_with_sections(name, base, extra)


def run_config() -> type[RunSettings]:
    """The ``train`` config schema: run settings, each sink's and each trainer's section."""
    return with_sections("RunConfig", RunSettings, trainers=True)


def replay_config() -> type[ReplaySettings]:
    """The ``replay`` config schema: replay settings and each sink's section."""
    return with_sections("ReplayConfig", ReplaySettings, trainers=False)


SCHEMA_COMMANDS = ("train", "sweep", "agent", "analyze")
"""The commands that read the train schema (it imports every trainer's module, and torch)."""


def _needs_schema(argv: Sequence[str]) -> bool:
    """Whether the command line reads the train schema (``train --help`` lists its keys)."""
    return bool(argv) and argv[0] in SCHEMA_COMMANDS


async def train(config: RunSettings) -> int:
    """Run one training job with telemetry; returns the process exit status."""
    spec = trainer_spec(config.trainer)
    trainer_config = getattr(config, config.trainer)
    callbacks = load_callbacks(config.callbacks)  # refused before any run folder exists
    if config.resume:
        folder = existing_run_folder(Path(config.resume))
    else:
        folder = new_run_folder(Path(config.out), config.trainer)
    OmegaConf.save(OmegaConf.structured(config), folder.path / CONFIG_NAME)
    run, context = run_identity(config, folder, resumed=folder.resumed)
    bus = Bus(
        folder.run_id,
        build_sinks(config, config.sink_names, context),
        run=run,
        aggregate=config.aggregate.spec(),
        health_interval=config.health_interval or None,
        close_timeout=config.close_timeout,
        first_seq=folder.last_seq,
        intake_capacity=config.intake_capacity,
        alerts=config.alerts.spec(),
    )
    with contextlib.ExitStack() as closing:
        async with bus:
            trainer = spec.build(trainer_config, bus, folder.path, config.seed)
            if callbacks:  # a trainer not on TrainerLoop takes none, and needs none
                attach(trainer, callbacks)
            episodes = config.episodes or spec.episodes

            async def work() -> None:
                async with anyio.create_task_group() as group:
                    group.start_soon(sample_system, bus, config.system_interval, folder.path)
                    await trainer.train(episodes)
                    group.cancel_scope.cancel()

            try:
                _, signum = await until_signal(lambda: until_stop_requested(bus, work))
            except BaseExceptionGroup as group:
                # The run failed for this one reason: the log's run_finished and the user see it.
                raise _sole(group) from None
            if signum is not None:  # closing is bounded by close_timeout: let it end
                closing.enter_context(ignored_signals())
            if signum == STOP_SIGNAL or (signum is None and bus.stop_request.requested):
                # Stopped early on purpose (a sweep, an alert rule's action): a clean end.
                await bus.aclose(status="stopped")
                signum = None
            elif signum is not None:
                await bus.aclose(status="interrupted")
    _summarise(bus.report, folder)
    return 128 + signum if signum is not None else 0


async def replay(path: Path, config: ReplaySettings) -> int:
    """Feed a run's log through the chosen sinks; non-zero status if anything was skipped."""
    identity = identify(path)
    run_dir = identity.path.parent
    context = SinkContext(run_id=identity.run_id, run_dir=run_dir, run_name=identity.run_id)
    sinks = build_sinks(config, config.sinks, context)
    outcome = await replay_log(identity.path, sinks, close_timeout=config.close_timeout)
    logger.info(
        "replay_done",
        log=str(identity.path),
        events=outcome.events,
        skipped_lines=len(outcome.problems),
        undelivered=outcome.report.undelivered or None,
    )
    return 0 if outcome.complete else 1


def _summarise(report: CloseReport | None, folder: RunFolder) -> None:
    if report is not None:
        logger.info(
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


@dataclass(frozen=True)
class OwnTrain:
    """Our ``train`` as a sweep's trial: parameter names as config keys, and the base check."""

    schema: type[RunSettings]

    @property
    def main(self) -> Path:
        """This file: how a trial runs ``train``."""
        return Path(__file__).resolve()

    def keys(
        self, names: Sequence[str], overrides: Sequence[str], constants: Mapping[str, Any]
    ) -> dict[str, str]:
        """Each parameter name's config key, for the trainer the overrides or constants pick."""
        chosen = [f"trainer={constants['trainer']}"] if "trainer" in constants else []
        config = load_train_config(None, [*overrides, *chosen], self.schema)
        spec = trainer_spec(config.trainer)
        return config_keys(
            names,
            run_keys=field_names(config),
            trainer=config.trainer,
            trainer_keys=field_names(getattr(config, config.trainer)),
            sim_keys=sim_setting_names(spec.sim) if spec.sim else [],
            aliases=spec.aliases,
        )

    def check(self, overrides: Sequence[str]) -> None:
        """Raise ``ConfigError`` if a trial's train config would not be allowed."""
        load_train_config(None, list(overrides), self.schema).validate()


def _parser(run_schema: type[Any] | None) -> argparse.ArgumentParser:
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
        epilog="config keys and defaults:\n" + "\n".join(keys_help(run_schema))
        if run_schema is not None
        else None,
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
    sweep_cmd = commands.add_parser(
        "sweep",
        help="run a W&B sweep file offline, or resume, show or pick the best of a sweep",
        description="sweep FILE.yaml [KEY=VALUE ...]: create a sweep under OUT/sweeps/<id>/ and "
        "run its agents; the overrides are every trial's base config. "
        "sweep resume SWEEP, sweep show SWEEP, sweep best SWEEP (SWEEP: its folder or id).",
    )
    sweep_cmd.add_argument("target", metavar="FILE|resume|show|best")
    sweep_cmd.add_argument("rest", nargs="*", metavar="SWEEP|KEY=VALUE")
    sweep_cmd.add_argument("--agents", type=int, default=1, help="agents run at once (default 1)")
    sweep_cmd.add_argument("--seed", type=int, default=0, help="the engine's seed (default 0)")
    sweep_cmd.add_argument("--output", type=Path, help="sweep best: the config file to write")
    agent_cmd = commands.add_parser(
        "agent",
        help="join a sweep from another terminal or host",
        description="agent SWEEP [storage=URL]: run the sweep's trials one at a time until it "
        "ends (SWEEP: its folder, or its id with storage=URL).",
    )
    agent_cmd.add_argument("sweep", metavar="SWEEP")
    agent_cmd.add_argument("rest", nargs="*", metavar="storage=URL")
    for command in (sweep_cmd, agent_cmd):
        command.add_argument("--count", type=int, help="stop after this many trials have ended")
        command.add_argument("--storage", help="postgresql://... shared by agents on several hosts")
        command.add_argument("--out", type=Path, default=Path("out"), help="default: out")
    analyze_cmd = commands.add_parser(
        "analyze",
        help="replay a trained checkpoint and write analysis/ in its run folder",
        description="Replay a checkpoint (or a run folder's best or latest one) with the run's "
        "saved config on fresh seeded episodes; write analysis/ (a PNG per view, "
        "analysis.json, summary.md) in the run folder, and publish it with --log-to.",
    )
    analyze_cmd.add_argument("target", type=Path, metavar="CHECKPOINT_OR_RUN_FOLDER")
    analyze_cmd.add_argument(
        "--type", default="all", help="feature, action, latent, sensitivity or all (default)"
    )
    analyze_cmd.add_argument("--episodes", type=int, default=5, help="episodes (default 5)")
    analyze_cmd.add_argument("--seed", type=int, default=0, help="episodes' seed (default 0)")
    analyze_cmd.add_argument(
        "--log-to", default="", metavar="SINKS", help="sinks to publish to, e.g. wandb,tensorboard"
    )
    commands_more.add_commands(commands)
    return parser


def load_train_config(
    path: Path | None, overrides: list[str], schema: type[RunSettings] | None = None
) -> RunSettings:
    """The train config; with ``resume=FOLDER``, the resumed run's saved config is the base."""
    schema = schema or run_config()
    config = load_config(schema, path, overrides)
    if not config.resume:
        return config
    saved = Path(config.resume) / CONFIG_NAME
    if not saved.is_file():
        raise ConfigError(f"resume: {config.resume} is not a run folder (no {CONFIG_NAME} in it)")
    return load_config(schema, saved, overrides)


def cli(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status.

    An error of ours ends the run with one ``error:`` line and no traceback:
    status 2 for usage, config and log format errors, 1 for the others (a
    checkpoint that cannot be written...). The bus has closed by then, its log
    ending with ``run_finished`` status ``failed``.
    """
    try:
        arguments = sys.argv[1:] if argv is None else argv
        # From the registries as they are now; only for the commands that read it.
        schema = run_config() if _needs_schema(arguments) else None
        parser = _parser(schema)
        args, extra = parser.parse_known_args(argv)
        # KEY=VALUE overrides given after an option (argparse stops collecting them there).
        listed = "rest" if args.command in ("sweep", "agent") else "overrides"
        if any(item.startswith("-") or "=" not in item for item in extra) or (
            extra and args.command in ("analyze", "dashboard", "report")
        ):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if extra:
            setattr(args, listed, [*getattr(args, listed), *extra])
        configure_logging()
        return _command(args, schema)
    except Exception as exc:
        error = _sole(exc)
        if not isinstance(error, TelemetryError):
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, ConfigError | LogFormatError) else 1


def _command(args: argparse.Namespace, schema: type[RunSettings] | None) -> int:
    """Run the parsed command; ``schema`` is the train schema when the command reads it."""
    if args.command in commands_more.NAMES:
        return commands_more.run(args)
    if args.command == "replay":
        settings = load_config(replay_config(), None, args.overrides)
        settings.validate()
        return anyio.run(replay, args.path, settings)
    schema = schema or run_config()
    if args.command in ("sweep", "agent"):
        return _sweep_command(args, OwnTrain(schema))
    if args.command == "analyze":
        return _analyze_command(args, schema)
    if args.command == "train":
        config = load_train_config(args.config, args.overrides, schema)
        config.validate()
        config.resolve()
        return anyio.run(train, config)
    raise AssertionError(f"no such command: {args.command}")  # argparse refused it before


def _analyze_command(args: argparse.Namespace, schema: type[RunSettings]) -> int:
    from agents.analysis import command as analysis  # torch and the trainers: only when asked

    sinks = tuple(name.strip() for name in args.log_to.split(",") if name.strip())
    request = analysis.Request(args.target, args.type, args.episodes, args.seed, sinks)
    run_dir, _ = analysis.run_folder(args.target)
    config = load_config(schema, run_dir / CONFIG_NAME, [])
    return anyio.run(analysis.analyze, request, config)


def _sweep_command(args: argparse.Namespace, train: OwnTrain) -> int:
    from telemetry.sweep import cli as sweep_cli  # Optuna and SQLAlchemy: only when asked
    from telemetry.sweep.folder import create_sweep, find_sweep

    count = _positive("--count", args.count)
    storage, rest = _storage(args.storage, args.rest)
    if args.command == "agent":
        folder = find_sweep(args.sweep, args.out, storage)
        return anyio.run(_agents, folder, train, 1, count)
    agents = _positive("--agents", args.agents) or 1
    if args.target in ("resume", "show", "best"):
        if len(rest) != 1:
            raise ConfigError(f"sweep {args.target} takes one SWEEP (its folder or id)")
        folder = find_sweep(rest[0], args.out, storage)
        if args.target == "show":
            return sweep_cli.show(folder)
        if args.target == "best":
            return sweep_cli.best(folder, train, args.output)
        with folder.engine() as engine:
            engine.reenqueue_failed_grid_points()
        return anyio.run(_agents, folder, train, agents, count)
    sweep_cli.check_sweep(sweep_cli.load(Path(args.target)), rest, train)
    folder, _ = create_sweep(
        Path(args.target), args.out, seed=args.seed, storage=storage, overrides=rest
    )
    logger.info("sweep_created", sweep=folder.id, folder=str(folder.path), storage=folder.storage)
    return anyio.run(_agents, folder, train, agents, count)


async def _agents(folder: Any, train: OwnTrain, agents: int, count: int | None) -> int:
    from telemetry.sweep import cli as sweep_cli

    return await sweep_cli.run_agents(folder, folder.spec, train, agents=agents, count=count)


def _storage(option: str | None, rest: list[str]) -> tuple[str | None, list[str]]:
    """``storage=URL`` among the positional arguments, as the option ``--storage`` also says."""
    given = [item for item in rest if item.startswith("storage=")]
    others = [item for item in rest if not item.startswith("storage=")]
    storage = given[-1].partition("=")[2] if given else option
    return storage, others


def _positive(option: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ConfigError(f"{option} must be 1 or more, got {value}")
    return value


def _sole(exc: BaseException) -> BaseException:
    """The one exception that task groups wrapped ``exc`` around, or ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


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
