"""Applying the broker's word to the order store: statuses, fills, legs, and what follows.

An order the broker reports (looked up over REST, or a stream update queued by the broker's thread
and applied by the deciding thread only) moves its stored order on. A fill is recorded once:
deduplicated by execution id (a fill learned over REST gets a deterministic one) and by the
cumulative filled quantity; the price of the shares newly filled comes from the change of the
average price (``fill_price``). A fill learned over REST carries no commission; the broker's
update for the same shares, arriving later, adds its commission to that fill (``late_costs``).
Legs the broker made are adopted; the entry's own exits are placed when it is final with a fill
(or, with ``exits_on_partial_fill``, at its first fill and resized at each later one). ``UpdateApplying`` is the base class of ``lifecycle.OrderLifecycle``.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from decimal import Decimal

from flinktrade.events import Fill
from flinktrade.execution.book import Book, ExecutorStats
from flinktrade.execution.brokers.base import BrokerOrder, TradeUpdate
from flinktrade.execution.replacing import ExitReplacing
from flinktrade.execution.store import StoredOrder

log = logging.getLogger(__name__)


class UpdateApplying(ExitReplacing):
    """The life cycle's part that applies what the broker says about an order."""

    stats: ExecutorStats
    book: Book
    clock: Callable[[], int]
    on_unknown_order: Callable[[], None]
    updates: queue.Queue[TradeUpdate]

    def apply_updates(self) -> None:
        while True:
            try:
                update = self.updates.get_nowait()
            except queue.Empty:
                return
            self.apply(update.order, update)

    def apply(self, broker_order: BrokerOrder, update: TradeUpdate | None) -> None:
        coid = broker_order.client_order_id
        order = self.store.get(coid)
        if order is None:
            log.warning(
                "executor: broker reports order %s (%s) unknown to the store; "
                "the next reconciliation decides",
                broker_order.id,
                coid,
            )
            self.on_unknown_order()
            return
        if broker_order.filled_qty > order.filled_qty and not order.status.final:
            self._record_fill(order, broker_order, update)
        elif (
            update is not None
            and update.is_fill
            and update.execution_id
            and update.commission
            and broker_order.filled_qty <= order.filled_qty  # its shares are recorded already
        ):
            self._record_late_costs(order, broker_order, update)
        self.store.transition(
            coid,
            broker_order.status,
            broker_order_id=broker_order.id,
            filled_qty=max(order.filled_qty, broker_order.filled_qty),
            filled_avg_price=broker_order.filled_avg_price,
        )
        for leg in broker_order.legs:
            try:
                self.adopt_leg(order, leg)
            except ValueError as exc:  # a leg our events cannot hold: reconciliation shows it
                log.warning("executor: leg %s of %s not stored: %s", leg.id, coid, exc)
        current = self.store.get(coid)
        if current is None:
            return
        if order.exits == "pending" and broker_order.status.final:
            self.checkpoint("entry_final")
            self.place_exits(current)
        elif self.config.exits_on_partial_fill:  # off: exits wait for the entry to be final
            if current.exits == "pending" and current.filled_qty > 0:
                self.place_exits(current)  # the first part filled: protect it now
            elif current.exits == "placed" and current.filled_qty > order.filled_qty:
                self.resize_exits(current)  # it filled more: the exits follow
            else:
                self.after_update(current)

    def _record_fill(
        self, order: StoredOrder, broker_order: BrokerOrder, update: TradeUpdate | None
    ) -> None:
        delta = broker_order.filled_qty - order.filled_qty
        price = fill_price(order, broker_order, update, delta)
        if update is not None and update.is_fill and update.execution_id:
            execution_id = update.execution_id
        else:  # learned over REST: a deterministic id, so a replay records it once
            execution_id = f"{broker_order.id}:{broker_order.filled_qty}"
        if self.store.has_fill(execution_id):
            return
        fill = Fill(
            ts=(update.ts if update is not None and update.ts else self.clock()),
            id=execution_id,
            order_id=broker_order.id,
            client_order_id=order.client_order_id,
            strategy=order.strategy,
            symbol=order.symbol,
            side=order.side,
            qty=delta,
            price=price.quantize(Decimal("0.000001")) if price > 0 else Decimal("0.000001"),
            commission=update.commission if update is not None else Decimal(0),
            position_qty=update.position_qty if update is not None else None,
            broker=self.broker.name,
        )
        if self.store.add_fill(fill, commit=False):
            self.book.add_fill(order.symbol, order.side, delta, fill.price)
            self.stats.fills += 1

    def _record_late_costs(
        self, order: StoredOrder, broker_order: BrokerOrder, update: TradeUpdate
    ) -> None:
        """The broker's update for shares already recorded (learned over REST, with no
        commission): its commission goes onto the fill that recorded them."""
        assert update.execution_id is not None
        fills = self.store.order_fills(order.client_order_id)
        if not fills:
            log.warning(
                "executor: fill %s of %s reports shares no recorded fill holds; its commission %s"
                " is not recorded",
                update.execution_id,
                order.client_order_id,
                update.commission,
            )
            return
        fill_id = _covering_fill(fills, broker_order.id, broker_order.filled_qty)
        # False for a repeat (its execution id is known)
        if self.store.add_late_costs(update.execution_id, fill_id, update.commission, commit=False):
            log.info(
                "executor: commission %s of fill %s added to %s (learned over REST first)",
                update.commission,
                update.execution_id,
                fill_id,
            )


def _covering_fill(fill_ids: list[str], broker_order_id: str, filled_qty: Decimal) -> str:
    """Of an order's fills (in recorded order), the one learned over REST whose cumulative
    quantity (its id's ``<order id>:<filled qty>``) first covers ``filled_qty``; else the last."""
    prefix = f"{broker_order_id}:"
    best: tuple[Decimal, str] | None = None
    for fill_id in fill_ids:
        if not fill_id.startswith(prefix):
            continue
        try:
            covered = Decimal(fill_id[len(prefix) :])
            if covered >= filled_qty and (best is None or covered < best[0]):
                best = (covered, fill_id)
        except ArithmeticError:  # not an id this module made
            continue
    return best[1] if best is not None else fill_ids[-1]


def fill_price(
    order: StoredOrder, broker_order: BrokerOrder, update: TradeUpdate | None, delta: Decimal
) -> Decimal:
    """The price of the ``delta`` newly filled shares: from the change of the average price, else
    the update's price, else the average (or the order's price)."""
    price: Decimal | None = None
    if broker_order.filled_avg_price is not None:
        before = (order.filled_avg_price or Decimal(0)) * order.filled_qty
        price = (broker_order.filled_avg_price * broker_order.filled_qty - before) / delta
    if (price is None or price <= 0) and update is not None:
        price = update.price
    if price is None or price <= 0:
        price = broker_order.filled_avg_price or order.price or Decimal(0)
    return price
