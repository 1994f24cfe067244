"""The ``collect`` config: its own keys and a section per registered sink."""

from __future__ import annotations

from dataclasses import dataclass, field

from sinks.registry import LOG_SINK
from sinks.settings import validate_sinks, with_sections
from telemetry.checks import TIMEOUT, Interval, check_numbers
from telemetry.errors import ConfigError

_NOT_SINKS = (LOG_SINK, "redis")


@dataclass
class CollectSettings:
    """What ``collect`` reads besides the sink sections."""

    sinks: list[str] = field(default_factory=lambda: ["wandb"])
    """Sinks each central log is delivered to, by name; [] for the central logs only."""
    consumer: str | None = None
    """This collector's name in the consumer group; default the host name. A restarted
    collector with the same name reads the entries it had been handed first."""
    claim_idle: float = 10.0
    """Seconds an entry stays pending with another (dead) collector before this one takes it."""
    finish_wait: float = 10.0
    """Seconds rank 0's run_finished waits for the other ranks' ends before it is written."""
    close_timeout: float = 30.0
    """Seconds the sinks have to catch up and close once the collector is told to stop."""

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first key whose value is not allowed."""
        for name in _NOT_SINKS:
            if name in self.sinks:
                raise ConfigError(
                    f"sinks: collect writes the central {LOG_SINK} logs itself and reads "
                    f"redis, so sinks cannot list {name}"
                )
        limits = {
            "claim_idle": Interval(0.1, 3600.0),
            "finish_wait": Interval(0.0, 3600.0),
            "close_timeout": TIMEOUT,
        }
        check_numbers("", self, limits)
        if self.sinks:
            validate_sinks(self, self.sinks)


def collect_config() -> type[CollectSettings]:
    """The ``collect`` config schema: its settings and each registered sink's section."""
    return with_sections("CollectConfig", CollectSettings)
