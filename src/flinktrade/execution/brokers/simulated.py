"""A simulated broker: orders fill at the prices seen after them, with costs.

Prices come from ``market.trades`` (the trade price) and ``analytics.bars`` (the close), read from
their end when the broker starts. What orders are matched against is ``execution.sim.match_on``:

- ``trades`` (the default): a simple market order fills at the first price for its symbol that
  arrives after the order, moved against us by ``slippage_bps``, with a commission of
  ``commission_per_share`` x qty (at least ``commission_min``). Every other order (limit, stop,
  stop-limit, trailing stop; brackets, OTO, OCO and their legs) is matched by the one matching
  model, ``flinktrade.matching`` (the backtester's), on the same prices and costs: each price is a
  trade there, timed by its event time (never earlier than the last one seen, so an order only
  meets prices that arrive after it).
- ``bars``: each bar read (a record with open, high, low and close) is matched whole by the
  matching model (``Book.on_bar``), exactly as the backtester matches its bars; trades only move
  the last price. Every order goes through the model, a simple market order too (it fills at the
  open of the first bar after it, the backtester's ``next_open``). An order placed after a bar was
  read first meets the next bar; fills are stamped with the bar's start (event time).

``execution.sim.market_hours`` (``regular``, ``extended`` or ``all``, the backtester's
``--market-hours``) leaves the prices (bars by their start) outside those sessions of the market
calendar in effect (``calendars.current``: the bundled one, or the one refreshed from Alpaca)
unmatched, as the backtester leaves such bars out.

The legs the model creates (a bracket's exits, an OCO's stop) are orders of their own here,
reported in their parent's ``legs``. Its book (orders, positions, cash)
is a SQLite file of its own under the state folder (created 0600), so like a real broker it
outlives an executor restart and reconciliation has something to compare with; working orders of
the matching model are put back into it at start (a trailing stop's best price restarts there).
A notional order is refused (this broker takes a qty).

The broker is in parts, each a layer of the one before: ``sim_book`` (the SQLite book),
``sim_matching`` (the matching model kept in step with it), ``sim_prices`` (the price feed) and
this module (the ``Broker`` methods).

``cancel`` cancels a working order through the matching model (its group with it). ``replace``
cancels an open order (a top-level one: not a leg) and places a new one under the new id with the
same spec and the new fields (checked first: a replace refused changes nothing); the old one is
reported ``replaced`` (an OCO's or bracket's legs are made anew for the new order).
``submit(request, may_send)`` asks ``may_send()`` right before taking the order: a reason means
"do not send" and the order is refused with it (``OrderRefused``), as brokers/base.py agrees.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from flinktrade import bus
from flinktrade.events import PLAIN_ORDER, OrderStatus
from flinktrade.execution.brokers.base import (
    Account,
    Broker,
    BrokerOrder,
    OrderExists,
    OrderRefused,
    OrderRequest,
    ReconnectHandler,
    SendGuard,
    TradeUpdate,
    UpdateHandler,
)
from flinktrade.execution.brokers.sim_book import COLUMNS
from flinktrade.execution.brokers.sim_matching import now_ms, replaced_spec, simple_market
from flinktrade.execution.brokers.sim_prices import SimPrices
from flinktrade.execution.store.records import spec_from_text, spec_text
from flinktrade.matching import Order, Status, Update
from flinktrade.orders import Leg, order_problem


class SimulatedBroker(SimPrices, Broker):
    """The ``sim`` broker: the ``Broker`` methods over the book, the matching model and the
    price feed of its parts."""

    name = "sim"
    paper = True
    fractional = True

    def submit(self, request: OrderRequest, may_send: SendGuard | None = None) -> BrokerOrder:
        reason = None if may_send is None else may_send()
        if reason is not None:
            raise OrderRefused(reason)
        problem = self.refusal(request)
        if problem is not None:
            raise OrderRefused(problem)
        assert request.qty is not None  # refusal() refused a notional
        matched = self.bars or not simple_market(request.spec)
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO orders (id, client_order_id, symbol, side, qty, status,"
                    " created_ms, spec, leg) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        str(uuid.uuid4()),
                        request.client_order_id,
                        request.symbol,
                        request.side.value,
                        str(request.qty),
                        OrderStatus.NEW.value,
                        time.time_ns() // 1_000_000,
                        spec_text(request.spec) if matched else None,
                        (Leg.TAKE_PROFIT if request.spec.oco else Leg.ENTRY).value,
                    ),
                )
            except sqlite3.IntegrityError:
                raise OrderExists("client_order_id must be unique") from None
            if matched:
                entry = Order.of(
                    request.client_order_id,
                    request.symbol,
                    request.side,
                    request.spec,
                    float(request.qty),
                )
                changes = self.matching.submit(entry, self._last_ts)
                refused = [
                    c for c in changes if isinstance(c, Update) and c.status is Status.REJECTED
                ]
                if refused:
                    self._db.rollback()
                    raise OrderRefused(f"simulated broker: {refused[0].reason}")
                updates = self._apply(changes)
            else:
                updates = []
            self._db.commit()
            order = self.get_order(request.client_order_id)
        self._send(updates)
        assert order is not None
        return order

    @staticmethod
    def refusal(request: OrderRequest) -> str | None:
        """Why this broker does not take ``request`` (None if it does): it needs a qty > 0 (no
        notional); every type and class of the order model is taken."""
        if request.qty is None or request.qty <= 0:
            return "the simulated broker takes orders with qty > 0 (no notional)"
        return None

    def cancel(self, client_order_id: str) -> bool:
        """Cancel an open order (and the rest of its group, as the matching model does); False
        when it is final or unknown. The ``canceled`` updates are pushed like any other."""
        with self._lock:
            order = self.get_order(client_order_id)
            if order is None or order.status.final:
                return False
            changes = self.matching.cancel(client_order_id, self._last_ts)
            if changes:
                updates = self._apply(changes)
            else:  # a plain market order waiting for its price: not in the matching model
                self._set_status(client_order_id, OrderStatus.CANCELED.value)
                canceled = self.get_order(client_order_id)
                assert canceled is not None
                updates = [TradeUpdate(event="canceled", order=canceled, ts=now_ms())]
            self._db.commit()
        self._send(updates)
        return True

    def replace(
        self,
        client_order_id: str,
        new_client_order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        trail: Decimal | None = None,
    ) -> BrokerOrder:
        """Cancel ``client_order_id`` and place ``new_client_order_id`` with its spec and the new
        fields (qty: the new order's; by default what the old one had left), the old reported
        ``replaced``. Refused, with nothing changed, when the old order is not open or is a leg,
        or the new fields do not fit its type."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {COLUMNS} FROM orders WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
            old = None if row is None else self._order(row, legs=False)
            if old is None or old.status.final or old.qty is None:
                raise OrderRefused(f"replace of {client_order_id}: the order is not open")
            if row[10] is not None:
                raise OrderRefused("the simulated broker replaces top-level orders, not legs")
            if self.get_order(new_client_order_id) is not None:
                raise OrderExists("client_order_id must be unique")
            spec = spec_from_text(row[9]) or PLAIN_ORDER
            request = OrderRequest(
                new_client_order_id,
                old.symbol,
                old.side,
                qty if qty is not None else old.qty - old.filled_qty,
                replaced_spec(spec, limit_price, stop_price, trail),
            )
            problem = self.refusal(request) or order_problem(request.spec)
            if problem is not None:
                raise OrderRefused(f"replace of {client_order_id}: {problem}")
            changes = self.matching.cancel(client_order_id, self._last_ts, "replaced")
            updates = self._apply(changes)
            self._set_status(client_order_id, OrderStatus.CANCELED.value)
            self._db.commit()
            ended = self.get_order(client_order_id)
            assert ended is not None
            updates = [u for u in updates if u.order.client_order_id != client_order_id]
            updates.insert(0, TradeUpdate(event="replaced", order=ended, ts=now_ms()))
        self._send(updates)
        return self.submit(request)

    def account(self) -> Account:
        with self._lock:
            cash = Decimal(self._get("cash") or "0")
            held = self.positions()
            equity = cash + sum(
                (q * self.prices.get(s, Decimal(0)) for s, q in held.items()), Decimal(0)
            )
            if any(s not in self.prices for s in held):  # unpriced holdings: at fill prices
                equity = cash + self._cost_of(held, self.prices)
            today = datetime.now(tz=UTC).date().isoformat()
            if self._get("day") != today:
                self._set("day", today)
                self._set("day_start_equity", str(equity))
                self._db.commit()
            start = Decimal(self._get("day_start_equity") or str(equity))
        return Account(equity=equity, last_equity=start, cash=cash)

    def market_open(self) -> bool:
        return True  # the simulated market trades whenever prices flow

    def start_updates(self, on_update: UpdateHandler, on_reconnect: ReconnectHandler) -> None:
        self._on_update = on_update
        topics = list(self.config.price_topics)
        bus.ensure_topics(self.settings.kafka, topics)
        self._thread = threading.Thread(
            target=self._follow_prices, args=(topics,), name="sim-broker-prices", daemon=True
        )
        self._thread.start()
        on_reconnect()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            self._db.close()
