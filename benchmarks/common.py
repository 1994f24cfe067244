"""What every benchmark section shares: sizes, figures, interleaving, waiting, memory sampling."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import psutil

from agents.registry import TRAINERS, trainer_spec
from telemetry.bus import Bus

VALUES: dict[str, float] = {f"train/metric_{i}": 0.5 * i + 0.125 for i in range(8)}
"""One training step's scalars: 8 metrics, as in the issue's comparisons."""

MIB = 1 << 20


@dataclass(frozen=True)
class Sizes:
    """How much work each section does; ``FULL`` for the figures, ``QUICK`` for CI."""

    repeats: int
    hot_calls: int
    """bus.log / run.log / add_scalar steps per timed block of the hot-path section."""
    hot_sub: int
    """Calls per sub-block; a block's figure is the median over its sub-blocks."""
    settle: float
    """Window of the idle check after each timed block (0: none), see ``quiesce``."""
    jsonl_events: int
    """Events per repeat of the JSON Lines throughput run."""
    all_sinks_events: int
    """Events per repeat through all four sinks."""
    sink_events: int
    """Events per repeat through the TensorBoard or wandb sink (section 3)."""
    direct_steps: int
    """Steps per timed block of a direct library call when measuring its rate."""
    training: dict[str, int] = field(default_factory=dict)
    """Episodes (ERL generations, AMP epochs) per training run, by trainer."""
    training_small: bool = False
    """Use the tests' small trainer configurations (quick mode)."""
    training_repeats: int = 5
    scaling_calls: int = 10_000
    scaling_repeats: int = 5
    outage_events: int = 1_000_000
    drain_events: int = 100_000


FULL = Sizes(
    repeats=7,
    hot_calls=8_000,
    hot_sub=2_000,
    settle=0.1,
    jsonl_events=300_000,
    all_sinks_events=20_000,
    sink_events=10_000,
    direct_steps=2_000,
    # each trainer's default run, as the issue asks
    training={name: trainer_spec(name).episodes for name in TRAINERS},
    training_repeats=5,
    scaling_calls=8_000,
    scaling_repeats=5,
    outage_events=1_000_000,
    drain_events=100_000,
)

QUICK = Sizes(
    repeats=3,
    hot_calls=500,
    hot_sub=250,
    settle=0.0,
    jsonl_events=5_000,
    all_sinks_events=500,
    sink_events=300,
    direct_steps=100,
    training={"erl": 1, "ppo": 2, "amp": 1},
    training_small=True,
    training_repeats=1,
    scaling_calls=300,
    scaling_repeats=1,
    outage_events=5_000,
    drain_events=5_000,
)


# -- figures --


@dataclass
class Figure:
    """One measured figure, its anchor (the direct library figure of the same run) and goal."""

    key: str
    title: str
    value: float
    unit: str
    anchor: float | None = None
    anchor_label: str = ""
    ratio: float | None = None
    """Median of the per-repeat ratios value/anchor (paired, interleaved repeats)."""
    goal: str = ""
    passed: bool | None = None
    """None: informational, no goal."""
    samples: list[float] = field(default_factory=list)
    anchor_samples: list[float] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Report:
    """The figures of one benchmark run, in the order they were measured."""

    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}
        self.errors: dict[str, str] = {}
        self.extra: dict[str, Any] = {}

    def add(self, figure: Figure) -> Figure:
        self.figures[figure.key] = figure
        return figure

    def compare(
        self,
        key: str,
        title: str,
        samples: Sequence[float],
        anchor_samples: Sequence[float] | None,
        unit: str,
        *,
        anchor_label: str = "",
        goal: str = "",
        check: Callable[[float, float | None], bool] | None = None,
        note: str = "",
        aggregate: Callable[[Sequence[float]], float] = statistics.median,
    ) -> Figure:
        """A figure from paired samples: value and anchor are medians, ratio the paired median.

        ``check(value, ratio)`` decides pass/fail; without it the figure is informational.
        """
        value = aggregate(samples)
        anchor = ratio = None
        if anchor_samples:
            anchor = aggregate(anchor_samples)
            ratio = paired_ratio(samples, anchor_samples)
        passed = check(value, ratio) if check is not None else None
        return self.add(
            Figure(
                key=key,
                title=title,
                value=value,
                unit=unit,
                anchor=anchor,
                anchor_label=anchor_label,
                ratio=ratio,
                goal=goal,
                passed=passed,
                samples=list(samples),
                anchor_samples=list(anchor_samples or []),
                note=note,
            )
        )


def paired_ratio(values: Sequence[float], anchors: Sequence[float]) -> float:
    """Median of value/anchor over repeats paired by index (interleaved, so noise cancels)."""
    ratios = [v / a for v, a in zip(values, anchors, strict=False) if a]
    return statistics.median(ratios) if ratios else math.nan


# -- interleaving --

Block = Callable[[], Awaitable[dict[str, float]]]


async def interleave(
    repeats: int, blocks: Mapping[str, Block], settle: float = 0.0
) -> dict[str, list[float]]:
    """Run each block once per repeat, alternating the order (A B, B A, ...).

    Each block returns named figures; the result holds ``<block>.<figure>`` lists,
    one sample per repeat. A full collection runs before each block, untimed.
    """
    samples: dict[str, list[float]] = {}
    names = list(blocks)
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            result = await blocks[name]()
            for figure, value in result.items():
                samples.setdefault(f"{name}.{figure}", []).append(value)
            if settle:
                await quiesce(settle)
    return samples


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU time of this process and its children (wandb's service), in seconds."""
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total


async def quiesce(window: float = 0.1, busy: float = 0.05, limit: float = 10.0) -> float:
    """Wait until this process and its children are idle: under ``busy`` of a core per ``window``.

    Background work left by one timed block (wandb's service digesting rows, a
    writer thread flushing) would otherwise land on the next block. Returns the
    seconds waited (at most ``limit``).
    """
    process = psutil.Process()
    start = time.perf_counter()
    last = _cpu_seconds(process)
    while time.perf_counter() - start < limit:
        await anyio.sleep(window)
        now = _cpu_seconds(process)
        if now - last < busy * window:
            break
        last = now
    return time.perf_counter() - start


# -- driving a bus --


async def wait_delivered(bus: Bus, target: int | None = None, timeout: float = 300.0) -> None:
    """Wait until every sink of ``bus`` has delivered (or failed) ``target`` events."""
    goal = bus.published if target is None else target
    with anyio.fail_after(timeout):
        # The bus exposes counters, not an event to wait on: poll them every millisecond.
        while any(c.counts.delivered + c.counts.failed < goal for c in bus.lanes):  # noqa: ASYNC110
            await anyio.sleep(0.001)


async def delivery_times(
    bus: Bus, target: int, start: float, timeout: float = 300.0
) -> dict[str, float]:
    """Seconds from ``start`` until each sink had delivered ``target`` events (polled every ms)."""
    done: dict[str, float] = {}
    with anyio.fail_after(timeout):
        while len(done) < len(bus.lanes):
            now = time.perf_counter()
            for channel in bus.lanes:
                if (
                    channel.name not in done
                    and channel.counts.delivered + channel.counts.failed >= target
                ):
                    done[channel.name] = now - start
            if len(done) < len(bus.lanes):
                await anyio.sleep(0.001)
    return done


async def produce(
    bus: Bus,
    count: int,
    first_step: int = 0,
    values: Mapping[str, float] = VALUES,
    block: int = 1_000,
) -> None:
    """Publish ``count`` steps as a fast trainer would: a yield to the loop every ``block``."""
    log = bus.log
    step = first_step
    end = first_step + count
    while step < end:
        stop = min(end, step + block)
        for s in range(step, stop):
            log(values, step=s, axis="step")
        step = stop
        await anyio.lowlevel.checkpoint()


# -- memory --


class RssSampler:
    """Samples this process's resident memory every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.process = psutil.Process()
        self.before = self.peak = self.after = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        gc.collect()
        self.before = self.peak = self.rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        gc.collect()
        self.after = self.rss()
        self.peak = max(self.peak, self.after)

    @property
    def growth_mib(self) -> float:
        """Peak resident memory above the starting point, in MiB."""
        return (self.peak - self.before) / MIB


# -- environment --


def isolate_wandb(root: Path) -> None:
    """Point wandb at ``root`` and offline mode; nothing may leave the machine.

    Proxies go to a closed loopback port, error reporting and system probes are off.
    """
    root.mkdir(parents=True, exist_ok=True)
    blackhole = "http://127.0.0.1:9"
    for key in list(os.environ):
        if key.startswith("WANDB_"):
            del os.environ[key]
    os.environ.update(
        {
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(root),
            "WANDB_CONFIG_DIR": str(root / "config"),
            "WANDB_CACHE_DIR": str(root / "cache"),
            "WANDB_DATA_DIR": str(root / "data"),
            "WANDB_ARTIFACT_DIR": str(root / "artifacts"),
            "WANDB_SILENT": "true",
            "WANDB_CONSOLE": "off",
            "WANDB_ERROR_REPORTING": "false",
            "WANDB_DISABLE_GIT": "true",
            "WANDB_DISABLE_CODE": "true",
            "WANDB__DISABLE_STATS": "true",
            "WANDB__DISABLE_META": "true",
            "WANDB__DISABLE_MACHINE_INFO": "true",
            "WANDB__SAVE_REQUIREMENTS": "false",
            "NETRC": str(root / "no-netrc"),
            "HTTP_PROXY": blackhole,
            "HTTPS_PROXY": blackhole,
            "http_proxy": blackhole,
            "https_proxy": blackhole,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 on /dev/null meanwhile: what a sidecar started now prints (its
    console) goes where the in-process console's lines go in the comparison."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def devnull_text() -> Iterator[Any]:
    """A text stream to /dev/null (the console sink's and structlog's target)."""
    with open(os.devnull, "w") as stream:
        yield stream
