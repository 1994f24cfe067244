"""What the pump and the durable log's lane tell every lane: one small object, shared."""

from __future__ import annotations

import sys

import anyio

NO_LOG = sys.maxsize
"""``Progress.logged`` of a bus without a durable log: nothing to wait for."""


class Progress:
    """How far the pump and the log have got; lives on the event loop, read by the lanes.

    ``logged`` is the highest ``seq`` the durable log has settled (written, or
    counted failed while it is isolated). No other lane delivers an event past
    it: the write-ahead rule that keeps every sink behind the log.
    """

    __slots__ = (
        "_ended",
        "_moved",
        "close_by",
        "dispatched",
        "flush_to",
        "log_done",
        "logged",
        "pump_done",
    )

    def __init__(self, first_seq: int, *, has_log: bool) -> None:
        self.logged = first_seq if has_log else NO_LOG
        """The log holds every event up to this ``seq`` (or counted it failed)."""
        self.log_done = not has_log
        """The log's lane has ended: ``logged`` will not move again."""
        self.dispatched = first_seq
        """The last ``seq`` the pump has offered to every lane."""
        self.pump_done = False
        """The pump has ended: nothing more will be offered."""
        self.flush_to = 0
        """Someone waits for the log to hold this ``seq``: its lane writes without waiting."""
        self.close_by = 0.0
        """When the bus's close deadline passes (``time.monotonic``); 0 while it is open."""
        self._moved: anyio.Event | None = None
        self._ended: anyio.Event | None = None

    def start(self) -> None:
        """Make the loop's events; call on the event loop before any lane runs."""
        self._moved = anyio.Event()
        self._ended = anyio.Event()
        if self.pump_done:
            self._ended.set()

    # -- the log's lane --

    def log_settled(self, seq: int) -> None:
        """The log holds (or gave up on) every event through ``seq``."""
        if seq > self.logged:
            self.logged = seq
            self._wake_waiters()

    def log_ended(self) -> None:
        """The log's lane will settle nothing more."""
        self.log_done = True
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        moved = self._moved
        if moved is not None:
            self._moved = anyio.Event()
            moved.set()

    async def wait_logged(self, seq: int) -> bool:
        """Wait until the log holds ``seq``; False if it never will (its lane has ended)."""
        while self.logged < seq:
            if self.log_done or self._moved is None:
                return False
            await self._moved.wait()
        return True

    # -- the pump --

    def end_input(self) -> None:
        """The pump will offer nothing more."""
        self.pump_done = True
        if self._ended is not None:
            self._ended.set()

    async def sleep_unless_ended(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the input ends meanwhile (a close cuts waits short)."""
        with anyio.move_on_after(max(0.0, seconds)):
            if self._ended is not None:
                await self._ended.wait()
            else:
                await anyio.sleep_forever()
