"""Replacing the executor's own exits as their entry fills in parts.

With ``execution.exits_on_partial_fill`` (off by default: the exits then wait for the entry to be
final, and nothing here is used) an entry whose exits the executor owns (percentage exits,
``execution.exits``) gets them at its first fill, for the qty filled so far (``exit_placing.place_exits``, priced from the average fill
price then). Each later fill makes them short of the position: ``resize_exits`` REPLACES each
current exit whose qty is below the entry's filled qty by a new order for the filled qty
(``Broker.replace``: the same spec, a new id ``store.replace_id``: the leg's id + ``-r<n>``):

1. the replace intent (the new exit's row: ``replaces`` = the old exit's id, the new qty) is
   stored and committed before any request (crash step ``replace_stored``);
2. the request goes out like any order's (``lifecycle.place``: ``request_sent``,
   ``response_received``); an unclear answer is resolved by looking the NEW id up, never by
   replacing again blindly; a restart finds the intent open and looks it up the same way, and
   sends it only if the broker never got it and the old exit is still open (never two live
   exits for the same shares: a replace whose old exit is over is dropped, not sent);
3. the broker ends the old exit ``replaced`` (canceled in the store); the new one carries on.

Only an exit the broker has acknowledged and that has not filled is replaced. A replace the
broker refuses (Alpaca refuses one while the order is ``accepted`` or ``pending_*``, or after it
filled) ends canceled with the refusal as its reason and an alert, the old exit stays the
current one, and the replace is tried again, under the next id, at the exit's next update or the
next reconciliation (``resize_pending_exits``, which also catches up after a restart), at most
``REPLACE_TRIES`` times for one qty. An OCO exit
pair is replaced through its take-profit parent; its stop leg is the broker's. ``ExitReplacing``
is a part of the life cycle (its base class), between ``cancelling`` and ``lifecycle``.
"""

from __future__ import annotations

import logging

from flinktrade.events import OrderStatus
from flinktrade.execution.alerts import AlertKind
from flinktrade.execution.cancelling import ExitCancelling
from flinktrade.execution.exit_placing import own_exit
from flinktrade.execution.store import Phase, StoredOrder, replace_id
from flinktrade.orders import Leg, leg_client_order_id

log = logging.getLogger(__name__)

REPLACE_TRIES = 3
"""Replaces of one exit for one qty tried at most this many times (one the broker always
refuses, e.g. a fractional qty at Alpaca, is not asked for again at every reconciliation)."""
REPLACEABLE = frozenset({OrderStatus.NEW, OrderStatus.ACCEPTED})
"""Stored states in which an exit is replaced (the store does not tell Alpaca's ``accepted``
from ``new``: a replace Alpaca refuses for it is tried again later)."""


class ExitReplacing(ExitCancelling):
    """The replace part of the order life cycle (see the module docstring)."""

    _resizing = False

    def resize_exits(self, entry: StoredOrder) -> int:
        """Replace each current exit of ``entry`` whose qty is below its filled qty; how many
        replaces were stored."""
        if entry.exits != "placed" or entry.filled_qty <= 0 or self._resizing:
            return 0  # not while a replace is under way (its look-ups apply updates too)
        self._resizing = True
        try:
            return self._resize(entry)
        finally:
            self._resizing = False

    def _resize(self, entry: StoredOrder) -> int:
        stored = 0
        for exit_order in self.store.current_exits(entry.client_order_id):
            if not self._behind(exit_order, entry) or exit_order.leg is None:
                continue
            tried = self.store.failed_replaces(exit_order.client_order_id, entry.filled_qty)
            if tried >= REPLACE_TRIES:
                continue  # refused that often: alerted each time, left to the operator
            n = self.store.replaces_of(entry.client_order_id, exit_order.leg) + 1
            leg_id = leg_client_order_id(entry.client_order_id, Leg(exit_order.leg))
            new = self.store.add_replace(exit_order, replace_id(leg_id, n), entry.filled_qty)
            stored += 1
            log.info(
                "executor: replacing exit %s of %s by %s for %s (the entry filled more)",
                exit_order.client_order_id,
                entry.client_order_id,
                new.client_order_id,
                entry.filled_qty,
            )
            self.checkpoint("replace_stored")
            self.place(new)
        return stored

    @staticmethod
    def _behind(exit_order: StoredOrder, entry: StoredOrder) -> bool:
        """Whether ``exit_order`` is an own exit the broker has working for fewer shares than
        ``entry`` filled (and nobody asked to cancel it)."""
        return (
            own_exit(exit_order)
            and exit_order.phase == Phase.ACKED
            and exit_order.status in REPLACEABLE
            and exit_order.cancel is None
            and exit_order.filled_qty == 0
            and exit_order.qty is not None
            and exit_order.qty < entry.filled_qty
        )

    def resize_pending_exits(self) -> int:
        """Replace the exits left behind their entry's fills (a replace that had to wait, a
        restart); how many replaces were stored."""
        return sum(self.resize_exits(e) for e in self.store.entries_with_open_exits())

    def place_pending_exits(self) -> int:
        """Exits a crash left unplaced (``exit_placing``), then exits left behind their
        entry's fills."""
        return super().place_pending_exits() + self.resize_pending_exits()

    def replace_refusal(self, order: StoredOrder) -> str | None:
        """Why the replace ``order`` must not be sent: the exit it replaces is over (filled,
        canceled) or its cancel was asked for; None when it may go."""
        if order.replaces is None:
            return None
        old = self.store.get(order.replaces)
        if old is None or not old.open:
            return f"the exit it replaces ({order.replaces}) is over"
        if old.cancel is not None:
            return f"the exit it replaces ({order.replaces}) is being cancelled"
        return None

    def replace_refused(self, order: StoredOrder, exc: Exception) -> None:
        """The broker refused the replace ``order``: it ends canceled (the old exit stays the
        current one and the replace is tried again later), alerted, the old exit looked up."""
        why = f"refused: {exc}"
        self.store.transition(order.client_order_id, OrderStatus.CANCELED, reason=why)
        self.alert(
            AlertKind.ORDER_REJECTED,
            f"replace of exit {order.replaces} by {order.client_order_id} {why}",
            symbol=order.symbol,
            throttle_key="replace",
        )
        if order.replaces is not None:
            self.resolve(order.replaces, allow_resend=False)

    def after_update(self, order: StoredOrder) -> None:
        """After an update of ``order``: an own exit the broker now has working may have a
        replace waiting (its entry filled more while it was being placed)."""
        if order.parent is None or not own_exit(order):
            return
        current = self.store.get(order.client_order_id)
        entry = self.store.get(order.parent)
        if current is not None and entry is not None and current.status in REPLACEABLE:
            self.resize_exits(entry)
