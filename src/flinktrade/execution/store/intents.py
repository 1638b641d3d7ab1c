"""The store's new order rows: intents, written before any request, and denials.

The intent is written and committed (fsync) before the HTTP call, so a restart finds every order
that may have reached the broker and looks it up instead of guessing. Denied signals are rows too,
so a repeated signal is never decided twice. Each row and its ``pending`` or ``denied``
``trading.orders`` record are one transaction: the event is built (and so validated) before the
row is written, and a failure rolls both back.
"""

from __future__ import annotations

from decimal import Decimal

from flinktrade import events
from flinktrade.events import OrderEvent, OrderSpec, OrderStatus, Side, now_ms
from flinktrade.execution.store.outbox import OutboxTable
from flinktrade.execution.store.records import Phase, StoredOrder, order_event, spec_text, text


class IntentTable(OutboxTable):
    """Orders stored before they are sent (``add_intent``) and signals denied (``record_denial``)."""

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
        replaces: str | None = None,
        commit: bool = True,
    ) -> StoredOrder:
        """Store an order before it is sent, with its ``pending`` order event, and commit: after
        this returns both are durable; if it raises, neither was written. ``spec`` is the order
        asked for (None: plain market); an exit names its entry (``parent``) and ``leg``; an
        entry whose exits the executor places itself has ``exits="pending"``; an order that waits
        for exits to be cancelled keeps its ``fill_mark`` (``cancels``); an exit that replaces
        another names it (``replaces``). With ``commit=False``
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
            replaces=replaces,
        )
        event = order_event(order, now)  # raises before anything is written
        with self._atomic():
            self._db.execute(
                "INSERT INTO orders (client_order_id, signal_id, strategy, symbol, side, qty,"
                " notional, price, order_type, status, phase, broker, created_ms, updated_ms,"
                " signal_ts, spec, parent, leg, exits, fill_mark, replaces)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    replaces,
                ),
            )
            self._outbox(self.topics["orders"], event)
        if commit:
            self._db.commit()
        return order

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
