"""The libraries called directly, as the trainers' users would call them instead of the bus.

Each class does one training step's logging per ``step(i)`` call, synchronously,
on the calling thread, exactly as a training loop would.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import structlog

from benchmarks.common import VALUES


class WandbDirect:
    """``run.log(values, step=i)`` on an offline wandb run, the sink's settings."""

    label = "wandb run.log (offline)"

    def __init__(self, folder: Path, values: Mapping[str, float] = VALUES) -> None:
        import wandb

        folder.mkdir(parents=True, exist_ok=True)
        self.values = dict(values)
        self.run: Any = wandb.init(
            mode="offline",
            project="rltelemetry-bench",
            dir=str(folder),
            reinit="create_new",
            settings=wandb.Settings(
                console="off",
                silent=True,
                x_disable_stats=True,
                x_save_requirements=False,
                disable_git=True,
                save_code=False,
            ),
        )
        self.next_step = 0

    def step(self, i: int) -> None:
        self.run.log(self.values, step=i)

    def steps(self, count: int) -> float:
        """Log ``count`` steps; returns the seconds it took."""
        log, values, first = self.run.log, self.values, self.next_step
        start = time.perf_counter()
        for i in range(first, first + count):
            log(values, step=i)
        elapsed = time.perf_counter() - start
        self.next_step = first + count
        return elapsed

    def finish(self) -> None:
        self.run.finish()


class TensorBoardDirect:
    """``SummaryWriter.add_scalar`` once per value of the step (what users write)."""

    label = "SummaryWriter.add_scalar x8"

    def __init__(self, folder: Path, values: Mapping[str, float] = VALUES) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder))
        self.values = dict(values)
        self.next_step = 0

    def steps(self, count: int) -> float:
        add, items, first = self.writer.add_scalar, list(self.values.items()), self.next_step
        start = time.perf_counter()
        for i in range(first, first + count):
            for key, value in items:
                add(key, value, i)
        elapsed = time.perf_counter() - start
        self.next_step = first + count
        return elapsed

    def close(self) -> None:
        self.writer.close()


class SB3Direct:
    """Stable-Baselines3's logger: ``record`` each value, then ``dump`` (json, csv, tensorboard)."""

    label = "SB3 logger record x8 + dump"

    def __init__(self, folder: Path, values: Mapping[str, float] = VALUES) -> None:
        from stable_baselines3.common.logger import configure

        self.logger = configure(str(folder), ["json", "csv", "tensorboard"])
        self.values = dict(values)
        self.next_step = 0

    def steps(self, count: int) -> float:
        logger, items, first = self.logger, list(self.values.items()), self.next_step
        record, dump = logger.record, logger.dump
        start = time.perf_counter()
        for i in range(first, first + count):
            for key, value in items:
                record(key, value)
            dump(i)
        elapsed = time.perf_counter() - start
        self.next_step = first + count
        return elapsed

    def close(self) -> None:
        self.logger.close()


class JsonlDirect:
    """JSON Lines by hand: ``orjson.dumps`` per step into a buffered file, fsync every 0.2 s."""

    label = "orjson + buffered write, fsync 0.2 s"

    def __init__(self, path: Path, values: Mapping[str, float] = VALUES) -> None:
        self.path = path
        self.values = dict(values)
        self.next_step = 0

    def steps(self, count: int, fsync_interval: float = 0.2) -> float:
        """Append ``count`` lines, durable at the end; returns the seconds it took."""
        dumps, values, first = orjson.dumps, self.values, self.next_step
        clock = time.monotonic
        start = time.perf_counter()
        with self.path.open("ab") as handle:
            write = handle.write
            last_sync = clock()
            for i in range(first, first + count):
                line = {"type": "metrics", "step": i, "time": time.time(), "values": values}
                write(dumps(line) + b"\n")
                if clock() - last_sync >= fsync_interval:
                    handle.flush()
                    os.fsync(handle.fileno())
                    last_sync = clock()
            handle.flush()
            os.fsync(handle.fileno())
        elapsed = time.perf_counter() - start
        self.next_step = first + count
        return elapsed


class ConsoleDirect:
    """One structlog JSON line per step to a text stream (the console sink's library)."""

    label = "structlog JSON line per step"

    def __init__(self, stream: Any, values: Mapping[str, float] = VALUES) -> None:
        self.logger = structlog.wrap_logger(
            structlog.PrintLogger(stream),
            processors=[
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.processors.JSONRenderer(),
            ],
        )
        self.values = dict(values)
        self.next_step = 0

    def steps(self, count: int) -> float:
        info, values, first = self.logger.info, self.values, self.next_step
        start = time.perf_counter()
        for i in range(first, first + count):
            info("step", step=i, **values)
        elapsed = time.perf_counter() - start
        self.next_step = first + count
        return elapsed
