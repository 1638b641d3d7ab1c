"""Per-strategy books for ``/api/strategies``, from the executor's fills and the last prices seen.

``StrategyBooks`` keeps one ``books.Ledger`` over the order store's fills, read incrementally by a
``positions.FillReader`` (each call reads only the fills recorded since the previous one, in the
order the executor recorded them; a replaced store is read from the start). Each fill marks its
symbol at its own price, which adds a point to the equity curves it moves; each call then marks
the symbols with bars at their last close, at the newest bar's time. Positions adopted from the
broker (the store's ``adjustments``) are held in the ``(manual)`` book. Memory is bounded: a book
per strategy and symbol traded, at most ``MAX_POINTS`` equity points per strategy (thinned by half
when full, see ``books``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from flinktrade import books
from flinktrade.api.positions import FillReader, StoredFill

MAX_POINTS = 500
"""Equity points kept per strategy."""


class StrategyBooks:
    """Running per-strategy books over the order store at ``path`` (see the module docstring)."""

    def __init__(self, path: Path, max_points: int = MAX_POINTS) -> None:
        self.path = path
        self.max_points = max_points
        self._lock = threading.Lock()
        self._ledger = books.Ledger(max_points)
        self._reader = FillReader(path, "strategies")

    @property
    def fills_read(self) -> int:
        """Fills read from the store over this object's life (each fill once)."""
        return self._reader.fills_read

    def rows(
        self, last_prices: Mapping[str, Decimal], ts: int | None = None
    ) -> list[dict[str, Any]]:
        """One item per strategy (``books.StrategyView.as_json``), valued at ``last_prices``; with
        ``ts``, those prices are also a mark at ``ts`` on the equity curves."""
        with self._lock:
            adopted = self._reader.read(self._restart, self._apply)
            if adopted is None:
                return []
            self._ledger.set_adopted(adopted)
            if ts is not None and last_prices:
                self._ledger.mark(ts, last_prices)
            return [view.as_json() for view in self._ledger.views(last_prices)]

    def _restart(self) -> None:
        self._ledger = books.Ledger(self.max_points)

    def _apply(self, fill: StoredFill) -> None:
        self._ledger.record(
            fill.strategy, fill.symbol, fill.side, fill.qty, fill.price, fill.commission
        )
        self._ledger.mark(fill.ts, {fill.symbol: fill.price})
