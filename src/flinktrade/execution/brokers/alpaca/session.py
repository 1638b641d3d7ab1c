"""The HTTP session alpaca-py's ``TradingClient`` is given: a timeout on every request, the
broker's rate limit waited out, the ``RequestBudget`` and the caller's guard before each send.

alpaca-py sets no request timeout and retries 429/504 itself with a fixed 3 s wait, which for a
``POST /v2/orders`` means re-sending a request that may have succeeded; the broker turns its
retries off and hands it this session instead. ``X-Ratelimit-Remaining: 0`` (or a 429) on any
answer makes the next request wait for ``X-Ratelimit-Reset`` (bounded). Headers may be missing (a
proxy's error page): then nothing is learnt from that answer.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import requests

from flinktrade.execution.brokers.alpaca.budget import (
    SLICE_S,
    NotSent,
    Priority,
    RequestBudget,
    ask,
)
from flinktrade.execution.brokers.base import SendGuard

log = logging.getLogger(__name__)


class RateLimit:
    """What the broker's last answers said about its rate limit, shared by every request."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self.remaining: int | None = None
        self.reset_at: float | None = None  # epoch seconds
        self.lock = threading.Lock()
        self.waited_s = 0.0

    def observe(self, response: requests.Response) -> None:
        headers = response.headers
        with self.lock:
            remaining = _number(headers.get("X-Ratelimit-Remaining"))
            reset = _number(headers.get("X-Ratelimit-Reset"))
            if remaining is not None:
                self.remaining = int(remaining)
            if reset is not None:
                self.reset_at = reset
            if response.status_code == 429:
                self.remaining = 0
                retry_after = _number(headers.get("Retry-After"))
                if retry_after is not None:
                    self.reset_at = time.time() + retry_after
                elif self.reset_at is None or self.reset_at < time.time():
                    self.reset_at = time.time() + 1.0

    def wait(self, guard: SendGuard | None = None) -> None:
        """Before a request: if the broker said the budget is spent, wait until it resets
        (bounded, asking the guard between looks)."""
        with self.lock:
            if self.remaining is None or self.remaining > 0 or self.reset_at is None:
                return
            until = self.reset_at
            self.remaining = None  # one request probes after the wait
        delay = until - time.time()
        if delay <= 0:
            return
        if delay > self.max_wait_s:
            raise NotSent(f"Alpaca rate limit resets in {delay:.0f}s; not waiting")
        log.warning("Alpaca rate limit reached: waiting %.1fs", delay)
        self.waited_s += delay
        while (left := until - time.time()) > 0:
            time.sleep(min(left, SLICE_S))
            ask(guard)


def _number(text: str | None) -> float | None:
    """A header's non-negative finite number, or None (missing, garbled, negative)."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


class PacedSession(requests.Session):
    """A session whose every request has a timeout and goes through the rate limit, the budget
    and the caller's guard (per thread: ``context.priority``, ``context.guard``)."""

    def __init__(
        self, timeout_s: float, rate: RateLimit, budget: RequestBudget, max_wait_s: float
    ) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.rate = rate
        self.budget = budget
        self.max_wait_s = max_wait_s
        self.context = threading.local()

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout_s)
        priority: Priority = getattr(self.context, "priority", Priority.READ)
        guard: SendGuard | None = getattr(self.context, "guard", None)
        self.rate.wait(guard)
        self.budget.acquire(priority, guard, self.max_wait_s)
        sent = False
        try:
            ask(guard)
            sent = True
            response = super().request(method, url, *args, **kwargs)
        finally:
            self.budget.release(sent)
        self.rate.observe(response)
        return response
