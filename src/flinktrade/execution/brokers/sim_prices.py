"""The simulated broker's price feed: prices from Kafka meet the orders placed before them.

A thread reads the price topics (``market.trades``, ``analytics.bars``) from their end when the
broker starts; ``following`` is set once it has its start offsets. Each record goes through
``_on_price`` (the executor's own parser: a hostile record is skipped): with ``match_on = trades``
a simple market order fills at the price moved against us by ``slippage_bps`` plus a commission
(``_fill``) and the matching model sees the price as a trade, timed by its event time but never
earlier than the last one seen; with ``match_on = bars`` each bar is matched whole by the model
(``_on_bar``) and trades only move the last price. Prices (bars by their start) outside the
sessions ``market_hours`` names match nothing, as the backtester leaves such bars out.
"""

from __future__ import annotations

import logging
import threading
import uuid
from decimal import Decimal

from flinktrade import bus, calendars, events, sessions
from flinktrade.bus import TopicPartition
from flinktrade.config import Settings
from flinktrade.errors import TransientError
from flinktrade.events import Side
from flinktrade.execution.brokers.base import BrokerOrder, TradeUpdate, UpdateHandler
from flinktrade.execution.brokers.sim_matching import PRICE_STEP, SimMatching, now_ms
from flinktrade.execution.market import parse_price
from flinktrade.execution.settings import SimMarketHours
from flinktrade.matching import Change

log = logging.getLogger(__name__)

_DAY_MS = 86_400_000
_SESSIONS = {
    SimMarketHours.REGULAR: frozenset({sessions.Session.REGULAR}),
    SimMarketHours.EXTENDED: frozenset(
        {sessions.Session.PRE, sessions.Session.REGULAR, sessions.Session.POST}
    ),
}
"""The sessions whose prices match, per ``market_hours`` (``all``: every price)."""


class SimPrices(SimMatching):
    """The book and the matching model, fed by the price topics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = settings.execution.sim
        self._sessions = _SESSIONS.get(self.config.market_hours)
        self._calendar = calendars.current(settings.state_dir)  # the refreshed one, if any
        super().__init__(
            settings.execution.sim_store_path(settings.state_dir),
            self.config,
            follow_sessions=self._sessions is not None,
            calendar=self._calendar,
        )
        self.prices: dict[str, Decimal] = {}
        self.prices_seen = 0
        """Price records taken from the price topics (matched or not): progress to wait on."""
        self._on_update: UpdateHandler | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.following = threading.Event()
        """Set once the price feed has its start offsets: later prices all reach the book."""

    def _follow_prices(self, topics: list[str]) -> None:
        consumer = bus.make_consumer(
            self.settings.kafka, bus.unique_group_id("flinktrade-sim-broker"), auto_commit=False
        )
        try:
            assignment: list[TopicPartition] = []
            for topic in topics:
                assignment.extend(bus.end_offsets(consumer, topic))
            consumer.assign(assignment)
            self.following.set()
            while not self._stop.is_set():
                for msg in consumer.consume(1000, timeout=0.2):
                    if msg.error() is not None:
                        continue
                    self._on_price(msg.value() or b"")
                    self.prices_seen += 1
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
        if self.bars:
            bar = _bar(raw)
            if bar is not None:
                self._on_bar(bar)
            return
        if not self._in_hours(quote.ts, 0):
            return
        for order in self._open_market_orders(symbol):
            self._fill(order, price)
        with self._lock:
            self._last_ts = max(self._last_ts + 1, quote.ts)
            changes = self.matching.on_trade(symbol, self._last_ts, float(price), 0.0)
            if not changes:
                return
            updates = self._apply(changes)
            self._db.commit()
        self._send(updates)

    def _on_bar(self, bar: events.Bar) -> None:
        """``match_on = bars``: match the symbol's orders against ``bar`` whole, placed before it
        (a simple market order taken before ``bars`` was set fills at its open)."""
        matches = self._in_hours(bar.ts, bar.interval_ms)
        if matches:
            for order in self._open_market_orders(bar.symbol):
                self._fill(order, bar.open)
        with self._lock:
            changes: list[Change] = []
            if matches:
                self._last_ts = max(self._last_ts, bar.ts)
                changes = self.matching.on_bar(bar)
            self._last_ts = max(self._last_ts, bar.ts + bar.interval_ms)
            updates = self._apply(changes) if changes else []
            self._db.commit()
        self._send(updates)

    def _in_hours(self, ts: int, interval_ms: int) -> bool:
        """Whether a price at ``ts`` (a bar of ``interval_ms`` starting then) may fill orders."""
        if self._sessions is None or interval_ms >= _DAY_MS:
            return True
        return self._calendar.session_at(ts) in self._sessions

    def _fill(self, order: BrokerOrder, market: Decimal) -> None:
        """Fill a simple market order whole at ``market`` moved by the slippage, with costs."""
        qty = (order.qty or Decimal(0)) - order.filled_qty
        if qty <= 0:
            return
        slip = market * self.config.slippage_bps / Decimal(10_000)
        price = (market + slip if order.side == Side.BUY else market - slip).quantize(PRICE_STEP)
        commission = max(self.config.commission_min, self.config.commission_per_share * qty)
        with self._lock:
            position = self._book(order.symbol, order.side, qty, price, commission)
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
                    ts=now_ms(),
                    commission=commission,
                )
            )

    def _send(self, updates: list[TradeUpdate]) -> None:
        if self._on_update is None:
            return
        for update in updates:
            self._on_update(update)


def _bar(raw: bytes) -> events.Bar | None:
    """The bar in a record of the bars topic (an ``analytics.bars`` or ``market.bars`` record);
    None for a trade or a record that is no valid bar."""
    if b'"open"' not in raw:
        return None
    try:
        return events.decode(events.Bar, raw)
    except (events.DecodeError, ValueError, RecursionError):
        return None
