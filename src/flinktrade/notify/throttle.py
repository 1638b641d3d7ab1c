"""Pacing of one channel: at most one message per ``interval_s``, bursts folded into one batch.

Pure and clock-free: the caller passes ``now`` (monotonic seconds). Items wait in arrival order;
when the channel's next slot comes, ``take`` hands over everything pending, and the caller posts a
single item as itself and several as one summary. Nothing is ever dropped here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Throttle(Generic[T]):
    """The pending items of one channel and the earliest time the next message may go."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._pending: deque[T] = deque()
        self._not_before = float("-inf")

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, item: T) -> None:
        self._pending.append(item)

    def wait_s(self, now: float) -> float | None:
        """Seconds until ``take`` may be called: 0 when it may now, None when nothing is pending."""
        if not self._pending:
            return None
        return max(0.0, self._not_before - now)

    def take(self, now: float) -> list[T]:
        """Everything pending, oldest first (empty if the slot has not come yet)."""
        if self.wait_s(now) != 0.0:
            return []
        items = list(self._pending)
        self._pending.clear()
        return items

    def sent(self, now: float) -> None:
        """A message was accepted at ``now``: the next may go one interval later."""
        self._not_before = max(self._not_before, now + self.interval_s)

    def retry(self, items: Sequence[T], at: float) -> None:
        """A batch failed: put it back in front, and try no earlier than ``at``."""
        self._pending.extendleft(reversed(items))
        self._not_before = max(self._not_before, at)

    def drain(self) -> list[T]:
        """Everything pending, regardless of pacing (the destination is gone)."""
        items = list(self._pending)
        self._pending.clear()
        return items
