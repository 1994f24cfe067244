"""System metrics (telemetry.system) on a real bus, checked against /proc."""

from __future__ import annotations

import itertools
import os
import sys
import types
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from sinks.jsonl import JsonlSink
from sinks.memory import MemorySink
from telemetry.bus import Bus
from telemetry.events import Metrics
from telemetry.reader import LogReader
from telemetry.system import AXIS, SystemSampler, sample_system

KEYS = {
    "system/cpu_percent",
    "system/process_cpu_percent",
    "system/process_memory_mib",
    "system/memory_percent",
    "system/threads",
    "system/disk_free_gib",
}


def vm_rss_mib() -> float:
    """This process's resident memory as /proc/self/status says (VmRSS, kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def samples(run_dir: Path) -> list[Metrics]:
    """The system metrics of the run's log."""
    events = LogReader(run_dir / "events.jsonl")
    return [e for e in events if isinstance(e, Metrics) and e.axis == AXIS]


async def test_samples_arrive_at_their_interval_with_plausible_values(tmp_path: Path) -> None:
    """Samples come every interval, numbered from 0, and resident memory matches VmRSS."""
    memory = MemorySink()
    with anyio.fail_after(20):
        async with (
            Bus(
                "sys", [JsonlSink(tmp_path / "events.jsonl", "sys"), memory], health_interval=None
            ) as bus,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(sample_system, bus, 0.2, tmp_path)
            while not memory.values("system/process_memory_mib"):
                await anyio.sleep(0.005)
            rss = vm_rss_mib()
            (_, published) = memory.values("system/process_memory_mib")[0]
            while len(memory.values("system/threads")) < 5:
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert published == pytest.approx(rss, rel=0.1)
    got = samples(tmp_path)
    assert [e.step for e in got] == list(range(len(got)))
    gaps = [b.time - a.time for a, b in itertools.pairwise(got)]
    assert all(0.15 < gap < 0.6 for gap in gaps), gaps
    cores = os.cpu_count() or 1
    disk_free = psutil.disk_usage(str(tmp_path)).free / 2**30
    for event in got:
        values = event.values
        assert set(values) == KEYS  # no GPU here: no GPU keys
        assert 0 <= values["system/cpu_percent"] <= 100
        assert 0 <= values["system/process_cpu_percent"] <= 100 * cores
        assert 0 < values["system/memory_percent"] <= 100
        assert values["system/threads"] >= 1
        assert values["system/disk_free_gib"] == pytest.approx(disk_free, rel=0.05, abs=0.5)


async def test_interval_zero_publishes_nothing(tmp_path: Path) -> None:
    """``interval`` 0 returns at once and the log holds no system metrics."""
    with anyio.fail_after(20):
        async with Bus(
            "sys", [JsonlSink(tmp_path / "events.jsonl", "sys")], health_interval=None
        ) as bus:
            await sample_system(bus, 0, tmp_path)
            bus.log({"x/y": 1.0}, step=0)
    assert samples(tmp_path) == []


async def test_a_negative_interval_is_refused() -> None:
    """A negative interval is a ValueError naming it."""
    with pytest.raises(ValueError, match="interval"):
        await sample_system(Bus("sys", []), -1.0)


async def test_sampling_ends_when_the_bus_closes(tmp_path: Path) -> None:
    """A sampler still running when its bus closes returns instead of raising."""
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            async with Bus("sys", [MemorySink()], health_interval=None) as bus:
                tg.start_soon(sample_system, bus, 0.05, tmp_path)
                await anyio.sleep(0.1)
            await anyio.sleep(0.2)  # the next sample meets the closed bus and returns


def test_gpu_metrics_come_through_nvml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With an NVML module that finds a GPU, its utilisation and memory are sampled."""
    nvml: Any = types.ModuleType("pynvml")
    nvml.nvmlInit = lambda: None
    nvml.nvmlShutdown = lambda: None
    nvml.nvmlDeviceGetCount = lambda: 1
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"gpu{i}"
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=37, memory=5)
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=2 * 2**30, total=8 * 2**30)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    sampler = SystemSampler(tmp_path)
    values = sampler.sample()
    sampler.close()
    assert values["system/gpu/0/utilization_percent"] == 37.0
    assert values["system/gpu/0/memory_used_mib"] == 2048.0
    assert values["system/gpu/0/memory_percent"] == 25.0


def test_without_nvml_there_are_no_gpu_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """NVML that fails to initialise (no driver) leaves the GPU keys out."""
    nvml: Any = types.ModuleType("pynvml")

    def fail() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    nvml.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert set(SystemSampler(tmp_path).sample()) == KEYS
