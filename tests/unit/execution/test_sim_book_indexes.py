"""The simulated broker's book looks a symbol's waiting orders up by index: it does so at every
price it sees (once per trade), and a scan of every order the book ever held grew with each demo
on one state folder (docs/benchmarks.md, session 34)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from flinktrade.execution.brokers.sim_book import WAITING_MARKET_ORDERS, SimBook

OLD_BOOK = """
CREATE TABLE orders (
    id TEXT PRIMARY KEY, client_order_id TEXT UNIQUE NOT NULL, symbol TEXT NOT NULL,
    side TEXT NOT NULL, qty TEXT NOT NULL, status TEXT NOT NULL,
    filled_qty TEXT NOT NULL DEFAULT '0', filled_avg_price TEXT, created_ms INTEGER NOT NULL
);
INSERT INTO orders (id, client_order_id, symbol, side, qty, status, created_ms)
    VALUES ('o1', 'c1', 'AAPL', 'buy', '1', 'new', 1);
"""
"""A book written before the order model: no ``spec``, ``parent`` or ``leg`` columns, no index."""


def _plan(path: Path, query: str, *args: str) -> str:
    with sqlite3.connect(path) as db:
        return " ".join(str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {query}", args))


@pytest.mark.parametrize("old", [False, True], ids=["new book", "book written before"])
def test_waiting_orders_and_legs_are_found_by_index(tmp_path: Path, old: bool) -> None:
    path = tmp_path / "sim_broker.sqlite"
    if old:
        with sqlite3.connect(path) as db:
            db.executescript(OLD_BOOK)
        assert "SCAN orders" in _plan(path, "SELECT id FROM orders WHERE symbol = ?", "AAPL")
    SimBook(path, Decimal(100_000))
    assert "USING INDEX orders_waiting" in _plan(path, WAITING_MARKET_ORDERS, "AAPL")
    assert "USING INDEX orders_parent" in _plan(
        path, "SELECT id FROM orders WHERE parent = ?", "c1"
    )
