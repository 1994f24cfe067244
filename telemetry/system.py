"""System metrics of the run, sampled every few seconds as W&B (15 s) and MLflow (10 s) do.

``sample_system(bus, interval, log_dir)`` publishes, every ``interval`` seconds until
cancelled (or the bus closes), one ``Metrics`` event on the axis ``system`` whose step is the
sample's number (0, 1, 2...; the event's ``time`` says when):

- ``system/cpu_percent``: the machine's CPU use since the last sample (100: every core busy);
- ``system/process_cpu_percent``: this process's, per core as ``top`` (200: two cores busy);
- ``system/process_memory_mib``: this process's resident memory;
- ``system/memory_percent``: the machine's memory in use;
- ``system/threads``: this process's threads;
- ``system/disk_free_gib``: free space on the file system holding ``log_dir``;
- ``system/gpu/<i>/utilization_percent``, ``system/gpu/<i>/memory_used_mib``,
  ``system/gpu/<i>/memory_percent`` per GPU, through NVML (``nvidia-ml-py``) when it imports
  and finds a GPU; without it, or without a GPU, there are no GPU keys.

``interval`` 0 samples nothing. The first sample comes one ``interval`` after the start, so
its CPU figures cover a whole interval.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from pathlib import Path
from typing import Any

import anyio
import psutil

from telemetry.bus import Bus
from telemetry.errors import BusClosedError

__all__ = ["AXIS", "INTERVAL", "SystemSampler", "sample_system"]

AXIS = "system"
INTERVAL = 10.0
"""Seconds between samples by default (MLflow's)."""
_MIB = 2**20
_GIB = 2**30


class SystemSampler:
    """Reads the machine's and this process's resources; ``sample()`` gives the values."""

    def __init__(self, log_dir: str | Path | None = None) -> None:
        self.log_dir = Path(log_dir) if log_dir is not None else Path.cwd()
        self._process = psutil.Process(os.getpid())
        # The first cpu_percent calls start the measurement and return 0.0: prime them.
        psutil.cpu_percent(interval=None)
        self._process.cpu_percent(interval=None)
        self._nvml: Any = None
        self._gpus: list[Any] = []
        self._open_nvml()

    def _open_nvml(self) -> None:
        try:
            nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
            count = int(nvml.nvmlDeviceGetCount())
            self._gpus = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception:  # no nvidia-ml-py, no driver, no GPU: no GPU metrics
            self._gpus = []
            return
        self._nvml = nvml

    def sample(self) -> dict[str, float]:
        """The values now, keyed as published (see the module docstring)."""
        process = self._process
        with process.oneshot():
            values: dict[str, float] = {
                "system/cpu_percent": psutil.cpu_percent(interval=None),
                "system/process_cpu_percent": process.cpu_percent(interval=None),
                "system/process_memory_mib": process.memory_info().rss / _MIB,
                "system/threads": process.num_threads(),
            }
        values["system/memory_percent"] = psutil.virtual_memory().percent
        with contextlib.suppress(OSError):  # the log's folder is gone: no disk figure
            values["system/disk_free_gib"] = psutil.disk_usage(str(self.log_dir)).free / _GIB
        values.update(self._gpu_values())
        return values

    def _gpu_values(self) -> dict[str, float]:
        nvml, values = self._nvml, {}
        for i, handle in enumerate(self._gpus):
            try:
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception:  # a GPU that fell off the bus: skip it this time
                continue
            values[f"system/gpu/{i}/utilization_percent"] = float(rates.gpu)
            values[f"system/gpu/{i}/memory_used_mib"] = memory.used / _MIB
            values[f"system/gpu/{i}/memory_percent"] = 100.0 * memory.used / max(memory.total, 1)
        return values

    def close(self) -> None:
        """Shut NVML down if it was opened."""
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None


async def sample_system(
    bus: Bus, interval: float = INTERVAL, log_dir: str | Path | None = None
) -> None:
    """Publish system metrics on ``bus`` every ``interval`` seconds until cancelled.

    Returns at once for ``interval`` 0, and when the bus closes. Start it in the task
    group that runs the trainer, and cancel it when training ends.
    """
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
        raise ValueError(f"interval must be a number of seconds >= 0, got {interval!r}")
    if interval == 0:
        return
    sampler = await anyio.to_thread.run_sync(SystemSampler, log_dir)
    try:
        step = 0
        while True:
            await anyio.sleep(interval)
            values = await anyio.to_thread.run_sync(sampler.sample)
            try:
                await bus.alog(values, step=step, axis=AXIS)
            except BusClosedError:
                return
            step += 1
    finally:
        sampler.close()
