"""What the API remembers: bounded, de-duplicated buffers of recent events, newest last.

The feed thread writes, request handlers read; one lock guards everything. Items are kept as the
JSON-ready dicts the routes and the stream send, so a read is a copy of a list slice.

Everything is bounded: ``bars_per_symbol`` bars for at most ``max_symbols`` symbols (a new symbol
beyond that evicts the one whose bars were updated least recently), ``events_kept`` of each other
kind.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flinktrade import events, topics

Item = dict[str, Any]

KINDS = ("bars", "signals", "alerts", "orders", "fills", "news")
"""The short names of the streams, as routes, the WebSocket and the dashboard name them."""

KIND_TOPICS: dict[str, topics.Topic[Any]] = {
    "bars": topics.ANALYTICS_BARS,
    "signals": topics.SIGNALS,
    "alerts": topics.ALERTS,
    "orders": topics.ORDERS,
    "fills": topics.FILLS,
    "news": topics.NEWS,
}
"""The topic each stream reads; its records are decoded by that topic's one decoder."""


class Recent:
    """At most ``maxlen`` items by key, in arrival order; a repeated key is not added twice."""

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self._items: OrderedDict[str, Item] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, key: str, item: Item) -> bool:
        """Append ``item``; False (and nothing changes) if ``key`` is already held."""
        if key in self._items:
            return False
        self._items[key] = item
        if len(self._items) > self.maxlen:
            self._items.popitem(last=False)
        return True

    def upsert(self, key: str, item: Item) -> None:
        """Replace the item under ``key`` and move it to the newest end."""
        self._items.pop(key, None)
        self._items[key] = item
        if len(self._items) > self.maxlen:
            self._items.popitem(last=False)

    def get(self, key: str) -> Item | None:
        return self._items.get(key)

    def last(self, limit: int, where: Callable[[Item], bool] | None = None) -> list[Item]:
        """The newest ``limit`` items (matching ``where``), oldest first."""
        picked: list[Item] = []
        for item in reversed(self._items.values()):
            if len(picked) >= limit:
                break
            if where is None or where(item):
                picked.append(item)
        picked.reverse()
        return picked


@dataclass(frozen=True)
class Applied:
    """An event that changed the state: what to push to stream clients."""

    kind: str
    symbol: str | None
    data: Item


class MarketState:
    """Recent bars per symbol and recent signals, alerts, orders (latest state per order), fills
    and news, as read from the topics."""

    def __init__(self, bars_per_symbol: int, events_kept: int, max_symbols: int = 2_000) -> None:
        self._lock = threading.Lock()
        self._bars_per_symbol = bars_per_symbol
        self._max_symbols = max_symbols
        self._bars: OrderedDict[str, Recent] = OrderedDict()
        """Least recently updated first."""
        self._lists = {kind: Recent(events_kept) for kind in KINDS if kind != "bars"}

    def apply(self, kind: str, event: events.Event) -> Applied | None:
        """Remember one decoded event; None if it was a repeat."""
        data = event.model_dump(mode="json", exclude_none=True)
        symbol = getattr(event, "symbol", None)
        with self._lock:
            if isinstance(event, events.AnalyticsBar):
                fresh = self._add_bar(event.symbol, str(event.ts), data)
            elif isinstance(event, events.OrderEvent):
                orders = self._lists["orders"]
                previous = orders.get(event.client_order_id)
                fresh = previous is None or previous.get("event_id") != event.event_id
                if fresh:
                    orders.upsert(event.client_order_id, data)
            elif isinstance(event, events.NewsItem):
                symbol = event.symbols[0] if event.symbols else None
                fresh = self._lists["news"].add(event.id, data)
            else:
                fresh = self._lists[kind].add(str(getattr(event, "id", event.ts)), data)
        return Applied(kind, symbol, data) if fresh else None

    def _add_bar(self, symbol: str, key: str, data: Item) -> bool:
        bars = self._bars.get(symbol)
        if bars is None:
            bars = self._bars[symbol] = Recent(self._bars_per_symbol)
            if len(self._bars) > self._max_symbols:
                self._bars.popitem(last=False)
        fresh = bars.add(key, data)
        if fresh:
            self._bars.move_to_end(symbol)
        return fresh

    def symbols(self) -> list[Item]:
        """Every symbol with bars: its bar count, last close and the time of its last bar."""
        with self._lock:
            rows = []
            for symbol in sorted(self._bars):
                last = self._bars[symbol].last(1)
                rows.append(
                    {
                        "symbol": symbol,
                        "bars": len(self._bars[symbol]),
                        "last": last[0]["close"] if last else None,
                        "ts": last[0]["ts"] if last else None,
                    }
                )
            return rows

    def bars(self, symbol: str, limit: int) -> list[Item]:
        with self._lock:
            bars = self._bars.get(symbol)
            return [] if bars is None else bars.last(limit)

    def recent(
        self, kind: str, limit: int, symbol: str | None = None, before: int | None = None
    ) -> list[Item]:
        """The newest ``limit`` items of a list kind, optionally for one symbol only, and only
        those older than ``before`` (epoch ms): pass the oldest ``ts`` of a page for the next."""

        def where(item: Item) -> bool:
            if before is not None and not item.get("ts", 0) < before:
                return False
            if symbol is None:
                return True
            if kind == "news":
                return symbol in item.get("symbols", ())
            return bool(item.get("symbol") == symbol)

        with self._lock:
            return self._lists[kind].last(limit, where)

    def last_prices(self) -> dict[str, Decimal]:
        """The last close of every symbol with bars."""
        with self._lock:
            prices = {}
            for symbol, bars in self._bars.items():
                last = bars.last(1)
                if last:
                    prices[symbol] = Decimal(str(last[0]["close"]))
            return prices
