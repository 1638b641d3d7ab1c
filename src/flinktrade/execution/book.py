"""What the executor keeps in memory between decisions: its positions and counters.

``Book`` holds the positions (signed shares, from fills, reloaded from the store at start and at
every reconciliation) and the last price of each symbol's own fills (values holdings when the
market price topics have none). ``ExecutorStats`` counts what happened (``flinktrade execute``
prints it when it stops).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from flinktrade.events import Side
from flinktrade.execution.store import OrderStore


@dataclass
class ExecutorStats:
    signals: int = 0
    invalid: int = 0
    dead_letters: int = 0
    repeats: int = 0
    denied: int = 0
    orders_sent: int = 0
    rejected: int = 0
    unknown: int = 0
    fills: int = 0
    alerts: int = 0
    reconciliations: int = 0
    held: int = 0
    """Signals held now, undecided, until a transient reconciliation block clears."""
    halted: str | None = None
    blocked: str | None = None
    error: str | None = None
    denied_by_rule: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Book:
    positions: dict[str, Decimal] = field(default_factory=dict)
    last_prices: dict[str, Decimal] = field(default_factory=dict)
    """From our own fills."""

    def load(self, store: OrderStore) -> None:
        self.positions = store.positions()
        for fill in store.fills():
            self.last_prices[fill.symbol] = fill.price

    def add_fill(self, symbol: str, side: Side, qty: Decimal, price: Decimal) -> None:
        sign = 1 if side == Side.BUY else -1
        self.positions[symbol] = self.positions.get(symbol, Decimal(0)) + sign * qty
        if self.positions[symbol] == 0:
            del self.positions[symbol]
        self.last_prices[symbol] = price
