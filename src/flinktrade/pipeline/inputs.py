"""What the analytics model takes in: a closed bar, a scored story, a configured strategy.

Plain frozen dataclasses, kept out of ``analytics.py`` because that module is compiled by mypyc
(``flinktrade.accel``): compiled, they would become native classes that check every field's type
when made, refuse ``filled``'s one-step construction and pickle differently. Here they stay the
same Python objects in the source and in the compiled build; ``analytics`` re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

BAR_INTERVAL_MS = 60_000


@dataclass(frozen=True)
class StrategySpec:
    """A picklable description of one configured strategy instance."""

    name: str
    params: Mapping[str, Any]
    symbols: frozenset[str] = frozenset()  # empty: all symbols

    def applies_to(self, symbol: str) -> bool:
        return not self.symbols or symbol in self.symbols


@dataclass(frozen=True)
class ClosedBar:
    """A 1-minute bar as the job's Java trade path hands it over; ``ts`` is the bar's start.

    ``closed_bar(...)`` makes the same object at a sixth of the cost of ``ClosedBar(...)``
    (engines make one per bar)."""

    symbol: str
    ts: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    vwap: float | None
    trades: int
    interval_ms: int = BAR_INTERVAL_MS

    @property
    def end_ts(self) -> int:
        return self.ts + self.interval_ms


def closed_bar(
    symbol: str,
    ts: int,
    open: Decimal,
    high: Decimal,
    low: Decimal,
    close: Decimal,
    volume: int,
    vwap: float | None,
    trades: int,
    interval_ms: int,
) -> ClosedBar:
    """``ClosedBar(symbol, ts, ...)``: the frozen dataclass filled in one step instead of ten
    ``object.__setattr__`` calls (the same object; pinned by a test)."""
    return filled(ClosedBar, {
        "symbol": symbol, "ts": ts, "open": open, "high": high, "low": low, "close": close,
        "volume": volume, "vwap": vwap, "trades": trades, "interval_ms": interval_ms,
    })  # fmt: skip


@dataclass(frozen=True)
class ScoredNews:
    """One news story for one symbol, with the job's sentiment score."""

    id: str
    symbol: str
    ts: int
    sentiment: float
    headline: str


_T = TypeVar("_T")


def filled(cls: type[_T], fields: dict[str, Any]) -> _T:
    """``cls(**fields)`` of a frozen dataclass, its ``__dict__`` set in one step instead of a
    ``object.__setattr__`` per field (``fields`` in the field order; nothing is checked)."""
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", fields)
    return obj
