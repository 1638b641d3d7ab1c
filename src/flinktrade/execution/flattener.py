"""The operator's ``flatten`` carried out: halt, close every position the broker reports, follow.

``flatten.plan`` (pure) says which market orders close what; ``Flattener`` runs it with the
executor's parts (``core.ExecutorCore`` builds it from its own): it sets the kill switch, follows
(or sends, if they never reached the broker) flatten orders of an earlier run still open in the
store, cancels every open exit the store has (broker legs and the executor's own: they would
hold the shares and could fire later against a position that is gone; ``cancelling``), plans
without them, puts each planned close into the store as an intent and places it like any other
order (so reconciliation stays consistent; it waits for any exit still being cancelled), then
follows the orders until they are final or the time is up.
The kill switch stays on; the broker and the store are closed at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flinktrade.execution import flatten as flattening
from flinktrade.execution.book import Book
from flinktrade.execution.brokers.base import Broker, ReconnectHandler
from flinktrade.execution.guard import TradingGuard
from flinktrade.execution.lifecycle import OrderLifecycle
from flinktrade.execution.source import PriceSource
from flinktrade.execution.store import OrderStore, StoredOrder

log = logging.getLogger(__name__)

FOLLOW_S = 0.2
"""How often the flatten orders are looked at while they are followed."""


@dataclass(kw_only=True)
class Flattener:
    """``plan`` and ``run`` over the executor's store, broker, order life cycle and prices."""

    store: OrderStore
    broker: Broker
    orders: OrderLifecycle
    guard: TradingGuard
    market: PriceSource
    book: Book
    prefix: str
    """The ``client_order_prefix`` of the flatten orders' ids."""
    publish: Callable[[], None]
    on_reconnect: ReconnectHandler
    clock: Callable[[], int]
    monotonic: Callable[[], float]
    sleep: Callable[[float], None]

    def plan(self) -> flattening.FlattenPlan:
        """What ``run`` would send now (nothing is sent or stored): the open exits the store has
        are not counted as closing, as ``run`` cancels them first."""
        exits = {o.client_order_id for o in self.store.open_orders() if o.parent is not None}
        open_orders = [o for o in self.broker.open_orders() if o.client_order_id not in exits]
        return flattening.plan(
            self.broker.positions(),
            open_orders,
            prefix=self.prefix,
            day=flattening.utc_day(self.clock()),
            taken=self.store.exists,
        )

    def run(self, timeout_s: float = 60.0) -> list[StoredOrder]:
        """Set the kill switch, then close every position the broker reports with market orders
        that go through the store like any other, and follow them until final or ``timeout_s``.
        Returns the flatten orders as the store has them; the store is closed.

        Idempotent: flatten orders of an earlier run still open in the store are followed (or
        sent, if they never reached the broker) before planning, and the plan counts orders open
        at the broker and uses ids per symbol and UTC day, so a second run never over-sells."""
        self.guard.halt("flatten requested by the operator")
        self.broker.start_updates(self.orders.updates.put, self.on_reconnect)
        placed: list[str] = []
        try:
            for order in self.store.open_orders():
                if order.strategy == flattening.STRATEGY:
                    self.orders.resolve(order.client_order_id, allow_resend=True)
                    placed.append(order.client_order_id)
            self.orders.apply_updates()
            exits = [o for o in self.store.open_orders() if o.parent is not None]
            if exits and not self.orders.cancel_exits(exits):
                log.warning("flatten: exits not cancelled yet; the closes wait for them")
            for close in self.plan().closes:
                order = self.store.add_intent(
                    client_order_id=close.client_order_id,
                    signal=None,
                    strategy=flattening.STRATEGY,
                    symbol=close.symbol,
                    side=close.side,
                    qty=close.qty,
                    notional=None,
                    price=self.market.prices.get(close.symbol)
                    or self.book.last_prices.get(close.symbol),
                    fill_mark=self.store.last_fill(),
                )
                self.orders.place(order)
                placed.append(close.client_order_id)
            deadline = self.monotonic() + timeout_s
            while self.monotonic() < deadline:
                self.orders.apply_updates()
                self.publish()
                orders = [self.store.get(c) for c in placed]
                if all(o is not None and not o.open for o in orders):
                    break
                self.orders.follow_open_orders()
                self.sleep(FOLLOW_S)
        finally:
            self.broker.close()
            self.publish()
        result = [o for o in (self.store.get(c) for c in placed) if o is not None]
        self.store.close()
        return result
