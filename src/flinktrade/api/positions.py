"""Positions with P&L, from the executor's fills (average cost) and the last prices seen.

``PositionBook`` keeps the running books and reads the order store's ``fills`` table
incrementally: each call reads only the fills recorded since the previous call (by SQLite
``rowid``, so in the order the executor recorded them), so a dashboard polling every few seconds
costs the new fills, not the whole history. Quantities held are the books' plus the store's
``adjustments`` (positions adopted from the broker), as ``OrderStore.positions`` counts them. The
books start over when the store file is replaced.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from flinktrade.events import Side

log = logging.getLogger(__name__)

ZERO = Decimal(0)
BATCH = 10_000
"""Fills read per query while catching up."""


@dataclass
class _Book:
    qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    realized: Decimal = ZERO
    last_fill: Decimal = ZERO

    def apply(self, side: Side, qty: Decimal, price: Decimal, commission: Decimal) -> None:
        signed = qty if side == Side.BUY else -qty
        self.last_fill = price
        self.realized -= commission
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            total = self.qty + signed
            self.avg_price = (self.avg_price * abs(self.qty) + price * abs(signed)) / abs(total)
            self.qty = total
            return
        closing = min(abs(signed), abs(self.qty))
        direction = 1 if self.qty > 0 else -1
        self.realized += (price - self.avg_price) * closing * direction
        self.qty += signed
        if self.qty == 0:
            self.avg_price = ZERO
        elif (self.qty > 0) != (direction > 0):  # went through zero: the rest opens at this price
            self.avg_price = price


class PositionBook:
    """Running positions over the order store at ``path`` (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._books: dict[str, _Book] = {}
        self._after = 0
        """The rowid of the last fill applied."""
        self._inode: int | None = None
        self.fills_read = 0
        """Fills read from the store over this object's life (each fill once)."""

    def rows(self, last_prices: Mapping[str, Decimal]) -> list[dict[str, Any]]:
        """One row per symbol held or traded: quantity held, average cost, last price, market
        value, unrealized and realized P&L (after commissions). Money as strings."""
        if not self.path.exists():
            return []
        with self._lock:
            db = sqlite3.connect(self.path, timeout=10.0)
            try:
                self._catch_up(db)
                adjustments = {
                    s: Decimal(q) for s, q in db.execute("SELECT symbol, qty FROM adjustments")
                }
            except sqlite3.OperationalError:  # an empty file: the executor has not set it up yet
                return []
            finally:
                db.close()
            held = {s: b.qty + adjustments.pop(s, ZERO) for s, b in self._books.items()}
            held.update(adjustments)
            return _rows(self._books, {s: q for s, q in held.items() if q != 0}, last_prices)

    def _catch_up(self, db: sqlite3.Connection) -> None:
        inode = self.path.stat().st_ino
        (newest,) = db.execute("SELECT coalesce(max(rowid), 0) FROM fills").fetchone()
        if inode != self._inode or newest < self._after:  # a new store: start over
            self._books, self._after, self._inode = {}, 0, inode
        while True:
            rows = db.execute(
                "SELECT rowid, symbol, side, qty, price, commission FROM fills"
                " WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (self._after, BATCH),
            ).fetchall()
            for rowid, symbol, side, qty, price, commission in rows:
                self._after = rowid
                try:
                    values = Side(side), Decimal(qty), Decimal(price), Decimal(commission)
                except (ValueError, ArithmeticError):
                    log.warning("positions: fill %s of %s is unreadable; skipped", rowid, symbol)
                    continue
                self._books.setdefault(symbol, _Book()).apply(*values)
            self.fills_read += len(rows)
            if len(rows) < BATCH:
                return


def _rows(
    books: Mapping[str, _Book], held: Mapping[str, Decimal], last_prices: Mapping[str, Decimal]
) -> list[dict[str, Any]]:
    rows = []
    for symbol in sorted(set(books) | set(held)):
        book = books.get(symbol, _Book())
        qty = held.get(symbol, ZERO)
        last = last_prices.get(symbol, book.last_fill or None)
        unrealized = (last - book.avg_price) * qty if last is not None and qty else ZERO
        rows.append(
            {
                "symbol": symbol,
                "qty": str(qty),
                "avg_price": str(round(book.avg_price, 6)),
                "last_price": None if last is None else str(last),
                "market_value": None if last is None else str(round(last * qty, 2)),
                "unrealized_pnl": str(round(unrealized, 2)),
                "realized_pnl": str(round(book.realized, 2)),
            }
        )
    return rows
