"""Alert rules: when each kind fires, rate limiting, globs, aggregates, the stop request, config."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

import telemetry.alerts
from sinks.jsonl import JsonlSink
from telemetry.aggregate import AggregateSpec
from telemetry.alerts import AlertRule, AlertSpec, AlertsSection, until_stop_requested
from telemetry.bus import Bus, RunInfo
from telemetry.config import load_config
from telemetry.errors import ConfigError
from telemetry.events import Alert, Evaluation, Event, Health, Metrics, RunFinished
from telemetry.reader import LogReader

nan, inf = math.nan, math.inf


def _read(tmp_path: Path) -> list[Event]:
    return list(LogReader(tmp_path / "events.jsonl"))


def _alerts(events: Sequence[Event]) -> list[Alert]:
    return [e for e in events if isinstance(e, Alert)]


def _last_health(events: Sequence[Event]) -> dict[str, Any]:
    return dict([e for e in events if isinstance(e, Health)][-1].values)


async def _run(
    tmp_path: Path,
    rules: Sequence[AlertRule],
    steps: Sequence[Mapping[str, float]],
    *,
    aggregate: AggregateSpec | None = None,
) -> list[Event]:
    """Publish one values dict per step (0, 1, ...) of axis episode; the log read back.

    The bus is drained before it closes, so that the health it publishes at close
    counts every value's alerts.
    """
    log = JsonlSink(tmp_path / "events.jsonl", "r", None)
    spec = AlertSpec(rules=tuple(rules))
    with anyio.fail_after(10):
        async with Bus("r", [log], alerts=spec, aggregate=aggregate, health_interval=None) as bus:
            for step, values in enumerate(steps):
                bus.log(values, step=step, axis="episode")
            assert await bus.drain()
    return _read(tmp_path)


def _series(key: str, values: Sequence[float]) -> list[dict[str, float]]:
    return [{key: v} for v in values]


# -- when each kind fires --


async def test_nan_fires_when_a_value_becomes_nan_or_infinite(tmp_path: Path) -> None:
    """A nan rule fires at the first non-finite value after a finite one, not while it lasts."""
    values = [1.0, nan, nan, 2.0, inf, -inf, 3.0]
    rule = AlertRule(key="losses/value", when="nan", wait=0, level="ERROR")
    alerts = _alerts(await _run(tmp_path, [rule], _series("losses/value", values)))
    assert [a.step for a in alerts] == [1, 4]
    first = alerts[0]
    assert (first.title, first.level, first.key, first.axis) == (
        "not finite: losses/value",
        "ERROR",
        "losses/value",
        "episode",
    )
    assert first.text == "losses/value is NaN at episode 1"
    assert alerts[1].text == "losses/value is Infinity at episode 4"


async def test_above_and_below_fire_when_the_value_crosses_the_threshold(tmp_path: Path) -> None:
    """above fires on crossing over the threshold, below on crossing under; equal fires neither."""
    values = [1, 5, 12, 15, 9, 11, 10, 0.5]
    rules = [
        AlertRule(key="r", when="above", threshold=10, wait=0),
        AlertRule(key="r", when="below", threshold=2, wait=0, name="too low"),
    ]
    alerts = _alerts(await _run(tmp_path, rules, _series("r", values)))
    above = [a.step for a in alerts if a.title == "above 10: r"]
    below = [a.step for a in alerts if a.title == "too low: r"]
    assert above == [2, 5]
    assert below == [0, 7]
    assert alerts[1].text == "r is 12 at episode 2, above 10"


async def test_drop_fires_on_a_fall_by_share_from_the_windows_highest(tmp_path: Path) -> None:
    """drop compares each value with the highest of the key's previous `window` values."""
    # Reference (max of the 3 before) and fall per index from 3 on:
    # 3: 12, 3 < 3.6 | 4: 12, 4 >= 3.6 fires | 5: 11, 6 (holds) | 6: 9, 4 (holds)
    # 7: 8, 2 < 2.4 (ends) | 8: 6, 2 >= 1.8 fires | 9: 6, 2.5 (holds)
    values = [10, 12, 11, 9, 8, 5, 5, 6, 4, 3.5]
    rule = AlertRule(key="episode/total_reward", when="drop", share=0.3, window=3, wait=0)
    alerts = _alerts(await _run(tmp_path, [rule], _series("episode/total_reward", values)))
    assert [a.step for a in alerts] == [4, 8]
    assert alerts[0].title == "drop of 30%: episode/total_reward"
    assert alerts[0].text == (
        "episode/total_reward is 8 at episode 4, 33.3% below 12, the highest of its previous "
        "3 values (a drop of 30% fires)"
    )


async def test_drop_skips_non_finite_values_and_waits_for_a_full_window(tmp_path: Path) -> None:
    """NaN is neither compared nor kept in the window, and nothing fires before `window` values."""
    values = [1, nan, 10, nan, 10, 5, 4]  # finite: 1, 10, 10, 5 (fall 5 of 10), 4 (holds)
    rule = AlertRule(key="r", when="drop", share=0.5, window=3, wait=0)
    alerts = _alerts(await _run(tmp_path, [rule], _series("r", values)))
    assert [a.step for a in alerts] == [5]


# -- rate limiting, globs, aggregates --


async def test_a_second_firing_within_wait_is_suppressed_and_counted(tmp_path: Path) -> None:
    """Within `wait` of an alert the same rule and key fire no other, counted in health."""
    values = [11, 5, 12, 3, 13]
    rule = AlertRule(key="r", when="above", threshold=10, wait=60)
    events = await _run(tmp_path, [rule], _series("r", values))
    assert [a.step for a in _alerts(events)] == [0]
    health = _last_health(events)
    assert health["telemetry/alerts_fired"] == 1
    assert health["telemetry/alerts_suppressed"] == 2


async def test_a_suppressed_condition_that_holds_alerts_once_wait_has_passed(
    tmp_path: Path,
) -> None:
    """A condition that began within `wait` and still holds after it is alerted then."""
    log = JsonlSink(tmp_path / "events.jsonl", "r", None)
    spec = AlertSpec(rules=(AlertRule(key="r", when="above", threshold=10, wait=0.5),))
    with anyio.fail_after(10):
        async with Bus("r", [log], alerts=spec, health_interval=None) as bus:
            for step, value in enumerate([11, 5, 12]):  # 11 alerts, 12 is suppressed
                bus.log({"r": value}, step=step, axis="episode")
            assert await bus.drain()
            await anyio.sleep(0.6)
            bus.log({"r": 12}, step=3, axis="episode")  # still above: alerted now
            bus.log({"r": 13}, step=4, axis="episode")  # still above, alerted already
            assert await bus.drain()
    events = _read(tmp_path)
    assert [a.step for a in _alerts(events)] == [0, 3]
    assert _last_health(events)["telemetry/alerts_suppressed"] == 1


async def test_a_glob_watches_every_matching_key_each_on_its_own(tmp_path: Path) -> None:
    """``losses/*`` fires per key; each key has its own rate limit; other keys are not watched."""
    steps = [
        {"losses/a": nan, "losses/b": nan, "other/c": nan},
        {"losses/a": nan, "losses/b": 1.0},
        {"losses/b": nan},  # within wait of losses/b's alert: suppressed
    ]
    rule = AlertRule(key="losses/*", when="nan", wait=60)
    events = await _run(tmp_path, [rule], steps)
    assert [(a.step, a.key, a.title) for a in _alerts(events)] == [
        (0, "losses/a", "not finite: losses/a"),
        (0, "losses/b", "not finite: losses/b"),
    ]
    assert _last_health(events)["telemetry/alerts_suppressed"] == 1


async def test_rules_watch_aggregates_only_when_asked(tmp_path: Path) -> None:
    """``episode/*`` matches ``episode/r/max`` but only a rule with aggregates=True watches it."""
    rules = [
        AlertRule(key="episode/*", when="above", threshold=5, wait=0),
        AlertRule(key="episode/r/max", when="above", threshold=5, wait=0, aggregates=True),
    ]
    aggregate = AggregateSpec(every=2, axis="episode")
    events = await _run(tmp_path, rules, _series("episode/r", [1, 10, 1, 1]), aggregate=aggregate)
    assert [(a.step, a.key, a.title) for a in _alerts(events)] == [
        (1, "episode/r", "above 5: episode/r"),
        (1, "episode/r/max", "above 5: episode/r/max"),
    ]


async def test_evaluation_and_emitted_metrics_are_watched_like_logged_ones(tmp_path: Path) -> None:
    """Values of ``evaluation`` events and of ``Metrics`` emitted whole are watched too."""
    log = JsonlSink(tmp_path / "events.jsonl", "r", None)
    spec = AlertSpec(rules=(AlertRule(key="eval/*", when="below", threshold=0, wait=0),))
    with anyio.fail_after(10):
        async with Bus("r", [log], alerts=spec, health_interval=None) as bus:
            bus.emit(Evaluation, step=3, axis="episode", name="val", values={"eval/mae": -1.0})
            bus.emit(Metrics, step=4, axis="update", values={"eval/corr": -0.5})
    assert [(a.step, a.axis, a.key) for a in _alerts(_read(tmp_path))] == [
        (3, "episode", "eval/mae"),
        (4, "update", "eval/corr"),
    ]


async def test_key_patterns_are_matched_once_per_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matching a key against the rules happens the first time the key is seen, then cached."""
    calls: list[tuple[str, str]] = []
    real = telemetry.alerts.fnmatchcase

    def counting(name: str, pattern: str) -> bool:
        calls.append((name, pattern))
        return real(name, pattern)

    monkeypatch.setattr(telemetry.alerts, "fnmatchcase", counting)
    rules = [AlertRule(key="losses/*", when="nan"), AlertRule(key="r", when="above", threshold=1)]
    steps = [{"losses/a": 0.1, "r": 0.5, "x": 1.0} for _ in range(1_000)]
    await _run(tmp_path, rules, steps)
    assert len(calls) == 3 * 2


async def test_no_rules_means_no_alerts_and_no_alert_counters(tmp_path: Path) -> None:
    """A bus with an empty AlertSpec publishes what a bus without alerts does."""
    events = await _run(tmp_path, [], _series("r", [nan, 1e9, -1e9]))
    assert _alerts(events) == []
    assert not any(key.startswith("telemetry/alerts") for key in _last_health(events))


# -- the stop request --


async def test_stop_action_requests_the_stop_and_the_run_ends_stopped(tmp_path: Path) -> None:
    """A firing stop rule cancels work under until_stop_requested; the log ends ``stopped``."""
    log = JsonlSink(tmp_path / "events.jsonl", "r", None)
    rule = AlertRule(key="episode/total_reward", when="below", threshold=0, action="stop")
    spec = AlertSpec(rules=(rule,))
    with anyio.fail_after(20):
        async with Bus("r", [log], run=RunInfo(name="t"), alerts=spec) as bus:

            async def train() -> str:
                for step in range(1_000):
                    reward = 1.0 if step < 5 else -1.0
                    bus.log({"episode/total_reward": reward}, step=step, axis="episode")
                    await anyio.sleep(0.005)
                return "finished"

            assert not bus.stop_request.requested
            result = await until_stop_requested(bus, train)
            assert result is None
            assert bus.stop_request.requested
            if bus.stop_request.requested:
                await bus.aclose(status="stopped")
    events = _read(tmp_path)
    assert isinstance(events[-1], RunFinished)
    assert events[-1].status == "stopped"
    (alert,) = _alerts(events)
    assert alert.step == 5
    assert alert.text.endswith("; stopping the run")
    assert (
        bus.stop_request.reason
        == f"{alert.title}: episode/total_reward is -1 at episode 5, below 0"
    )
    last_step = max(e.step for e in events if isinstance(e, Metrics))
    assert last_step < 999  # the work was cancelled, not run to its end


async def test_until_stop_requested_returns_the_works_result_without_a_stop() -> None:
    """Work that ends first returns its result, and the stop stays unrequested."""

    async def work() -> int:
        return 42

    with anyio.fail_after(10):
        async with Bus("r", [], health_interval=None) as bus:
            assert await until_stop_requested(bus, work) == 42
    assert not bus.stop_request.requested


async def test_a_thread_publisher_polls_the_stop_flag(tmp_path: Path) -> None:
    """A trainer thread sees ``stop_request.requested`` turn true and ends its loop."""
    log = JsonlSink(tmp_path / "events.jsonl", "r", None)
    spec = AlertSpec(rules=(AlertRule(key="r", when="nan", action="stop"),))
    stopped_at: list[int] = []
    done = threading.Event()

    def train(bus: Bus) -> None:
        for step in range(100_000):
            if bus.stop_request.requested:
                stopped_at.append(step)
                break
            bus.log({"r": nan if step >= 10 else 1.0}, step=step)
            done.wait(0.001)

    with anyio.fail_after(20):
        async with Bus("r", [log], alerts=spec, health_interval=None) as bus:
            await anyio.to_thread.run_sync(train, bus)
    assert stopped_at
    assert 10 < stopped_at[0] < 100_000


# -- config --


@dataclass
class _Schema:
    alerts: AlertsSection = field(default_factory=AlertsSection)


def test_rules_load_from_yaml_through_omegaconf(tmp_path: Path) -> None:
    """The README's YAML example loads into AlertRule dataclasses, overrides replace the list."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "alerts:\n"
        "  rules:\n"
        "    - {key: 'losses/*', when: nan, level: ERROR}\n"
        "    - name: reward collapse\n"
        "      key: episode/total_reward\n"
        "      when: drop\n"
        "      share: 0.3\n"
        "      window: 20\n"
        "      action: stop\n"
    )
    spec = load_config(_Schema, path, []).alerts.spec()
    assert spec.rules == (
        AlertRule(key="losses/*", when="nan", level="ERROR"),
        AlertRule(
            name="reward collapse",
            key="episode/total_reward",
            when="drop",
            share=0.3,
            window=20,
            action="stop",
        ),
    )
    override = "alerts.rules=[{key: r, when: above, threshold: 5, wait: 0}]"
    (rule,) = load_config(_Schema, path, [override]).alerts.spec().rules
    assert (rule.key, rule.when, rule.threshold, rule.wait) == ("r", "above", 5.0, 0.0)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{key: r, when: under}", "when must be one of nan, above, below, drop, got 'under'"),
        ("{key: r, when: above}", "threshold must be a finite number, got None"),
        ("{key: r, when: below, threshold: .inf}", "threshold must be a finite number, got inf"),
        ("{key: r, when: nan, threshold: 3}", "threshold is for when=above or below, got 3.0"),
        ("{key: r, when: drop}", "share must be in (0, 1], got None"),
        ("{key: r, when: drop, share: 1.5}", "share must be in (0, 1], got 1.5"),
        (
            "{key: r, when: drop, share: 0.3, window: 0}",
            "window must be at least 1 (values), got 0",
        ),
        ("{key: r, when: above, threshold: 1, share: 0.3}", "share is for when=drop, got 0.3"),
        ("{key: r, level: warning}", "level must be one of INFO, WARN, ERROR, got 'warning'"),
        ("{key: r, action: halt}", "action must be one of none, stop, got 'halt'"),
        ("{key: r, wait: -1}", "wait must be 0 or more (seconds), got -1.0"),
        ("{when: nan}", "key must be a metric key or glob, got ''"),
    ],
)
def test_config_errors_name_the_rule_and_key(rule: str, message: str) -> None:
    """Each value a rule does not allow raises ConfigError naming alerts.rules[i].<key>."""
    override = f"alerts.rules=[{{key: a, when: nan}}, {{key: b, when: nan}}, {rule}]"
    section = load_config(_Schema, None, [override]).alerts
    with pytest.raises(ConfigError) as caught:
        section.spec()
    assert str(caught.value).startswith(f"alerts.rules[2].{message}")
