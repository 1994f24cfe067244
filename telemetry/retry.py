"""Retrying a sink: quick retries of a failed write, and a circuit breaker for a down sink."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from telemetry.errors import SinkBehindError, SinkUnavailableError

BREAKER_WAIT = wait_exponential_jitter(multiplier=0.5, max=30.0, jitter=0.5)
"""Seconds before retrying a down sink: 0.5, 1, 2 ... 30, plus up to 0.5 of jitter."""
RETRY_WAIT = wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05)
"""Seconds between a failed write's retries: 0.05, 0.1, 0.2 ... 2, plus up to 0.05 of jitter."""


def _retry_state(attempt: int) -> RetryCallState:
    """What tenacity's wait strategies read: the number of the attempt that failed."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return state


class Breaker:
    """A circuit breaker: closed while the sink works, open with a growing wait after failures."""

    __slots__ = ("failures", "retry_at")

    def __init__(self) -> None:
        self.failures = 0
        self.retry_at = 0.0

    @property
    def open(self) -> bool:
        """The sink failed and has not worked since."""
        return self.failures > 0

    @property
    def due(self) -> bool:
        """The wait after the last failure is over: the next attempt may go."""
        return time.monotonic() >= self.retry_at

    def trip(self) -> float:
        """Record a failure; returns the wait before the next attempt."""
        self.failures += 1
        wait = float(BREAKER_WAIT(_retry_state(self.failures)))
        self.retry_at = time.monotonic() + wait
        return wait

    def reset(self) -> None:
        self.failures = 0
        self.retry_at = 0.0


async def write_with_retries(
    attempt: Callable[[], Awaitable[None]], retries: int, *, down_is_final: bool
) -> None:
    """Call ``attempt``, retrying quick glitches; ``RetryError`` when every attempt failed.

    The first attempt is a plain call: tenacity's machinery costs more than a
    small batch's write, and almost every write succeeds. With ``down_is_final``
    a ``SinkUnavailableError`` is raised at once instead of retried (the lane's
    breaker retries it from the log).
    """
    try:
        await attempt()
        return
    except SinkBehindError:
        raise
    except SinkUnavailableError:
        if down_is_final:
            raise
    except Exception:  # noted by the caller's attempt; retried below
        pass
    if retries == 0:
        raise RetryError(last_attempt=None)  # type: ignore[arg-type]
    retrying = AsyncRetrying(
        stop=stop_after_attempt(retries),
        # The plain first attempt was attempt 1: tenacity's first is attempt 2.
        wait=lambda state: RETRY_WAIT(_retry_state(state.attempt_number + 1)),
        retry=retry_if_not_exception_type(SinkUnavailableError)
        if down_is_final
        else retry_if_exception_type(Exception),
        sleep=anyio.sleep,
        reraise=False,
    )
    await anyio.sleep(RETRY_WAIT(_retry_state(1)))
    async for trial in retrying:
        with trial:
            await attempt()
