"""Cancelling exits before an order that closes the position they protect.

An order that is not an exit (nor an oco exit pair), and sells (or buys) the same symbol on the same side as open exits
of its strategy (of any strategy for a ``flatten`` order), closes or reverses the position those
exits protect: the exits must go first, or a stop could later fire against a position that is gone
(and at Alpaca open exit legs hold the shares: the close would be refused). ``clear_the_way``,
called by ``lifecycle.OrderLifecycle.place`` before anything is sent:

1. marks each such exit ``cancel = 'wanted'`` in the store and commits, before any request (an
   exit never sent is canceled in the store only, and is never sent afterwards);
2. asks the broker to cancel each (``Broker.cancel``; "already gone" is an answer);
3. waits, at most ``cancel_wait_s``, until the store has every one final (the broker's updates,
   and a look-up of those still open every second);
4. only then lets the order go, unless an exit filled meanwhile (after the order's ``fill_mark``):
   then the position changed under the order, which is not sent (canceled, with an alert).

When the cancels are not confirmed in time the order stays an intent and is tried again by the
poll (``follow_open_orders``); it is never sent into shares the exits still hold. A crash at any
point leaves the cancel marked in the store: the restart's look-ups learn what became of each
exit, and the order's next attempt asks for the cancels again. The kill switch never stops a
cancel (it reduces risk). ``ExitCancelling`` is a part of the life cycle (its base class).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from flinktrade.errors import TransientError
from flinktrade.events import OrderStatus
from flinktrade.execution import flatten as flattening
from flinktrade.execution.alerts import AlertKind
from flinktrade.execution.brokers.base import Broker
from flinktrade.execution.exit_placing import ExitPlacing
from flinktrade.execution.settings import ExecutionSettings
from flinktrade.execution.store import Phase, StoredOrder

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.25
"""How often the exits being cancelled are looked at (their updates) while the order waits."""
LOOKUP_EVERY = 4
"""Every this many looks, exits still open are also looked up over REST (missed updates)."""


class ExitCancelling(ExitPlacing):
    """The cancel part of the order life cycle (see the module docstring)."""

    broker: Broker
    config: ExecutionSettings
    sleep: Callable[[float], None]

    def resolve(self, coid: str, *, allow_resend: bool) -> object:
        raise NotImplementedError

    def apply_updates(self) -> None:
        raise NotImplementedError

    def in_the_way(self, order: StoredOrder) -> list[StoredOrder]:
        """The open exits ``order`` must cancel before it is sent: same symbol and side, of its
        strategy (any strategy's for a flatten order); none for an exit or an oco exit pair
        (it adds protection, it does not close)."""
        if order.parent is not None or order.order.oco:
            return []
        everyone = order.strategy == flattening.STRATEGY
        return [
            o
            for o in self.store.open_exits(order.symbol)
            if o.side == order.side and (everyone or o.strategy == order.strategy)
        ]

    def clear_the_way(self, order: StoredOrder) -> bool:
        """Cancel the exits in ``order``'s way and wait for them; True when it may be sent now."""
        exits = self.in_the_way(order)
        if exits:
            log.info(
                "executor: %s closes what %d exit(s) protect; cancelling %s first",
                order.client_order_id,
                len(exits),
                ", ".join(o.client_order_id for o in exits),
            )
            if not self.cancel_exits(exits):
                log.warning(
                    "executor: %s waits: the cancels of its exits are not confirmed yet",
                    order.client_order_id,
                )
                return False
            self.checkpoint("exits_canceled")
        if order.fill_mark is None:
            return True
        everyone = order.strategy == flattening.STRATEGY
        filled = self.store.exit_fills_after(
            order.fill_mark, order.symbol, order.side.value, None if everyone else order.strategy
        )
        if filled <= 0:
            return True
        why = (
            f"not sent: exits filled {filled} {order.symbol} while it waited for their cancels "
            "(the position changed under it)"
        )
        self.store.transition(order.client_order_id, OrderStatus.CANCELED, reason=why)
        self.alert(
            AlertKind.ORDER_REJECTED,
            f"{order.side.value} {order.qty} {order.symbol} ({order.client_order_id}) {why}",
            symbol=order.symbol,
            throttle_key="exit_filled",
        )
        return False

    def cancel_exits(self, exits: list[StoredOrder]) -> bool:
        """Store the cancel of each exit (committed), ask the broker, wait at most
        ``cancel_wait_s`` until each is final in the store; True when all are."""
        coids = [o.client_order_id for o in exits]
        self.store.want_cancel(coids)
        self.checkpoint("cancel_stored")
        for coid in coids:
            self.request_cancel(coid)
        looks = max(1, math.ceil(self.config.cancel_wait_s / CANCEL_POLL_S))
        for look in range(looks):
            if look:
                self.sleep(CANCEL_POLL_S)
            self.apply_updates()
            left = [c for c in coids if (o := self.store.get(c)) is not None and o.open]
            if left and look % LOOKUP_EVERY == LOOKUP_EVERY - 1:  # the stream first, then REST
                for coid in left:
                    self.resolve(coid, allow_resend=False)
                left = [c for c in left if (o := self.store.get(c)) is not None and o.open]
            if not left:
                return True
        return False

    def request_cancel(self, coid: str) -> None:
        """One exit's cancel: never sent (an intent): canceled in the store; else asked of the
        broker (an unclear answer is asked again on the order's next attempt)."""
        order = self.store.get(coid)
        if order is None or not order.open:
            return
        if order.phase == Phase.INTENT:
            self.store.transition(coid, OrderStatus.CANCELED, reason="canceled before it was sent")
            return
        try:
            self.broker.cancel(coid)
        except TransientError as exc:
            log.warning("executor: cancel of %s not confirmed: %s", coid, exc)
            return
        self.store.cancel_sent(coid)
