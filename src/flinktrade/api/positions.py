"""Positions with P&L, from the executor's fills (average cost) and the last prices seen."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flinktrade.events import Fill, Side

ZERO = Decimal(0)


@dataclass
class _Book:
    qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    realized: Decimal = ZERO
    last_fill: Decimal = ZERO

    def apply(self, fill: Fill) -> None:
        signed = fill.qty if fill.side == Side.BUY else -fill.qty
        self.last_fill = fill.price
        self.realized -= fill.commission
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            total = self.qty + signed
            self.avg_price = (self.avg_price * abs(self.qty) + fill.price * abs(signed)) / abs(
                total
            )
            self.qty = total
            return
        closing = min(abs(signed), abs(self.qty))
        direction = 1 if self.qty > 0 else -1
        self.realized += (fill.price - self.avg_price) * closing * direction
        self.qty += signed
        if self.qty == 0:
            self.avg_price = ZERO
        elif (self.qty > 0) != (direction > 0):  # went through zero: the rest opens at this price
            self.avg_price = fill.price


def positions_with_pnl(
    fills: Iterable[Fill], held: Mapping[str, Decimal], last_prices: Mapping[str, Decimal]
) -> list[dict[str, Any]]:
    """One row per symbol held or traded: quantity (``held``, the store's truth), average cost,
    last price, market value, unrealized and realized P&L (after commissions). Money as strings."""
    books: dict[str, _Book] = {}
    for fill in fills:
        books.setdefault(fill.symbol, _Book()).apply(fill)
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
