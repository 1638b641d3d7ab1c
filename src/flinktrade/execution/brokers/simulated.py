"""A simulated broker: market orders fill at the next price seen after them, with costs.

Simple market orders only (whole or fractional shares): any other type, an order with exits or a
notional is refused with the reason (never filled as a market order).

Prices come from ``market.trades`` (the trade price) and ``analytics.bars`` (the close), read from
their end when the broker starts; an order fills at the first price for its symbol that arrives
after the order, moved against us by ``slippage_bps``, with a commission of
``commission_per_share`` x qty (at least ``commission_min``). Its book (orders, positions, cash)
is a SQLite file of its own under the state folder (created 0600), so like a real broker it
outlives an executor restart and reconciliation has something to compare with.

``submit(request, may_send)`` asks ``may_send()`` right before taking the order: a reason means
"do not send" and the order is refused with it (``OrderRefused``), as brokers/base.py agrees.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flinktrade import bus
from flinktrade.bus import TopicPartition
from flinktrade.config import Settings
from flinktrade.errors import TransientError
from flinktrade.events import OrderClass, OrderStatus, OrderType, Side
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
from flinktrade.execution.market import parse_price
from flinktrade.execution.store import create_private

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    client_order_id TEXT UNIQUE NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty TEXT NOT NULL,
    status TEXT NOT NULL,
    filled_qty TEXT NOT NULL DEFAULT '0',
    filled_avg_price TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (symbol TEXT PRIMARY KEY, qty TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_PRICE_STEP = Decimal("0.000001")


class SimulatedBroker(Broker):
    name = "sim"
    paper = True
    fractional = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = settings.execution.sim
        path = settings.execution.sim_store_path(settings.state_dir)
        create_private(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        if self._get("cash") is None:
            self._set("cash", str(self.config.starting_cash))
        self._db.commit()
        self.prices: dict[str, Decimal] = {}
        self._on_update: UpdateHandler | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ book keeping

    def _get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    @staticmethod
    def _order(row: tuple[Any, ...]) -> BrokerOrder:
        oid, coid, symbol, side, qty, status, filled, avg, _created = row
        return BrokerOrder(
            id=oid,
            client_order_id=coid,
            symbol=symbol,
            side=Side(side),
            qty=Decimal(qty),
            status=OrderStatus(status),
            filled_qty=Decimal(filled),
            filled_avg_price=None if avg is None else Decimal(avg),
            broker_status=status,
        )

    # ------------------------------------------------------------------ Broker

    def submit(self, request: OrderRequest, may_send: SendGuard | None = None) -> BrokerOrder:
        reason = None if may_send is None else may_send()
        if reason is not None:
            raise OrderRefused(reason)
        problem = self.refusal(request)
        if problem is not None:
            raise OrderRefused(problem)
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO orders (id, client_order_id, symbol, side, qty, status,"
                    " created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        str(uuid.uuid4()),
                        request.client_order_id,
                        request.symbol,
                        request.side.value,
                        str(request.qty),
                        OrderStatus.NEW.value,
                        time.time_ns() // 1_000_000,
                    ),
                )
            except sqlite3.IntegrityError:
                raise OrderExists("client_order_id must be unique") from None
            self._db.commit()
            order = self.get_order(request.client_order_id)
        assert order is not None
        return order

    @staticmethod
    def refusal(request: OrderRequest) -> str | None:
        """Why this broker does not take ``request`` (None if it does): it fills simple market
        orders for a quantity; any other type, an exit class or a notional is refused, never
        filled as a market order."""
        spec = request.spec
        if spec.type is not OrderType.MARKET or spec.order_class is not OrderClass.SIMPLE:
            kind = spec.type.value if spec.order_class is OrderClass.SIMPLE else spec.order_class
            return (
                f"the simulated broker fills simple market orders only; a {kind} order is "
                "refused (it is not filled as a market order)"
            )
        if request.qty is None or request.qty <= 0:
            return "the simulated broker takes market orders with qty > 0 (no notional)"
        return None

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
        return None if row is None else self._order(row)

    def open_orders(self) -> list[BrokerOrder]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM orders WHERE status IN ('new', 'partially_filled')"
            ).fetchall()
        return [self._order(r) for r in rows]

    def positions(self) -> dict[str, Decimal]:
        with self._lock:
            rows = self._db.execute("SELECT symbol, qty FROM positions").fetchall()
        return {s: Decimal(q) for s, q in sorted(rows) if Decimal(q) != 0}

    def account(self) -> Account:
        with self._lock:
            cash = Decimal(self._get("cash") or "0")
            held = self.positions()
            equity = cash + sum(
                (q * self.prices.get(s, Decimal(0)) for s, q in held.items()), Decimal(0)
            )
            if any(s not in self.prices for s in held):  # unpriced holdings: at fill prices
                equity = cash + self._cost_of(held)
            today = datetime.now(tz=UTC).date().isoformat()
            if self._get("day") != today:
                self._set("day", today)
                self._set("day_start_equity", str(equity))
                self._db.commit()
            start = Decimal(self._get("day_start_equity") or str(equity))
        return Account(equity=equity, last_equity=start, cash=cash)

    def _cost_of(self, held: dict[str, Decimal]) -> Decimal:
        total = Decimal(0)
        for symbol, qty in held.items():
            row = self._db.execute(
                "SELECT filled_avg_price FROM orders WHERE symbol = ? AND filled_avg_price"
                " IS NOT NULL ORDER BY created_ms DESC LIMIT 1",
                (symbol,),
            ).fetchone()
            price = self.prices.get(symbol) or (Decimal(row[0]) if row else Decimal(0))
            total += qty * price
        return total

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

    # ------------------------------------------------------------------ prices and fills

    def _follow_prices(self, topics: list[str]) -> None:
        consumer = bus.make_consumer(
            self.settings.kafka, bus.unique_group_id("flinktrade-sim-broker"), auto_commit=False
        )
        try:
            assignment: list[TopicPartition] = []
            for topic in topics:
                assignment.extend(bus.end_offsets(consumer, topic))
            consumer.assign(assignment)
            while not self._stop.is_set():
                for msg in consumer.consume(1000, timeout=0.2):
                    if msg.error() is not None:
                        continue
                    self._on_price(msg.value() or b"")
        except TransientError as exc:
            log.error("simulated broker: price feed failed: %s", exc)
        finally:
            consumer.close()

    def _on_price(self, raw: bytes) -> None:
        quote = parse_price(raw)  # the executor's own parser: any hostile record is None
        if quote is None:
            return
        symbol, price = quote.symbol, quote.price
        self.prices[symbol] = price
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM orders WHERE symbol = ? AND status IN ('new', 'partially_filled')",
                (symbol,),
            ).fetchall()
        for row in rows:
            self._fill(self._order(row), price)

    def _fill(self, order: BrokerOrder, market: Decimal) -> None:
        qty = (order.qty or Decimal(0)) - order.filled_qty
        if qty <= 0:
            return
        slip = market * self.config.slippage_bps / Decimal(10_000)
        price = (market + slip if order.side == Side.BUY else market - slip).quantize(_PRICE_STEP)
        commission = max(self.config.commission_min, self.config.commission_per_share * qty)
        sign = Decimal(1) if order.side == Side.BUY else Decimal(-1)
        with self._lock:
            cash = Decimal(self._get("cash") or "0") - sign * qty * price - commission
            self._set("cash", str(cash))
            row = self._db.execute(
                "SELECT qty FROM positions WHERE symbol = ?", (order.symbol,)
            ).fetchone()
            position = (Decimal(row[0]) if row else Decimal(0)) + sign * qty
            self._db.execute(
                "INSERT OR REPLACE INTO positions (symbol, qty) VALUES (?, ?)",
                (order.symbol, str(position)),
            )
            self._db.execute(
                "UPDATE orders SET status = 'filled', filled_qty = qty, filled_avg_price = ?"
                " WHERE id = ?",
                (str(price), order.id),
            )
            self._db.commit()
            filled = self.get_order(order.client_order_id)
        assert filled is not None
        if self._on_update is not None:
            self._on_update(
                TradeUpdate(
                    event="fill",
                    order=filled,
                    execution_id=str(uuid.uuid4()),
                    price=price,
                    qty=qty,
                    position_qty=position,
                    ts=time.time_ns() // 1_000_000,
                    commission=commission,
                )
            )
