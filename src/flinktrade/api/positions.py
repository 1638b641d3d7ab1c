"""Positions with P&L, from the executor's fills (average cost) and the last prices seen.

``FillReader`` reads the order store's ``fills`` table incrementally: each call reads only the
fills recorded since the previous call (by SQLite ``rowid``, so in the order the executor recorded
them), so a dashboard polling every few seconds costs the new fills, not the whole history; it
starts over when the store file is replaced. ``PositionBook`` keeps the running books per symbol
over it, with the position arithmetic of ``flinktrade.books`` (``strategies.StrategyBooks`` keeps
the per-strategy ledger over another). Quantities held are the books'
plus the store's ``adjustments`` (positions adopted from the broker), as ``OrderStore.positions``
counts them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from flinktrade.books import Position
from flinktrade.events import Side

log = logging.getLogger(__name__)

ZERO = Decimal(0)
BATCH = 10_000
"""Fills read per query while catching up."""


@dataclass
class _Book:
    """The account's position in one symbol (``books.Position``'s arithmetic) and its last fill."""

    position: Position = field(default_factory=Position)
    last_fill: Decimal = ZERO

    @property
    def qty(self) -> Decimal:
        return self.position.qty

    def apply(self, side: Side, qty: Decimal, price: Decimal, commission: Decimal) -> None:
        self.position.apply(qty if side == Side.BUY else -qty, price, commission)
        self.last_fill = price


@dataclass(frozen=True)
class StoredFill:
    """One readable row of the store's ``fills`` table; ``strategy`` is the fill's own, else its
    order's (a fill stored before fills had the column), else None."""

    strategy: str | None
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    commission: Decimal
    ts: int


class FillReader:
    """The order store's fills at ``path``, read incrementally (see the module docstring).

    ``read`` calls ``restart`` when the store is new to it (the caller drops what it built from
    the previous one), then ``apply`` for each new readable fill (an unreadable one is logged and
    skipped), and returns the store's adjustments; None when there is no store (yet)."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        """Who reads, for the log."""
        self._after = 0
        """The rowid of the last fill read."""
        self._inode: int | None = None
        self.fills_read = 0
        """Fills read from the store over this object's life (each fill once)."""

    def read(
        self, restart: Callable[[], None], apply: Callable[[StoredFill], None]
    ) -> dict[str, Decimal] | None:
        if not self.path.exists():
            return None
        db = sqlite3.connect(self.path, timeout=10.0)
        try:
            self._catch_up(db, restart, apply)
            return {s: Decimal(q) for s, q in db.execute("SELECT symbol, qty FROM adjustments")}
        except sqlite3.OperationalError:  # an empty file: the executor has not set it up yet
            return None
        finally:
            db.close()

    def _catch_up(
        self,
        db: sqlite3.Connection,
        restart: Callable[[], None],
        apply: Callable[[StoredFill], None],
    ) -> None:
        inode = self.path.stat().st_ino
        (newest,) = db.execute("SELECT coalesce(max(rowid), 0) FROM fills").fetchone()
        if inode != self._inode or newest < self._after:  # a new store: start over
            self._after, self._inode = 0, inode
            restart()
        columns = {row[1] for row in db.execute("PRAGMA table_info(fills)")}
        own = "f.strategy" if "strategy" in columns else "NULL"  # a store from before the column
        while True:
            rows = db.execute(
                f"SELECT f.rowid, COALESCE({own}, o.strategy), f.symbol, f.side, f.qty, f.price,"
                " f.commission, f.ts FROM fills f"
                " LEFT JOIN orders o ON o.client_order_id = f.client_order_id"
                " WHERE f.rowid > ? ORDER BY f.rowid LIMIT ?",
                (self._after, BATCH),
            ).fetchall()
            for rowid, strategy, symbol, side, qty, price, commission, ts in rows:
                self._after = rowid
                try:
                    fill = StoredFill(
                        strategy, symbol, Side(side), Decimal(qty), Decimal(price),
                        Decimal(commission), int(ts),
                    )  # fmt: skip
                    apply(fill)
                except (ValueError, ArithmeticError) as exc:
                    log.warning(
                        "%s: fill %s of %s is unreadable (%s); skipped",
                        self.name,
                        rowid,
                        symbol,
                        exc,
                    )
            self.fills_read += len(rows)
            if len(rows) < BATCH:
                return


class PositionBook:
    """Running positions over the order store at ``path`` (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._books: dict[str, _Book] = {}
        self._reader = FillReader(path, "positions")

    @property
    def fills_read(self) -> int:
        """Fills read from the store over this object's life (each fill once)."""
        return self._reader.fills_read

    def rows(self, last_prices: Mapping[str, Decimal]) -> list[dict[str, Any]]:
        """One row per symbol held or traded: quantity held, average cost, last price, market
        value, unrealized and realized P&L (after commissions). Money as strings."""
        with self._lock:
            adjustments = self._reader.read(self._restart, self._apply)
            if adjustments is None:
                return []
            held = {s: b.qty + adjustments.pop(s, ZERO) for s, b in self._books.items()}
            held.update(adjustments)
            return _rows(self._books, {s: q for s, q in held.items() if q != 0}, last_prices)

    def _restart(self) -> None:
        self._books = {}

    def _apply(self, fill: StoredFill) -> None:
        book = self._books.setdefault(fill.symbol, _Book())
        book.apply(fill.side, fill.qty, fill.price, fill.commission)


def _rows(
    books: Mapping[str, _Book], held: Mapping[str, Decimal], last_prices: Mapping[str, Decimal]
) -> list[dict[str, Any]]:
    rows = []
    for symbol in sorted(set(books) | set(held)):
        book = books.get(symbol, _Book())
        qty = held.get(symbol, ZERO)
        last = last_prices.get(symbol, book.last_fill or None)
        avg = book.position.avg_cost
        unrealized = (last - avg) * qty if last is not None and qty else ZERO
        rows.append(
            {
                "symbol": symbol,
                "qty": str(qty),
                "avg_price": str(round(avg, 6)),
                "last_price": None if last is None else str(last),
                "market_value": None if last is None else str(round(last * qty, 2)),
                "unrealized_pnl": str(round(unrealized, 2)),
                "realized_pnl": str(round(book.position.realized - book.position.commissions, 2)),
            }
        )
    return rows
