"""Client-side pacing of every request to Alpaca: ``RequestBudget`` and the send guard.

Every request, orders and polling alike, takes a slot of one ``RequestBudget`` (default 200 in
any rolling minute, Alpaca's documented limit); orders go first, reads leave them a reserve. While
a request waits, the caller's guard (``SendGuard``: the kill switch) is asked again between looks;
a no, or a wait longer than allowed, is ``NotSent``. No I/O and no alpaca-py here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from enum import IntEnum

from flinktrade.errors import ConfigError
from flinktrade.execution.brokers.base import SendGuard


class Priority(IntEnum):
    """Who asks for a request slot: orders go before polling."""

    ORDER = 0
    READ = 1


class NotSent(Exception):
    """A request was not sent: the guard said no, or the wait for a slot would be too long."""


SLICE_S = 0.25
"""Longest sleep between two looks at the guard while waiting."""


def ask(guard: SendGuard | None) -> None:
    """Raise ``NotSent`` unless the guard lets the request go (a failing guard is a no)."""
    if guard is None:
        return
    try:
        reason = guard()
    except Exception as exc:  # the caller's code: whatever it raises, do not send
        raise NotSent(f"send guard failed ({type(exc).__name__})") from None
    if reason is not None:
        raise NotSent(reason)


class RequestBudget:
    """Client-side pacing: at most ``limit`` requests in any rolling ``window_s``.

    A request holds a slot from before it is sent until ``window_s`` after its answer came back,
    so the broker, which counts arrivals, never sees more than ``limit`` in a window. Orders go
    first: a read waits while an order waits, and leaves the last ``reserve`` slots (default a
    tenth) to orders. ``try_acquire`` is the pure decision (clock injected); ``acquire`` waits.
    """

    def __init__(
        self,
        limit: int = 200,
        window_s: float = 60.0,
        *,
        reserve: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ConfigError("the trading request budget needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self.reserve = limit // 10 if reserve is None else max(0, min(reserve, limit - 1))
        self._clock = clock
        self._done: deque[float] = deque()  # when each answer in the window came back
        self._in_flight = 0
        self._orders_waiting = 0
        self._cond = threading.Condition()

    def used(self) -> int:
        """Slots taken now: requests in flight plus answers within the window."""
        with self._cond:
            return self._used(self._clock())

    def _used(self, now: float) -> int:
        horizon = now - self.window_s
        while self._done and self._done[0] <= horizon:
            self._done.popleft()
        return len(self._done) + self._in_flight

    def try_acquire(self, priority: Priority) -> float:
        """Take a slot (returns 0.0) or say how long to wait before asking again."""
        with self._cond:
            return self._try(priority, self._clock())

    def _try(self, priority: Priority, now: float) -> float:
        used = self._used(now)
        cap = self.limit if priority is Priority.ORDER else self.limit - self.reserve
        yields = priority is Priority.READ and self._orders_waiting > 0
        if used < cap and not yields:
            self._in_flight += 1
            return 0.0
        if self._done and used >= cap:
            return max(self._done[0] + self.window_s - now, 0.001)
        return SLICE_S  # an answer or a waiting order's turn will free it: look again soon

    def acquire(
        self, priority: Priority, guard: SendGuard | None = None, max_wait_s: float = 60.0
    ) -> None:
        """Wait for a slot (asking the guard between looks); ``NotSent`` if it would take
        longer than ``max_wait_s`` or the guard says no."""
        start = self._clock()
        with self._cond:
            if priority is Priority.ORDER:
                self._orders_waiting += 1
        try:
            while True:
                with self._cond:
                    now = self._clock()
                    delay = self._try(priority, now)
                    if delay == 0.0:
                        return
                    if now + delay - start > max_wait_s:
                        raise NotSent(
                            f"request budget ({self.limit} per {self.window_s:g}s) spent; "
                            f"next slot in {delay:.0f}s"
                        )
                    self._cond.wait(min(delay, SLICE_S))
                ask(guard)
        finally:
            if priority is Priority.ORDER:
                with self._cond:
                    self._orders_waiting -= 1
                    self._cond.notify_all()

    def release(self, sent: bool) -> None:
        """Give the slot back: a sent request keeps counting for ``window_s`` from now."""
        with self._cond:
            self._in_flight -= 1
            if sent:
                self._done.append(self._clock())
            self._cond.notify_all()
