"""Exits in the order life cycle: the legs the broker makes, and the exits the executor owns.

A child order the broker made (a bracket's, OTO's or OCO's leg) is stored the first time its
parent reports it and followed like any other order (``adopt_leg``). The exits the executor owns
(percentage exits, ``execution.exits``) are stored, all of them, when the entry is final with a fill
(with ``exits_on_partial_fill``: at its first fill, for the qty filled then, and ``replacing``
replaces them as it fills more),
and only then sent (``place_exits``); an entry left ``pending`` by a crash gets them on the next
start (``place_pending_exits``), at its final qty, under the same derived ids.

``ExitPlacing`` is a part of ``lifecycle.OrderLifecycle`` (its base class), kept apart so each
file reads in one go; it places and applies orders through the life cycle's ``place`` and
``apply``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flinktrade.events import OrderSpec, OrderType, TimeInForce
from flinktrade.execution.alerts import Alerter, AlertKind
from flinktrade.execution.brokers.base import BrokerOrder, TradeUpdate
from flinktrade.execution.exits import exit_orders
from flinktrade.execution.store import OrderStore, Phase, StoredOrder
from flinktrade.orders import Leg, leg_client_order_id

log = logging.getLogger(__name__)


class ExitPlacing:
    """The exit part of the order life cycle (see the module docstring)."""

    store: OrderStore
    alert: Alerter
    checkpoint: Callable[[str], None]

    def place(self, order: StoredOrder) -> None:
        raise NotImplementedError

    def apply(self, broker_order: BrokerOrder, update: TradeUpdate | None) -> None:
        raise NotImplementedError

    def adopt_leg(self, parent: StoredOrder, leg: BrokerOrder) -> None:
        """A child order the broker made for ``parent`` (a bracket's, OTO's or OCO's exit): stored
        under its own ``client_order_id`` the first time it is seen, then followed like any
        other order (its fills count, reconciliation knows it)."""
        if not leg.client_order_id:
            log.warning(
                "executor: leg %s of %s has no client_order_id", leg.id, parent.client_order_id
            )
            return
        if not self.store.exists(leg.client_order_id):
            kind = Leg.TAKE_PROFIT if leg.type == OrderType.LIMIT else Leg.STOP_LOSS
            self.store.add_intent(
                client_order_id=leg.client_order_id,
                signal=None,
                strategy=parent.strategy,
                symbol=leg.symbol or parent.symbol,
                side=leg.side,
                qty=leg.qty,
                notional=None,
                price=leg.limit_price or leg.stop_price or parent.price,
                spec=leg_spec(leg, parent.order.time_in_force),
                parent=parent.client_order_id,
                leg=kind.value,
            )
            self.store.mark_sending(leg.client_order_id)
        self.apply(leg, None)

    def place_exits(self, entry: StoredOrder) -> None:
        """``_place_exits``; exits that cannot even be built (prices no order can carry) are
        marked ``failed`` and alerted instead of failing the executor on every retry."""
        try:
            self._place_exits(entry)
        except (ValueError, ArithmeticError) as exc:
            coid = entry.client_order_id
            log.error("executor: exits of %s cannot be placed: %s", coid, exc)
            self.store.set_exits(coid, "failed")
            self.alert(
                AlertKind.ORDER_REJECTED,
                f"exits of {entry.side.value} {entry.filled_qty} {entry.symbol} ({coid}) "
                f"cannot be placed: {type(exc).__name__}: {str(exc)[:200]}",
                symbol=entry.symbol,
                throttle_key="exits",
            )

    def _place_exits(self, entry: StoredOrder) -> None:
        """Place the exits the executor owns for ``entry``, filled (in part or whole) for
        ``filled_qty`` at ``filled_avg_price``: their intents are stored
        (all in one transaction, with the entry marked ``placed``) before any is sent, each under
        its derived id; an entry that filled nothing has none. Called on the entry's first fill
        or final update and, for entries a crash left ``pending``, at start-up and every
        reconciliation."""
        price = entry.filled_avg_price
        if entry.filled_qty <= 0 or price is None:
            self.store.set_exits(entry.client_order_id, "none")
            return
        planned = exit_orders(
            entry.client_order_id, entry.order, entry.side, price, entry.filled_qty
        )
        stored: list[StoredOrder] = []
        self.store.commit()  # what came before is not this transaction's to roll back
        with self.store.transaction():
            for exit_order in planned:
                existing = self.store.get(exit_order.client_order_id)
                if existing is not None:
                    stored.append(existing)
                    continue
                stored.append(
                    self.store.add_intent(
                        client_order_id=exit_order.client_order_id,
                        signal=None,
                        strategy=entry.strategy,
                        symbol=entry.symbol,
                        side=exit_order.side,
                        qty=entry.filled_qty,
                        notional=None,
                        price=price,
                        spec=exit_order.spec,
                        parent=entry.client_order_id,
                        leg=exit_order.leg.value,
                        commit=False,
                    )
                )
            self.store.set_exits(entry.client_order_id, "placed", commit=False)
        self.checkpoint("exits_stored")
        for leg_order in stored:
            if leg_order.phase == Phase.INTENT:
                log.info(
                    "executor: placing %s exit %s of %s",
                    leg_order.leg,
                    leg_order.client_order_id,
                    entry.client_order_id,
                )
                self.place(leg_order)

    def place_pending_exits(self) -> int:
        """Place the exits of entries a crash left between their fill and their exits."""
        pending = self.store.pending_exits()
        for entry in pending:
            log.warning(
                "executor: entry %s filled without its exits stored; placing them now",
                entry.client_order_id,
            )
            self.place_exits(entry)
        return len(pending)


def leg_spec(leg: BrokerOrder, time_in_force: TimeInForce) -> OrderSpec | None:
    """The spec of a child order the broker made, from what it reports (None if it reports
    prices this model cannot hold)."""
    try:
        kind = OrderType(leg.type)
    except ValueError:
        return None
    try:
        return OrderSpec(
            type=kind,
            limit_price=leg.limit_price
            if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT)
            else None,
            stop_price=leg.stop_price if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
            time_in_force=time_in_force,
        )
    except ValueError:
        return None


def own_exit(order: StoredOrder) -> bool:
    """Whether ``order`` is an exit the executor made itself (its id is derived from its
    entry's, or a replace of it: ``replacing``), not a leg the broker made for a bracket, OTO or
    OCO order."""
    if order.parent is None or order.leg is None:
        return False
    try:
        leg = Leg(order.leg)
    except ValueError:
        return False
    own = leg_client_order_id(order.parent, leg)
    if order.replaces is not None:  # a replace of an own exit: the leg's id + -r<n>
        return order.client_order_id.startswith(own + "-r")
    return order.client_order_id == own
