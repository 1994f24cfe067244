"""Alert rules on metric values, evaluated once in the pump so every sink sees the same alerts.

A rule watches the metric keys its ``key`` glob matches (``fnmatch``: ``*``
matches ``/`` too) in ``metrics`` and ``evaluation`` events, and in the bus's
own ``aggregate`` events only when it says ``aggregates: true``. Its condition,
per value:

- ``nan``: the value is NaN or infinite.
- ``above`` / ``below``: the value is greater / less than ``threshold``.
- ``drop``: the value has fallen by at least ``share`` from the reference,
  the highest of the key's previous ``window`` finite values: it is below it and
  ``reference - value >= share * |reference|``. The rule waits for ``window``
  earlier values; non-finite values are neither compared nor kept (``nan``
  watches those). For a key published once per step, as episode metrics are,
  the previous values are the previous ``window`` steps.

A rule fires when its condition turns true for a key: at the first value that
meets it, and again only after a value that does not. Each firing is an
``Alert`` event; a firing within ``wait`` seconds (of wall time) of the last
alert of the same rule and key is suppressed and counted
(``telemetry/alerts_suppressed`` in health), and alerted as soon as ``wait`` has
passed if the condition still holds then. A rule with ``action: stop`` also
requests the stop of the run (``Bus.stop_request``), even when its alert is
suppressed; the run's owner ends the run with status ``stopped``
(``until_stop_requested``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from anyio import CancelScope

from telemetry.checks import Interval
from telemetry.chunk import RawChunk
from telemetry.errors import ConfigError
from telemetry.events import Aggregate, Evaluation, Metrics

if TYPE_CHECKING:
    from telemetry.bus import Bus

__all__ = [
    "AlertRule",
    "AlertSpec",
    "Alerts",
    "AlertsSection",
    "StopRequest",
    "until_stop_requested",
]

T = TypeVar("T")
WHEN = ("nan", "above", "below", "drop")
LEVELS = ("INFO", "WARN", "ERROR")
ACTIONS = ("none", "stop")


@dataclass
class AlertRule:
    """One alert rule: which keys it watches, when it fires, how loud, how often, what then."""

    key: str = ""
    """Metric keys watched, an fnmatch glob (``losses/*``, ``episode/total_reward``)."""
    when: str = "nan"
    """``nan`` (NaN or infinite), ``above`` / ``below`` ``threshold``, or ``drop`` by ``share``."""
    name: str = ""
    """The title before ``: <key>``; empty: ``not finite``, ``above 10``, ``drop of 30%``."""
    threshold: float | None = None
    """The bound of ``above`` and ``below`` (a value equal to it does not fire)."""
    window: int = 10
    """For ``drop``: how many previous values of the key the reference is the highest of."""
    share: float | None = None
    """For ``drop``: the fall that fires, as a share of the reference, in (0, 1]: 0.3 is 30%."""
    level: str = "WARN"
    """``INFO``, ``WARN`` or ``ERROR``."""
    wait: float = 60.0
    """Seconds after an alert of this rule and key during which the next is suppressed."""
    action: str = "none"
    """``none``, or ``stop``: also request the stop of the run (status ``stopped``)."""
    aggregates: bool = False
    """Also watch the bus's aggregate values (``<metric>/<stat>`` keys)."""

    def check(self, where: str) -> None:
        """Raise ``ConfigError`` naming ``<where>.<field>`` for the first value not allowed."""
        for name, allowed in (
            ("when", WHEN),
            ("level", LEVELS),
            ("action", ACTIONS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(
                    f"{where}.{name} must be one of {', '.join(allowed)}, got {value!r}"
                )
        if not isinstance(self.key, str) or not self.key:
            raise ConfigError(f"{where}.key must be a metric key or glob, got {self.key!r}")
        bounded = self.when in ("above", "below")
        if bounded:
            _FINITE.check(f"{where}.threshold", self.threshold)
        elif self.threshold is not None:
            raise ConfigError(
                f"{where}.threshold is for when=above or below, got {self.threshold!r} "
                f"with when={self.when}"
            )
        if self.when == "drop":
            _SHARE.check(f"{where}.share", self.share)
            _WINDOW.check(f"{where}.window", self.window)
        elif self.share is not None:
            raise ConfigError(
                f"{where}.share is for when=drop, got {self.share!r} with when={self.when}"
            )
        _WAIT.check(f"{where}.wait", self.wait)

    @property
    def title(self) -> str:
        """``name``, or the condition in a few words."""
        if self.name:
            return self.name
        if self.when == "nan":
            return "not finite"
        if self.when == "drop":
            return f"drop of {_percent(self.share or 0.0)}"
        return f"{self.when} {_number(self.threshold or 0.0)}"


_FINITE = Interval(text="a finite number")
_SHARE = Interval(0.0, 1.0, low_open=True)
_WINDOW = Interval(1, integer=True, text="at least 1 (values)")
_WAIT = Interval(0.0, text="0 or more (seconds)")


@dataclass(frozen=True, slots=True)
class AlertSpec:
    """The rules the bus evaluates; each is checked here, named ``<section>.rules[<i>]``."""

    rules: tuple[AlertRule, ...] = ()
    section: str = "alerts"
    """The config section named in error messages."""

    def __post_init__(self) -> None:
        for index, rule in enumerate(self.rules):
            rule.check(f"{self.section}.rules[{index}]")


@dataclass
class AlertsSection:
    """Alert rules the bus evaluates on every metric value, for every sink."""

    rules: list[AlertRule] = field(default_factory=list)
    """The rules, each ``{key, when, ...}``; empty: no alerts, at no cost."""

    def spec(self) -> AlertSpec:
        """The bus's view of this section; raises ``ConfigError`` naming the bad key."""
        return AlertSpec(rules=tuple(self.rules))


class StopRequest:
    """A request to end the run early and cleanly, by an alert rule with ``action: stop``.

    Shared by the bus (``Bus.stop_request``), which sets it from the pump on the
    event loop, and the run's owner, which awaits ``wait()`` (or runs its work
    under ``until_stop_requested``) and then closes the bus with status
    ``stopped``. ``requested`` is a plain flag that trainer threads may poll.
    """

    __slots__ = ("_event", "reason")

    def __init__(self) -> None:
        self.reason: str | None = None
        """Why the stop was requested (the first alert's title and text); None: not requested."""
        self._event: anyio.Event | None = None

    @property
    def requested(self) -> bool:
        """The stop was requested; safe to read from any thread."""
        return self.reason is not None

    def request(self, reason: str) -> None:
        """Ask the run's owner to stop the run; call on the event loop. The first reason stays."""
        if self.reason is None:
            self.reason = reason
            if self._event is not None:
                self._event.set()

    async def wait(self) -> str:
        """Wait until the stop is requested; returns its reason."""
        if self.reason is None:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        assert self.reason is not None
        return self.reason


async def until_stop_requested(bus: Bus, work: Callable[[], Awaitable[T]]) -> T | None:
    """Run ``work``; if an alert rule requests the stop first, cancel ``work`` and return None.

    The run's owner then closes the bus with status ``stopped`` when
    ``bus.stop_request.requested``, as it does for ``STOP_SIGNAL``.
    """
    result: list[T] = []

    async def watch(scope: CancelScope) -> None:
        await bus.stop_request.wait()
        scope.cancel()

    async def run(scope: CancelScope) -> None:
        result.append(await work())
        scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(watch, group.cancel_scope)
        group.start_soon(run, group.cancel_scope)
    return result[0] if result else None


_NAN, _ABOVE, _BELOW, _DROP = range(4)
_KINDS = dict(zip(WHEN, range(4), strict=True))


class _Watch:
    """One rule on one key: its condition's last outcome, its last alert, a drop's window."""

    __slots__ = (
        "kind",
        "last_alert",
        "met",
        "pending",
        "recent",
        "reference",
        "rule",
        "seen",
        "share",
        "threshold",
        "window",
    )

    def __init__(self, rule: AlertRule) -> None:
        self.rule = rule
        self.kind = _KINDS[rule.when]
        self.threshold = rule.threshold if rule.threshold is not None else math.nan
        self.share = rule.share if rule.share is not None else math.nan
        self.window = rule.window
        self.met = False
        self.pending = False  # the condition turned true within `wait`; alert once it passes
        self.last_alert = -math.inf
        self.seen = 0  # finite values so far (drop)
        # (index, value) with values decreasing: the front is the window's highest (drop).
        self.recent: deque[tuple[int, float]] = deque()
        self.reference = math.nan  # the highest the last value was compared with (drop)

    def dropped(self, value: float) -> bool:
        """Whether ``value`` fell by ``share`` from the highest of the previous ``window``
        finite values; keeps ``value`` in the window."""
        if not math.isfinite(value):
            return False
        recent, index, window = self.recent, self.seen, self.window
        while recent and recent[0][0] < index - window:
            recent.popleft()
        met = False
        if index >= window:
            reference = self.reference = recent[0][1]
            met = value < reference and reference - value >= self.share * abs(reference)
        while recent and recent[-1][1] <= value:
            recent.pop()
        recent.append((index, value))
        self.seen = index + 1
        return met

    def comparison(self) -> str:
        """How the value that fired compares, for the alert's text."""
        kind, rule = self.kind, self.rule
        if kind == _NAN:
            return ""
        if kind != _DROP:
            return f", {rule.when} {_number(self.threshold)}"
        reference = self.reference
        fall = (reference - self.recent[-1][1]) / abs(reference) if reference else math.inf
        return (
            f", {_percent(fall)} below {_number(reference)}, the highest of its previous "
            f"{self.window} values (a drop of {_percent(self.share)} fires)"
        )


class Alerts:
    """Evaluates alert rules on the metric values of each chunk the pump dispatches.

    Keys are matched against the rules' globs once per new key, and the match
    (the ``_Watch`` of each matching rule) cached per key: a value no rule
    watches costs one dict lookup; the text of an alert is built only when it fires.
    """

    __slots__ = (
        "_aggregate_rules",
        "_aggregates",
        "_metrics",
        "_rules",
        "fired",
        "stop",
        "suppressed",
    )

    def __init__(self, spec: AlertSpec, stop: StopRequest) -> None:
        self._rules = spec.rules
        self._aggregate_rules = tuple(r for r in spec.rules if r.aggregates)
        self._metrics: dict[str, tuple[_Watch, ...]] = {}
        self._aggregates: dict[str, tuple[_Watch, ...]] = {}
        self.stop = stop
        self.fired = 0
        """Alerts published."""
        self.suppressed = 0
        """Firings suppressed by their rule's ``wait``."""

    def scan(self, chunk: RawChunk) -> list[dict[str, Any]]:
        """The fields of each ``Alert`` the chunk's metric values fire, in order."""
        out: list[dict[str, Any]] = []
        metrics, aggregates = self._metrics, self._aggregates
        isfinite = math.isfinite
        values: Mapping[str, float]
        for item, stamp in zip(chunk.items, chunk.stamps, strict=True):
            if stamp is not None:  # a step published with Bus.log: item is its values
                values, step, axis = item, stamp[2], stamp[3]  # type: ignore[assignment]
                cache, rules = metrics, self._rules
            elif isinstance(item, Metrics | Evaluation):
                values, step, axis = item.values, item.step, item.axis
                cache, rules = metrics, self._rules
            elif isinstance(item, Aggregate) and self._aggregate_rules:
                values, step, axis = item.values, item.step, item.axis
                cache, rules = aggregates, self._aggregate_rules
            else:
                continue
            for key, value in values.items():
                watches = cache.get(key)
                if watches is None:
                    watches = cache[key] = _match(key, rules)
                for watch in watches:
                    kind = watch.kind
                    if kind == _NAN:
                        hit = not isfinite(value)
                    elif kind == _ABOVE:
                        hit = value > watch.threshold
                    elif kind == _BELOW:
                        hit = value < watch.threshold
                    else:
                        hit = watch.dropped(value)
                    if not hit:
                        watch.met = watch.pending = False
                    elif not watch.met or watch.pending:
                        self._fire(watch, key, value, step, axis, out)
        return out

    def _fire(
        self, watch: _Watch, key: str, value: float, step: int, axis: str, out: list[dict[str, Any]]
    ) -> None:
        """The condition turned true (or held past a suppressed firing's ``wait``)."""
        rule = watch.rule
        title = f"{rule.title}: {key}"
        text = f"{key} is {_number(value)} at {axis} {step}{watch.comparison()}"
        if rule.action == "stop":
            self.stop.request(f"{title}: {text}")
            text += "; stopping the run"
        now = time.monotonic()
        if now - watch.last_alert >= rule.wait:
            watch.last_alert = now
            watch.pending = False
            self.fired += 1
            out.append(
                {
                    "title": title,
                    "text": text,
                    "level": rule.level,
                    "key": key,
                    "step": step,
                    "axis": axis,
                }
            )
        elif not watch.met:
            watch.pending = True
            self.suppressed += 1
        watch.met = True

    def health(self) -> dict[str, int | float]:
        """The alert counters, keyed as published in health."""
        return {
            "telemetry/alerts_fired": self.fired,
            "telemetry/alerts_suppressed": self.suppressed,
        }


def _match(key: str, rules: Iterable[AlertRule]) -> tuple[_Watch, ...]:
    """A new watch of each rule whose glob matches ``key``: once per key, then cached."""
    return tuple(_Watch(rule) for rule in rules if fnmatchcase(key, rule.key))


def _number(x: float) -> str:
    if math.isfinite(x):
        return f"{x:.6g}"
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _percent(share: float) -> str:
    return f"{share * 100:.3g}%"
