"""The store's ``orders`` table: intents, denials and each order's way to a final state.

One row per ``client_order_id``. The intent is written and committed (fsync) before the HTTP
call, so a restart finds every order that may have reached the broker and looks it up instead of
guessing. Denied signals are rows too, so a repeated signal is never decided twice. Each change
of state and its ``trading.orders`` record are one transaction: the event is built (and so
validated) before the row is written, and a failure rolls both back.
"""

from __future__ import annotations

from decimal import Decimal

from flinktrade import events
from flinktrade.events import OrderEvent, OrderSpec, OrderStatus, Side, now_ms
from flinktrade.execution.store.outbox import OutboxTable
from flinktrade.execution.store.records import (
    Phase,
    StoredOrder,
    advances,
    order_event,
    order_from_row,
    spec_text,
    text,
)


class OrderTable(OutboxTable):
    """Orders by ``client_order_id``: read, stored as intents or denials, moved forward."""

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

    def add_intent(
        self,
        *,
        client_order_id: str,
        signal: events.Signal | None,
        symbol: str,
        side: Side,
        qty: Decimal | None,
        notional: Decimal | None,
        price: Decimal | None,
        strategy: str | None = None,
        spec: OrderSpec | None = None,
        parent: str | None = None,
        leg: str | None = None,
        exits: str | None = None,
        fill_mark: int | None = None,
        commit: bool = True,
    ) -> StoredOrder:
        """Store an order before it is sent, with its ``pending`` order event, and commit: after
        this returns both are durable; if it raises, neither was written. ``spec`` is the order
        asked for (None: plain market); an exit names its entry (``parent``) and ``leg``; an
        entry whose exits the executor places itself has ``exits="pending"``; an order that waits
        for exits to be cancelled keeps its ``fill_mark`` (``cancels``). With ``commit=False``
        the caller commits (several intents in one transaction)."""
        now = now_ms()
        order = StoredOrder(
            client_order_id=client_order_id,
            signal_id=signal.id if signal else None,
            strategy=signal.strategy if signal else strategy,
            symbol=symbol,
            side=side,
            qty=qty,
            notional=notional,
            price=price,
            status=OrderStatus.PENDING,
            phase=Phase.INTENT,
            broker_order_id=None,
            filled_qty=Decimal(0),
            filled_avg_price=None,
            rule=None,
            reason=None,
            broker=self.broker,
            created_ms=now,
            sent_ms=None,
            updated_ms=now,
            signal_ts=min(signal.ts, signal.ingest_ts) if signal else None,
            spec=spec,
            parent=parent,
            leg=leg,
            exits=exits,
            fill_mark=fill_mark,
        )
        event = order_event(order, now)  # raises before anything is written
        with self._atomic():
            self._db.execute(
                "INSERT INTO orders (client_order_id, signal_id, strategy, symbol, side, qty,"
                " notional, price, order_type, status, phase, broker, created_ms, updated_ms,"
                " signal_ts, spec, parent, leg, exits, fill_mark)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    order.client_order_id,
                    order.signal_id,
                    order.strategy,
                    symbol,
                    side.value,
                    text(qty),
                    text(notional),
                    text(price),
                    order.order.type.value,
                    order.status.value,
                    order.phase,
                    self.broker,
                    now,
                    now,
                    order.signal_ts,
                    spec_text(spec),
                    parent,
                    leg,
                    exits,
                    fill_mark,
                ),
            )
            self._outbox(self.topics["orders"], event)
        if commit:
            self._db.commit()
        return order

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

    def record_denial(
        self,
        *,
        client_order_id: str,
        signal: events.Signal,
        qty: Decimal | None,
        rule: str,
        reason: str,
        spec: OrderSpec | None = None,
    ) -> OrderEvent:
        """A signal refused by a risk check: stored (so a repeat is not decided again) and
        queued as a ``denied`` order event, both or neither. Not committed: call ``commit()``."""
        now = now_ms()
        denied = StoredOrder(
            client_order_id=client_order_id,
            signal_id=signal.id,
            strategy=signal.strategy,
            symbol=signal.symbol,
            side=signal.side,
            qty=qty,
            notional=None,
            price=signal.price,
            status=OrderStatus.DENIED,
            phase=Phase.FINAL,
            broker_order_id=None,
            filled_qty=Decimal(0),
            filled_avg_price=None,
            rule=rule,
            reason=reason,
            broker=self.broker,
            created_ms=now,
            sent_ms=None,
            updated_ms=now,
            spec=spec,
        )
        event = order_event(denied, now)  # raises before anything is written
        with self._atomic():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO orders (client_order_id, signal_id, strategy, symbol, side,"
                " qty, price, status, phase, rule, reason, broker, created_ms, updated_ms, spec,"
                " order_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    client_order_id,
                    signal.id,
                    signal.strategy,
                    signal.symbol,
                    signal.side.value,
                    text(qty),
                    text(signal.price),
                    OrderStatus.DENIED.value,
                    Phase.FINAL,
                    rule,
                    reason,
                    self.broker,
                    now,
                    now,
                    spec_text(spec),
                    denied.order.type.value,
                ),
            )
            if cursor.rowcount:
                self._outbox(self.topics["orders"], event)
        return event

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
