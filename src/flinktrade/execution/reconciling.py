"""Reconciliation run by the executor's core: settle the store, read the broker, compare, block.

``reconcile`` first places the exits a crash left unplaced, then settles every order the store has
open by looking it up (at start-up an intent never sent is sent now), reads the broker's open
orders and positions, and compares them with the store through the pure
``reconcile.differences``. Differences may be fills in flight between the two reports, so it looks
again once after ``RECHECK_WAIT_S``; what still differs blocks new orders (fail closed) and alerts,
until a later reconciliation finds none (signals that arrive while all of it is transient wait for
that one: ``core.ExecutorCore``'s held signals). ``Reconciling`` is the base class of
``core.ExecutorCore``, which owns the parts it uses.
"""

from __future__ import annotations

from collections.abc import Callable

from flinktrade.errors import TransientError
from flinktrade.execution import reconcile as reconciliation
from flinktrade.execution.book import Book, ExecutorStats
from flinktrade.execution.brokers.base import Broker
from flinktrade.execution.guard import TradingGuard
from flinktrade.execution.lifecycle import OrderLifecycle, Resolution
from flinktrade.execution.settings import ExecutionSettings
from flinktrade.execution.store import OrderStore, Phase

RECHECK_WAIT_S = 0.3
"""Differences may be fills in flight between the two reports: look again after this long."""
TRANSIENT_RECONCILE_S = 5.0
"""With a transient difference (broker or order not readable), reconcile again within this long."""


class Reconciling:
    """The core's reconciliation: when it is due, and the comparison with its I/O."""

    config: ExecutionSettings
    broker: Broker
    store: OrderStore
    orders: OrderLifecycle
    guard: TradingGuard
    book: Book
    _stats: ExecutorStats
    monotonic: Callable[[], float]
    sleep: Callable[[float], None]
    _next_reconcile: float

    def place_pending_exits(self) -> None:
        """Exits of entries a crash left between their fill and their exits (``lifecycle``)."""
        if self.orders.place_pending_exits():
            self.store.commit()

    def reconcile_soon(self) -> None:
        self._next_reconcile = min(self._next_reconcile, self.monotonic() + 1.0)

    def reconcile(self, *, startup: bool = False) -> list[reconciliation.Difference]:
        """Compare broker and store; block new orders (and alert) while they differ."""
        self._stats.reconciliations += 1
        self.place_pending_exits()
        found = self.differences(startup=startup)
        if found:  # fills may have been in flight between the two reports: look again
            self.sleep(RECHECK_WAIT_S)
            self.orders.apply_updates()
            found = self.differences(startup=False)
        interval = self.config.reconcile_interval_s
        if reconciliation.any_transient(found):
            interval = min(interval, TRANSIENT_RECONCILE_S)
        self._next_reconcile = self.monotonic() + interval
        blocked = reconciliation.describe(found)
        self.guard.set_blocked(blocked, transient=reconciliation.only_transient(found))
        self._stats.blocked = blocked
        self.store.commit()
        return found

    def differences(self, *, startup: bool) -> list[reconciliation.Difference]:
        """Settle the store's open orders, read the broker, compare (pure)."""
        resolutions: list[tuple[str, Resolution]] = []
        for order in self.store.open_orders():
            # at start-up an intent never sent is sent now (the signal's offset is committed)
            allow = order.phase == Phase.INTENT or (startup and order.phase != Phase.ACKED)
            coid = order.client_order_id
            resolutions.append((coid, self.orders.resolve(coid, allow_resend=allow)))
        self.orders.apply_updates()
        try:
            view = reconciliation.BrokerView(self.broker.open_orders(), self.broker.positions())
        except TransientError as exc:
            return reconciliation.differences(
                resolutions, reconciliation.BrokerUnreachable(str(exc)), {}, {}
            )
        self.orders.apply_updates()
        for bo in view.open_orders:  # a known parent's legs are stored (adopted) first
            if bo.legs and self.store.exists(bo.client_order_id):
                self.orders.apply(bo, None)
        view = reconciliation.BrokerView(reconciliation.with_legs(view.open_orders), view.positions)
        statuses = {}
        for bo in view.open_orders:
            local = self.store.get(bo.client_order_id)
            statuses[bo.client_order_id] = None if local is None else local.status
        local_positions = self.store.positions()
        self.book.positions = dict(local_positions)
        return reconciliation.differences(resolutions, view, statuses, local_positions)
