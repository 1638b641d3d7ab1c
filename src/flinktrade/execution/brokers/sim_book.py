"""The simulated broker's book: its orders, positions and cash in a SQLite file of its own.

Like a real broker's account it outlives an executor restart, so reconciliation has something to
compare with. The file is created 0600 under the state folder; a book written before the order
model gets its columns on open (NULL: a simple market order). Callers hold ``_lock`` around a
read-modify-write and commit themselves; this part only reads and writes rows.
"""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from flinktrade.events import PLAIN_ORDER, OrderStatus, Side
from flinktrade.execution.brokers.base import BrokerOrder
from flinktrade.execution.store import create_private
from flinktrade.execution.store.records import spec_from_text

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
    created_ms INTEGER NOT NULL,
    spec TEXT,
    parent TEXT,
    leg TEXT
);
CREATE TABLE IF NOT EXISTS positions (symbol TEXT PRIMARY KEY, qty TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
COLUMNS = (
    "id, client_order_id, symbol, side, qty, status, filled_qty, filled_avg_price, created_ms,"
    " spec, parent, leg"
)
"""The order columns in the order ``SimBook._order`` reads a row."""
_ADDED = (("spec", "TEXT"), ("parent", "TEXT"), ("leg", "TEXT"))
"""Columns added with the order model: a book written before gets them on open (NULL: a simple
market order)."""


WAITING_MARKET_ORDERS = (
    f"SELECT {COLUMNS} FROM orders WHERE symbol = ? AND spec IS NULL"
    " AND status IN ('new', 'partially_filled')"
)
"""A symbol's simple market orders waiting for a price: asked at every price the simulated
broker sees (``SimPrices``, once per trade)."""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS orders_waiting ON orders (symbol, status)",
    "CREATE INDEX IF NOT EXISTS orders_parent ON orders (parent)",
)
"""Without the first, ``WAITING_MARKET_ORDERS`` scanned every order the book ever held, once per
trade: ~340 us at 2,700 orders (a demo state folder after ~20 demos; 0.7 of a core at the demo's
2,000 trades/s, and growing with every demo), 18 us with it (docs/benchmarks.md, session 34). The
second serves an order's legs (``_order``)."""


class SimBook:
    """Orders (with their legs), positions and cash of the simulated broker, in SQLite."""

    def __init__(self, path: Path, starting_cash: Decimal) -> None:
        create_private(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(orders)")}
        for name, kind in _ADDED:
            if name not in columns:
                self._db.execute(f"ALTER TABLE orders ADD COLUMN {name} {kind}")
        for index in _INDEXES:  # after the columns they name exist (a book written before)
            self._db.execute(index)
        if self._get("cash") is None:
            self._set("cash", str(starting_cash))
        self._db.commit()

    def _get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    def _order(self, row: tuple[Any, ...], *, legs: bool = True) -> BrokerOrder:
        oid, coid, symbol, side, qty, status, filled, avg, _created, spec_json, _parent, _leg = row
        spec = spec_from_text(spec_json) or PLAIN_ORDER
        children: tuple[BrokerOrder, ...] = ()
        if legs:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM orders WHERE parent = ? ORDER BY created_ms, id", (coid,)
            ).fetchall()
            children = tuple(self._order(r, legs=False) for r in rows)
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
            type=spec.type.value,
            order_class=spec.order_class.value,
            legs=children,
            limit_price=spec.limit_price,
            stop_price=spec.stop_price,
        )

    def _set_status(self, client_order_id: str, status: str) -> None:
        self._db.execute(
            "UPDATE orders SET status = ? WHERE client_order_id = ?", (status, client_order_id)
        )

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {COLUMNS} FROM orders WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
            return None if row is None else self._order(row)

    def open_orders(self) -> list[BrokerOrder]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM orders WHERE status IN ('new', 'partially_filled')"
            ).fetchall()
            return [self._order(r, legs=False) for r in rows]

    def _open_market_orders(self, symbol: str) -> list[BrokerOrder]:
        """The simple market orders of ``symbol`` waiting for a price (not in the matching model)."""
        with self._lock:
            rows = self._db.execute(WAITING_MARKET_ORDERS, (symbol,)).fetchall()
            return [self._order(r, legs=False) for r in rows]

    def positions(self) -> dict[str, Decimal]:
        with self._lock:
            rows = self._db.execute("SELECT symbol, qty FROM positions").fetchall()
        return {s: Decimal(q) for s, q in sorted(rows) if Decimal(q) != 0}

    def _position(self, symbol: str) -> Decimal:
        row = self._db.execute("SELECT qty FROM positions WHERE symbol = ?", (symbol,)).fetchone()
        return Decimal(row[0]) if row else Decimal(0)

    def _book(self, symbol: str, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> Decimal:
        """Book one execution into cash and the symbol's position; the new position."""
        sign = Decimal(1) if side is Side.BUY else Decimal(-1)
        cash = Decimal(self._get("cash") or "0") - sign * qty * price - fee
        self._set("cash", str(cash))
        position = self._position(symbol) + sign * qty
        self._db.execute(
            "INSERT OR REPLACE INTO positions (symbol, qty) VALUES (?, ?)", (symbol, str(position))
        )
        return position

    def _cost_of(self, held: dict[str, Decimal], prices: dict[str, Decimal]) -> Decimal:
        """The value of ``held`` at ``prices``, a symbol without one at its last fill price."""
        total = Decimal(0)
        for symbol, qty in held.items():
            row = self._db.execute(
                "SELECT filled_avg_price FROM orders WHERE symbol = ? AND filled_avg_price"
                " IS NOT NULL ORDER BY created_ms DESC LIMIT 1",
                (symbol,),
            ).fetchone()
            price = prices.get(symbol) or (Decimal(row[0]) if row else Decimal(0))
            total += qty * price
        return total
