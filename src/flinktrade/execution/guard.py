"""The executor's side of the trading state: account checks, halting, watching the kill switch.

``TradingGuard`` holds what the risk checks need besides the store and the prices (equity, whether
the market is open, the reconciliation block) and every change of the ``TradingState``:

- ``refresh_account`` reads equity and the market clock; a daily loss or a drawdown over the
  limit sets the kill switch (``halt``), which survives restarts until an operator resumes;
- ``watch`` notices the kill switch set or cleared by another process (CLI, API) and alerts once;
- ``set_blocked`` records what the last reconciliation found and alerts when that changes;
  ``waiting`` is True while all it found is transient (an order's outcome or the broker could not
  be read), when the core holds new signals instead of denying them.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from flinktrade.errors import TransientError
from flinktrade.events import Severity
from flinktrade.execution import risk
from flinktrade.execution.alerts import Alerter, AlertKind
from flinktrade.execution.brokers.base import Broker
from flinktrade.execution.killswitch import TradingState
from flinktrade.execution.settings import RiskSettings
from flinktrade.execution.store import OrderStore

log = logging.getLogger(__name__)

PEAK_EQUITY = "peak_equity"


class TradingGuard:
    def __init__(
        self, store: OrderStore, broker: Broker, limits: RiskSettings, alert: Alerter
    ) -> None:
        self.store = store
        self.broker = broker
        self.limits = limits
        self.alert = alert
        self.equity: Decimal | None = None
        self.market_open: bool | None = None
        self.blocked: str | None = None
        """Why the last reconciliation blocks new orders; None when it found nothing."""
        self.transient = False
        """Whether all the last reconciliation found was transient (could not be read yet)."""
        self._halted_seen: str | None = None

    def start(self) -> None:
        self._halted_seen = self.store.halted()

    @property
    def waiting(self) -> bool:
        """Blocked by transient differences alone, with no kill switch seen: new signals wait for
        the next reconciliation (``core.ExecutorCore`` holds them) rather than being denied."""
        return self.blocked is not None and self.transient and self._halted_seen is None

    def state(self) -> TradingState:
        return TradingState.of(self.store.halted(), self.blocked)

    def refresh_account(self) -> None:
        try:
            account = self.broker.account()
            self.market_open = self.broker.market_open()
        except TransientError as exc:
            log.warning("executor: account refresh failed: %s", exc)
            return
        self.equity = account.equity
        peak_text = self.store.get_value(PEAK_EQUITY)
        peak = max(Decimal(peak_text) if peak_text else account.equity, account.equity)
        self.store.set_value(PEAK_EQUITY, str(peak))
        breach = risk.account_breach(account.equity, account.last_equity, peak, self.limits)
        if breach is not None and not self.store.halted():
            rule, reason, value, threshold = breach
            self.halt(f"{rule}: {reason}", value=value, threshold=threshold)
        if account.trading_blocked:
            log.warning("executor: the broker reports the account as blocked from trading")

    def halt(
        self, reason: str, *, value: float | None = None, threshold: float | None = None
    ) -> None:
        """Set the kill switch (if it is not set) and alert."""
        if self.store.halted():
            return
        self.store.halt(reason)
        self._halted_seen = reason
        log.error("executor: HALTED: %s", reason)
        self.alert(
            AlertKind.HALT,
            f"trading halted (kill switch set): {reason}. `flinktrade resume` lifts it.",
            severity=Severity.CRITICAL,
            value=value,
            threshold=threshold,
        )
        self.store.commit()

    def watch(self) -> None:
        """Alert once when the kill switch was set or cleared since last seen."""
        halted = self.store.halted()
        if halted == self._halted_seen:
            return
        self._halted_seen = halted
        if halted:
            message = f"kill switch set: {halted}; no new orders"
        else:
            message = "kill switch cleared; new orders allowed"
        log.warning("executor: %s", message)
        self.alert(
            AlertKind.KILL_SWITCH,
            message,
            severity=Severity.CRITICAL if halted else Severity.INFO,
        )
        self.store.commit()

    def set_blocked(self, blocked: str | None, *, transient: bool = False) -> None:
        """What the last reconciliation found (None: nothing; ``transient``: only what could not
        be read yet); alerts when it changes."""
        self.transient = blocked is not None and transient
        if blocked != self.blocked:
            if blocked:
                log.error("executor: reconciliation failed, new orders blocked: %s", blocked)
                self.alert(
                    AlertKind.RECONCILIATION_FAILED,
                    f"broker and order store differ; new orders blocked until they agree: "
                    f"{blocked}",
                    severity=Severity.CRITICAL,
                )
            else:
                log.info("executor: reconciliation ok; new orders allowed")
                self.alert(
                    AlertKind.RECONCILED,
                    "broker and order store agree again; new orders allowed",
                    severity=Severity.INFO,
                )
        self.blocked = blocked
