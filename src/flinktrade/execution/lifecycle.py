"""The order life cycle: place an order, resolve what became of it, apply the broker's word.

Pure of Kafka: it talks to the order store and the broker only. An order is marked ``sending``
and ``POST``ed; the broker asks ``may_send`` before every (re)send attempt, which re-checks the
kill switch and the signal's age (``resend_refusal``). A timeout, 5xx or dropped connection is
*unknown* and is resolved by looking the ``client_order_id`` up, never by sending again blindly.
Updates from the broker (stream or REST) move the stored order on; fills are recorded once,
deduplicated by execution id and by the cumulative filled quantity.

``resolve`` answers with a ``Resolution``: what the look-up found.

Exits: a child order the broker made (a bracket's, OTO's or OCO's leg) is stored the first time
its parent reports it and followed like any other order; the exits the executor owns (percentage
exits, ``execution.exits``) are stored, all of them, when the entry is final with a fill, and only
then sent (``place_exits``); an entry left ``pending`` by a crash gets them on the next start
(``place_pending_exits``), under the same derived ids: that part is ``exit_placing.ExitPlacing``,
the base class of ``OrderLifecycle``. While the kill switch is on, only orders
that reduce a position leave (``reduces``: flatten, exits, a plain close). An order that closes
what open exits protect waits until they are cancelled (``cancelling.ExitCancelling``, the next
base class): ``place`` sends nothing before ``clear_the_way`` says so. With
``exits_on_partial_fill`` the exits it owns are placed at the entry's first fill and replaced for
the new qty at each later one
(``replacing.ExitReplacing``, the base class in between): a replace is an order whose row
``replaces`` another, sent with ``Broker.replace`` and followed like any other. The broker's word
(an order looked up, a stream update) is applied by ``applying.UpdateApplying``, the last base
class.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum

from flinktrade.errors import TransientError
from flinktrade.events import OrderStatus
from flinktrade.execution import flatten as flattening
from flinktrade.execution import risk
from flinktrade.execution.alerts import Alerter, AlertKind
from flinktrade.execution.applying import UpdateApplying
from flinktrade.execution.book import Book, ExecutorStats
from flinktrade.execution.brokers.base import (
    Broker,
    BrokerOrder,
    OrderExists,
    OrderRefused,
    OrderRequest,
    OutcomeUnknown,
    TradeUpdate,
)
from flinktrade.execution.exit_placing import own_exit
from flinktrade.execution.exits import broker_spec
from flinktrade.execution.settings import ExecutionSettings
from flinktrade.execution.store import OrderStore, Phase, StoredOrder

log = logging.getLogger(__name__)

UNKNOWN_LOOKUPS = 3
"""Look-ups right after an unknown outcome, ``unknown_retry_s`` apart; then the poll goes on."""


class Resolution(StrEnum):
    """What looking an order up by its ``client_order_id`` found."""

    FOUND = "found"
    """The broker knows it (its state is applied), or the store has it final already."""
    RESENT = "resent"
    """It never reached the broker and was sent now."""
    ABANDONED = "abandoned"
    """It never reached the broker and must not be sent any more (stored as canceled)."""
    MISSING = "missing"
    """The broker acknowledged it once and now has no record of it."""
    UNREACHABLE = "unreachable"
    """Not known yet: the broker could not be asked, or the request may still be in flight."""


class OrderLifecycle(UpdateApplying):
    def __init__(
        self,
        *,
        store: OrderStore,
        broker: Broker,
        config: ExecutionSettings,
        clock: Callable[[], int],
        alert: Alerter,
        stats: ExecutorStats,
        book: Book,
        checkpoint: Callable[[str], None],
        on_unknown_order: Callable[[], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.broker = broker
        self.config = config
        self.clock = clock
        self.alert = alert
        self.stats = stats
        self.book = book
        self.checkpoint = checkpoint
        self.on_unknown_order = on_unknown_order
        self.sleep = sleep
        self.updates: queue.Queue[TradeUpdate] = queue.Queue()
        """Filled by the broker's stream thread; applied by the deciding thread only."""

    # ------------------------------------------------------------------ placing

    def place(self, order: StoredOrder) -> None:
        coid = order.client_order_id
        if not self.clear_the_way(order):
            return  # its exits are not cancelled yet (it stays an intent) or it is dropped
        why = self.replace_refusal(order)
        if why is not None:
            self.store.transition(coid, OrderStatus.CANCELED, reason=f"not sent: {why}")
            return
        self.store.mark_sending(coid)
        self.checkpoint("request_sent")
        self.stats.orders_sent += 1
        try:
            placed = self._submit(order)
        except OrderExists:
            log.info("executor: %s already exists at the broker; looking it up", coid)
            self.resolve(coid, allow_resend=False)
            return
        except OrderRefused as exc:
            if order.replaces is not None:
                self.replace_refused(order, exc)
                return
            self.stats.rejected += 1
            self.store.transition(coid, OrderStatus.REJECTED, reason=str(exc))
            self.alert(
                AlertKind.ORDER_REJECTED,
                f"broker refused {order.side.value} {order.qty} {order.symbol} ({coid}): {exc}",
                symbol=order.symbol,
                throttle_key="rejected",
            )
            return
        except OutcomeUnknown as exc:
            self.stats.unknown += 1
            log.warning("executor: outcome of %s unknown (%s); looking it up", coid, exc)
            self.store.mark_unknown(coid, f"outcome unknown: {exc}")
            for _ in range(UNKNOWN_LOOKUPS):
                if self.resolve(coid, allow_resend=False) != Resolution.UNREACHABLE:
                    return
                self.sleep(self.config.unknown_retry_s)
            return  # still unknown: the poll keeps looking it up, risk counts it as open
        self.checkpoint("response_received")
        self.apply(placed, None)

    def _submit(self, order: StoredOrder) -> BrokerOrder:
        """Send one order; the broker asks ``may_send`` before every attempt (retries too)."""
        coid = order.client_order_id

        def may_send() -> str | None:
            current = self.store.get(coid)
            why = self.resend_refusal(current or order)
            return None if why is None else f"not sent: {why}"

        if order.replaces is not None:  # an exit for a new qty: the broker swaps the old one
            return self.broker.replace(order.replaces, coid, qty=order.qty)
        request = OrderRequest(
            client_order_id=coid,
            symbol=order.symbol,
            side=order.side,
            qty=None if order.notional is not None else order.qty or Decimal(0),
            spec=broker_spec(order.order),
            notional=order.notional,
        )
        return self.broker.submit(request, may_send=may_send)

    def resend_refusal(self, order: StoredOrder) -> str | None:
        """Why ``order`` must not be (re)sent now: the kill switch (flatten orders excepted: they
        are sent while it is on) or its signal's age, judged by the same times as the risk check
        (event time only while ``signal_age_from_event_time`` is on), or an exit's cancel asked
        for; None when it may go."""
        if order.cancel is not None:
            return "its cancel was asked for"
        replacing = self.replace_refusal(order)
        if replacing is not None:
            return replacing
        halted = self.store.halted()
        if halted and not self.reduces(order):
            return f"kill switch is on ({halted})"
        if order.parent is not None:
            if not own_exit(order):
                return "a leg the broker made is never sent by the executor"
            return None  # an exit protects a position: it goes however old its entry is
        limits = self.config.risk
        born = order.born_ms if limits.signal_age_from_event_time else order.created_ms
        return risk.age_problem((born,), self.clock(), limits)

    def reduces(self, order: StoredOrder) -> bool:
        """Whether ``order`` may leave while the kill switch is on: a flatten order, an exit, or
        an order without exits of its own that closes at most the position held."""
        if order.strategy == flattening.STRATEGY or order.parent is not None:
            return True
        if (order.order.exits and not order.order.oco) or order.qty is None:
            return False
        position = self.book.positions.get(order.symbol, Decimal(0))
        return risk.reduces(order.side, order.qty - order.filled_qty, position, Decimal(0))

    # ------------------------------------------------------------------ resolving

    def resolve(self, coid: str, *, allow_resend: bool) -> Resolution:
        """Look an order up by ``client_order_id`` and apply what the broker says; an order the
        broker never got is sent again only with ``allow_resend`` and no ``resend_refusal``."""
        order = self.store.get(coid)
        if order is None or not order.open:
            return Resolution.FOUND
        try:
            found = self.broker.get_order(coid)
        except TransientError as exc:
            log.warning("executor: look-up of %s failed: %s", coid, exc)
            return Resolution.UNREACHABLE
        if found is not None:
            self.apply(found, None)
            return Resolution.FOUND
        if order.phase == Phase.ACKED:
            return Resolution.MISSING
        # The broker has no order with this id: the request never arrived (or is still in
        # flight; the broker refuses a second order with the same client_order_id).
        if not allow_resend:
            return Resolution.UNREACHABLE  # right after a failure: it may be in flight; later
        why = self.resend_refusal(order)
        if why is not None:
            self.store.transition(coid, OrderStatus.CANCELED, reason=f"not sent: {why}")
            return Resolution.ABANDONED
        log.info("executor: %s never reached the broker; sending it now", coid)
        self.place(order)
        return Resolution.RESENT

    def follow_open_orders(self) -> None:
        """Look up every order not yet final (missed stream events, unknown outcomes)."""
        grace_ms = 2_000 * self.config.request_timeout_s
        for order in self.store.open_orders():
            # an order whose outcome was unknown and that the broker still does not know after
            # twice the request timeout never arrived: send it again (same client_order_id, so
            # the broker refuses a second one if the first turns up after all)
            settled = self.clock() - order.updated_ms > grace_ms
            allow = order.phase == Phase.INTENT or (
                settled and order.phase in (Phase.SENDING, Phase.UNKNOWN)
            )
            self.resolve(order.client_order_id, allow_resend=allow)
