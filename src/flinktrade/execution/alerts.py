"""The executor's alerts: writing them to the outbox, and throttling of repeated ones.

Their kinds are the ``executor.*`` members of the kernel's ``events.AlertKind``, re-exported here
for the executor's parts. An alert is written to the order store's outbox (published to ``alerts``
with the state change it describes). Alerts given a ``throttle_key`` (a denial rule, a rejection)
are sent at most once per ``deny_alert_interval_s`` per kind, key and symbol, so a strategy stuck
on a limit does not flood the channel.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flinktrade.events import Alert, AlertKind, Severity
from flinktrade.execution.store import OrderStore

__all__ = ["AlertKind", "Alerter", "Throttle"]


class Throttle:
    """Whether an alert under a key may go now: at most once per ``interval_s`` per key."""

    def __init__(self, interval_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.monotonic = monotonic
        self._last: dict[tuple[str, str | None], float] = {}

    def allow(self, key: tuple[str, str | None]) -> bool:
        now = self.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        self._last[key] = now
        return True


class Alerter:
    """Writes alerts into the store's outbox; ``sent`` counts them (and makes their ids unique)."""

    def __init__(self, store: OrderStore, clock: Callable[[], int], throttle: Throttle) -> None:
        self.store = store
        self.clock = clock
        self.throttle = throttle
        self.sent = 0

    def __call__(
        self,
        kind: AlertKind,
        message: str,
        *,
        symbol: str | None = None,
        severity: Severity = Severity.WARNING,
        value: float | None = None,
        threshold: float | None = None,
        throttle_key: str | None = None,
    ) -> bool:
        """Queue one alert; False when throttled (nothing written)."""
        if throttle_key is not None and not self.throttle.allow((f"{kind}:{throttle_key}", symbol)):
            return False
        ts = self.clock()
        self.store.add_alert(
            Alert(
                ts=ts,
                id=Alert.make_id(kind, symbol, ts) + f"-{self.sent}",
                kind=kind,
                severity=severity,
                symbol=symbol,
                message=message,
                value=value,
                threshold=threshold,
            )
        )
        self.sent += 1
        return True
