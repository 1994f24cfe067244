"""Calling one sink for its lane: open, write with retries, hold behind the breaker, close.

The writer knows how a call went; the lane decides what that means for its
events (delivered, failed, behind) and its mode.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence

import anyio
import structlog
from tenacity import RetryError

from telemetry.errors import SinkBehindError, SinkUnavailableError
from telemetry.events import Event
from telemetry.progress import Progress
from telemetry.retry import Breaker, write_with_retries
from telemetry.sink import Delivery, Sink

logger = structlog.get_logger("telemetry")


class Outcome(enum.Enum):
    """How a call to the sink went."""

    DONE = "done"
    """It worked."""
    DOWN = "down"
    """The sink said it is down (``SinkUnavailableError``): its lane can fall behind."""
    FAILED = "failed"
    """Every attempt failed."""
    BEHIND = "behind"
    """The sink holds events only up to ``Writer.held``, before this batch (``SinkBehindError``)."""


class Writer:
    """One sink's calls, its breaker, its last error and its failures in a row."""

    __slots__ = (
        "_closing_attempted",
        "_delivery",
        "_down_is_final",
        "_open_timeout",
        "_progress",
        "_reported",
        "breaker",
        "error",
        "held",
        "opened",
        "sink",
        "streak",
    )

    def __init__(
        self,
        sink: Sink,
        delivery: Delivery,
        progress: Progress,
        *,
        down_is_final: bool,
        open_timeout: float,
    ) -> None:
        self.sink = sink
        self.breaker = Breaker()
        self.error: str | None = None
        self.opened = False
        self.held = 0
        self.streak = 0
        """Batches failed in a row."""
        self._delivery = delivery
        self._progress = progress
        self._down_is_final = down_is_final  # a lane that can fall behind retries from the log
        self._open_timeout = open_timeout
        self._reported: set[str] = set()
        self._closing_attempted = False

    async def open(self) -> Outcome:
        """Open the sink within the open timeout."""
        try:
            with anyio.fail_after(self._open_timeout):
                await self.sink.open()
        except (SinkUnavailableError, TimeoutError) as exc:
            reason = str(exc) or f"open took longer than {self._open_timeout} s"
            self.error = f"open failed: {reason}"
            return Outcome.DOWN
        except Exception as exc:
            self.error = f"open failed: {type(exc).__name__}: {exc}"
            return Outcome.FAILED
        self.opened = True
        return Outcome.DONE

    async def write(self, piece: Sequence[Event]) -> Outcome:
        """Write, retrying quick glitches (``delivery.max_retries``)."""
        try:
            await write_with_retries(
                lambda: self._attempt(piece),
                self._delivery.max_retries,
                down_is_final=self._down_is_final,
            )
        except SinkBehindError as exc:
            self.held = exc.held
            return Outcome.BEHIND
        except SinkUnavailableError:
            return Outcome.DOWN
        except RetryError:
            self.streak += 1
            return Outcome.FAILED
        self._worked(piece)
        return Outcome.DONE

    async def hold(self, piece: Sequence[Event]) -> bool:
        """Keep retrying a batch that must not be lost (the log's) behind the breaker.

        Everything behind it waits meanwhile (in the lane's queue, then the
        bounded intake, then the publisher). False after ``isolate_after`` tries,
        or at once when the bus closes.
        """
        while True:
            wait = self.breaker.trip()
            if self.breaker.failures == 1:
                logger.warning(
                    "sink_down",
                    sink=self.sink.name,
                    error=self.error,
                    note="later events wait in memory; the publisher waits once the intake is full",
                )
            if self.breaker.failures >= self._delivery.isolate_after or self._progress.pump_done:
                return False
            await self._progress.sleep_unless_ended(wait)
            if await self.try_once(piece):
                return True

    async def try_once(self, piece: Sequence[Event]) -> bool:
        """One attempt, opening the sink first if it never opened."""
        try:
            if not self.opened and await self.open() is not Outcome.DONE:
                return False
            await self._attempt(piece)
        except Exception:
            return False
        self._worked(piece)
        return True

    def went_down(self, reason: str, seq: int) -> None:
        """The sink is down; its lane left events from ``seq`` on in the log."""
        wait = self.breaker.trip()
        if self.breaker.failures == 1:
            logger.warning(
                "sink_down",
                sink=self.sink.name,
                error=reason,
                behind_from_seq=seq,
                note="training goes on; events wait in the durable log; retrying with backoff",
            )
        else:
            logger.debug("sink_still_down", sink=self.sink.name, retry_in=round(wait, 2))

    async def retry_due(self) -> bool:
        """Sleep until the breaker lets the next attempt through; False to give up.

        While the bus closes there is one more attempt at once, and then the rest
        is left in the durable log for ``replay``.
        """
        await self._progress.sleep_unless_ended(self.breaker.retry_at - time.monotonic())
        if self._progress.pump_done:
            if self._closing_attempted:
                return False
            self._closing_attempted = True
        return True

    async def close(self) -> None:
        """Close the sink within what is left of the bus's close deadline (or a second)."""
        close_by = self._progress.close_by
        # A sink that missed the deadline still gets a moment to flush what it has.
        remaining = max(0.05, close_by - time.monotonic()) if close_by else 1.0
        with anyio.CancelScope(shield=True), anyio.move_on_after(remaining):
            try:
                await self.sink.close(remaining)
            except Exception as exc:
                self.error = self.error or f"close failed: {type(exc).__name__}: {exc}"
                logger.warning("sink_close_failed", sink=self.sink.name, error=str(exc))

    async def _attempt(self, piece: Sequence[Event]) -> None:
        try:
            await self.sink.write(piece)
        except SinkBehindError:
            raise
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            if not (self._down_is_final and isinstance(exc, SinkUnavailableError)):
                self.report_once(type(exc).__name__, self.error)
            raise

    def _worked(self, piece: Sequence[Event]) -> None:
        self.streak = 0
        if self.breaker.open:
            self.breaker.reset()
            logger.info("sink_recovered", sink=self.sink.name, delivered_through_seq=piece[-1].seq)

    def report_once(self, kind: str, message: str) -> None:
        """Log one ``sink_error`` line per kind of error; later ones are only counted."""
        if kind in self._reported:
            return
        self._reported.add(kind)
        logger.warning(
            "sink_error",
            sink=self.sink.name,
            error=message,
            note="further errors of this kind counted",
        )
