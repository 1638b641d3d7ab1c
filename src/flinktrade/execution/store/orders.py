"""The store's ``orders`` table: reading orders, and each order's way to a final state.

One row per ``client_order_id``, written first as an intent or a denial (``intents``). Before
the HTTP call an order is marked ``sending`` (committed), after a failed one ``unknown``; the
broker's word moves it forward (``transition``: never backwards, a repeat changes nothing). Each
change of state and its ``trading.orders`` record are one transaction: the event is built (and so
validated) before the row is written, and a failure rolls both back. Final orders past the
retention are deleted (``prune``); their fills stay.
"""

from __future__ import annotations

from decimal import Decimal

from flinktrade.events import OrderEvent, OrderStatus, now_ms
from flinktrade.execution.store.intents import IntentTable
from flinktrade.execution.store.records import (
    Phase,
    StoredOrder,
    advances,
    order_from_row,
    text,
)


class OrderTable(IntentTable):
    """Orders by ``client_order_id``: read, stored as intents or denials (``IntentTable``), moved
    forward."""

    def get(self, client_order_id: str) -> StoredOrder | None:
        row = self._db.execute(
            "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return None if row is None else order_from_row(row)

    def exists(self, client_order_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return row is not None

    def orders(self, *, open_only: bool = False, limit: int | None = None) -> list[StoredOrder]:
        sql = "SELECT * FROM orders"
        if open_only:
            sql += " WHERE phase IN ('intent', 'sending', 'unknown', 'acked')"
        sql += " ORDER BY created_ms, client_order_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [order_from_row(row) for row in self._db.execute(sql)]

    def open_orders(self) -> list[StoredOrder]:
        return self.orders(open_only=True)

    def prune(self, *, before_ms: int) -> int:
        """Delete the orders (and denials) final since before ``before_ms``; their fills stay, so
        positions are unchanged. Returns how many went (committed)."""
        with self.transaction():
            deleted = self._db.execute(
                "DELETE FROM orders WHERE phase = ? AND updated_ms < ?",
                (Phase.FINAL.value, before_ms),
            ).rowcount
        return int(deleted)

    def sent_since(self, since_ms: int) -> int:
        """Orders handed to the broker (or about to be) since ``since_ms``."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM orders WHERE sent_ms IS NOT NULL AND sent_ms >= ?", (since_ms,)
        ).fetchone()
        return int(row[0])

    def denials_since(self, rule: str, since_ms: int) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM orders WHERE rule = ? AND created_ms >= ?", (rule, since_ms)
        ).fetchone()
        return int(row[0])

    def set_exits(self, client_order_id: str, state: str, *, commit: bool = True) -> None:
        """Mark an entry's own exits ``placed`` (their intents are stored) or ``none``."""
        self._db.execute(
            "UPDATE orders SET exits = ? WHERE client_order_id = ?", (state, client_order_id)
        )
        if commit:
            self._db.commit()

    def pending_exits(self) -> list[StoredOrder]:
        """Final entries whose own exits are not stored yet (a crash came between the fill and
        them): the executor places them at start-up and at every reconciliation."""
        rows = self._db.execute(
            "SELECT * FROM orders WHERE exits = 'pending' AND phase = 'final'"
            " ORDER BY created_ms, client_order_id"
        )
        return [order_from_row(row) for row in rows]

    def legs(self, parent: str) -> list[StoredOrder]:
        """The exits stored for the entry ``parent``."""
        rows = self._db.execute(
            "SELECT * FROM orders WHERE parent = ? ORDER BY client_order_id", (parent,)
        )
        return [order_from_row(row) for row in rows]

    def mark_sending(self, client_order_id: str) -> None:
        """Just before the HTTP call: from here on the broker may know the order. Committed."""
        now = now_ms()
        self._db.execute(
            "UPDATE orders SET phase = ?, sent_ms = COALESCE(sent_ms, ?), updated_ms = ?"
            " WHERE client_order_id = ? AND phase IN ('intent', 'unknown', 'sending')",
            (Phase.SENDING, now, now, client_order_id),
        )
        self._db.commit()

    def mark_unknown(self, client_order_id: str, reason: str) -> None:
        now = now_ms()
        self._db.execute(
            "UPDATE orders SET phase = ?, reason = ?, updated_ms = ?"
            " WHERE client_order_id = ? AND phase IN ('intent', 'sending', 'unknown')",
            (Phase.UNKNOWN, reason, now, client_order_id),
        )
        self._db.commit()

    def transition(
        self,
        client_order_id: str,
        status: OrderStatus,
        *,
        broker_order_id: str | None = None,
        filled_qty: Decimal | None = None,
        filled_avg_price: Decimal | None = None,
        reason: str | None = None,
        commit: bool = True,
    ) -> OrderEvent | None:
        """Move an order forward; returns the order event queued, or None when nothing changed
        (a repeat, or a step backwards, which is ignored)."""
        order = self.get(client_order_id)
        if order is None:
            return None
        new_filled = order.filled_qty if filled_qty is None else filled_qty
        broker_id = broker_order_id or order.broker_order_id
        if not advances(order.status, order.filled_qty, status, new_filled):
            if broker_id and not order.broker_order_id:  # learn the id even without a change
                self._db.execute(
                    "UPDATE orders SET broker_order_id = ?, phase = CASE WHEN phase = 'final'"
                    " THEN phase ELSE 'acked' END WHERE client_order_id = ?",
                    (broker_id, client_order_id),
                )
                if commit:
                    self._db.commit()
            return None
        if new_filled > order.filled_qty and status in (OrderStatus.NEW, OrderStatus.ACCEPTED):
            status = OrderStatus.PARTIALLY_FILLED
        now = now_ms()
        phase = Phase.FINAL if status.final else Phase.ACKED if broker_id else order.phase
        with self._atomic():  # the state and its order event, both or neither
            self._db.execute(
                "UPDATE orders SET status = ?, phase = ?, broker_order_id = ?, filled_qty = ?,"
                " filled_avg_price = COALESCE(?, filled_avg_price), reason = COALESCE(?, reason),"
                " updated_ms = ? WHERE client_order_id = ?",
                (
                    status.value,
                    phase,
                    broker_id,
                    str(new_filled),
                    text(filled_avg_price),
                    reason,
                    now,
                    client_order_id,
                ),
            )
            updated = self.get(client_order_id)
            assert updated is not None
            event = self._emit_order(updated, now)
        if commit:
            self._db.commit()
        return event
