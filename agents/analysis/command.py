"""``python main.py analyze``: replay a checkpoint, run the views, write ``analysis/``, publish.

The run folder gets ``analysis/<view>.png`` per view, ``analysis/analysis.json`` (every
view's numbers, keyed by view) and ``analysis/summary.md`` (each view's summary lines and the
seconds it took); a second analysis replaces the files of the views it runs. With sinks to
log to, the run is resumed (same run id, ``seq`` after its log's last) and every view goes
out as two ``ArtifactSaved`` events: kind ``image`` (the PNG) and kind ``table`` (the JSON),
with ``metadata={"view": name}``.

Everything that can be refused is checked before anything is written.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agents.analysis.adapters import Loaded, load
from agents.analysis.replay import Replay
from sinks.registry import LOG_SINK, sink_spec
from sinks.settings import build_sinks, validate_sinks
from telemetry.bus import Bus
from telemetry.errors import ConfigError
from telemetry.events import ArtifactSaved
from telemetry.reader import LOG_NAME
from telemetry.session import CONFIG_NAME, existing_run_folder, run_identity

__all__ = ["ALL", "FOLDER", "Request", "analyze", "run_folder", "views"]

logger = structlog.get_logger("rltelemetry")

FOLDER = "analysis"
"""The analysis folder inside a run folder."""
ALL = "all"
"""``--type all``: every view of the registry, in its order."""
TABLE_NAME = "analysis.json"
SUMMARY_NAME = "summary.md"
DPI = 110


@dataclass(frozen=True, slots=True)
class Request:
    """What ``analyze`` was asked: the checkpoint or run folder, views, episodes, seed, sinks."""

    target: Path
    kind: str = ALL
    episodes: int = 5
    seed: int = 0
    log_to: tuple[str, ...] = ()


def views() -> Mapping[str, Callable[..., Any]]:
    """The views' registry (``agents.analysis.views.VIEWS``), looked up when analysing."""
    # Imported here: the views pull in matplotlib and captum, which train never needs.
    module = importlib.import_module("agents.analysis.views")
    registry: Mapping[str, Callable[..., Any]] = module.VIEWS
    return registry


def run_folder(target: Path) -> tuple[Path, Path | None]:
    """The run folder of ``target`` and the checkpoint it names (None: the trainer's default)."""
    if target.is_dir():
        run_dir, checkpoint = target, None
    elif target.is_file():
        if target.parent.name != "checkpoints":
            raise ConfigError(
                f"analyze: {target} is not in a run's checkpoints/ folder (give the run folder "
                "or a checkpoint file inside it)"
            )
        run_dir, checkpoint = target.parent.parent, target
    else:
        raise ConfigError(f"analyze: checkpoint or run folder {target} does not exist")
    if not (run_dir / CONFIG_NAME).is_file():
        raise ConfigError(f"analyze: {run_dir} is not a run folder (no {CONFIG_NAME} in it)")
    return run_dir, checkpoint


def _chosen(kind: str, registry: Mapping[str, Any]) -> list[str]:
    if kind == ALL:
        return list(registry)
    if kind not in registry:
        allowed = ", ".join([*registry, ALL])
        raise ConfigError(f"analyze: --type must be one of {allowed}, got {kind!r}")
    return [kind]


def _check_sinks(config: Any, names: Sequence[str], run_dir: Path) -> None:
    try:
        for name in names:
            sink_spec(name)  # names the unknown sink and the known ones
        if names:
            validate_sinks(config, list(names))
    except ConfigError as exc:
        raise ConfigError(f"analyze: --log-to: {exc}") from None
    if names and not (run_dir / LOG_NAME).is_file():
        raise ConfigError(f"analyze: --log-to needs the run's log, {run_dir / LOG_NAME}")


async def analyze(request: Request, config: Any) -> int:
    """Run the request against the run whose saved config (``config.yaml``) is ``config``."""
    run_dir, checkpoint = run_folder(request.target)
    if request.episodes < 1:
        raise ConfigError(f"analyze: --episodes must be 1 or more, got {request.episodes}")
    registry = views()
    names = _chosen(request.kind, registry)
    _check_sinks(config, request.log_to, run_dir)
    trainer = config.trainer
    loaded = load(
        trainer, getattr(config, trainer), run_dir, checkpoint, request.episodes, request.seed
    )
    results, seconds = [], {}
    for name in names:
        start = time.perf_counter()
        results.append(registry[name](loaded.replay, seed=request.seed))
        seconds[name] = time.perf_counter() - start
        logger.info("view_done", view=name, seconds=round(seconds[name], 2))
    folder = run_dir / FOLDER
    images = _write(folder, loaded, results, seconds)
    logger.info("analysis_saved", folder=str(folder), checkpoint=str(loaded.checkpoint))
    if request.log_to:
        await _publish(config, run_dir, loaded, images, folder / TABLE_NAME, request.log_to)
    return 0


def _write(
    folder: Path, loaded: Loaded, results: Sequence[Any], seconds: Mapping[str, float]
) -> dict[str, Path]:
    """Write the PNGs, the JSON and the summary; the PNG of each view by name."""
    folder.mkdir(exist_ok=True)
    images = {}
    for result in results:
        images[result.name] = folder / f"{result.name}.png"
        result.figure.savefig(images[result.name], dpi=DPI)
    numbers = {result.name: result.numbers for result in results}
    (folder / TABLE_NAME).write_text(json.dumps(numbers, indent=1, allow_nan=True) + "\n")
    replay: Replay = loaded.replay
    lines = [
        f"# Analysis of {loaded.checkpoint.name}",
        "",
        f"{replay.trainer}, {loaded.axis} {loaded.step}: {len(replay.episode_returns)} episodes, "
        f"{len(replay.observations)} states, mean episode return "
        f"{float(replay.episode_returns.mean()):.4g}.",
    ]
    for result in results:
        lines += [
            "",
            f"## {result.name} ({seconds[result.name]:.2f} s)",
            "",
            result.summary.strip(),
        ]
    (folder / SUMMARY_NAME).write_text("\n".join(lines) + "\n")
    return images


async def _publish(
    config: Any,
    run_dir: Path,
    loaded: Loaded,
    images: Mapping[str, Path],
    table: Path,
    log_to: Sequence[str],
) -> None:
    """Resume the run and send each view's image and numbers to the log and ``log_to``."""
    folder = existing_run_folder(run_dir)
    sinks = [LOG_SINK, *(sink for sink in log_to if sink != LOG_SINK)]
    run, context = run_identity(config, folder, resumed=True)
    bus = Bus(
        folder.run_id,
        build_sinks(config, sinks, context),
        run=run,
        health_interval=None,
        close_timeout=config.close_timeout,
        first_seq=folder.last_seq,
    )
    async with bus:
        for view, image in images.items():
            common = {"step": loaded.step, "axis": loaded.axis, "metadata": {"view": view}}
            bus.emit(
                ArtifactSaved, name=f"analysis/{view}", path=str(image), kind="image", **common
            )
            bus.emit(
                ArtifactSaved, name=f"analysis/{view}", path=str(table), kind="table", **common
            )
