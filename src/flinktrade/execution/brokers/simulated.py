"""A simulated broker: orders fill at the prices seen after them, with costs.

Prices come from ``market.trades`` (the trade price) and ``analytics.bars`` (the close), read from
their end when the broker starts. What orders are matched against is ``execution.sim.match_on``:

- ``trades`` (the default): a simple market order fills at the first price for its symbol that
  arrives after the order, moved against us by ``slippage_bps``, with a commission of
  ``commission_per_share`` x qty (at least ``commission_min``). Every other order (limit, stop,
  stop-limit, trailing stop; brackets, OTO, OCO and their legs) is matched by the one matching
  model, ``flinktrade.matching`` (the backtester's), on the same prices and costs: each price is a
  trade there, timed by its event time (never earlier than the last one seen, so an order only
  meets prices that arrive after it).
- ``bars``: each bar read (a record with open, high, low and close) is matched whole by the
  matching model (``Book.on_bar``), exactly as the backtester matches its bars; trades only move
  the last price. Every order goes through the model, a simple market order too (it fills at the
  open of the first bar after it, the backtester's ``next_open``). An order placed after a bar was
  read first meets the next bar; fills are stamped with the bar's start (event time).

``execution.sim.market_hours`` (``regular``, ``extended`` or ``all``, the backtester's
``--market-hours``) leaves the prices (bars by their start) outside those sessions of the bundled
market calendar unmatched, as the backtester leaves such bars out.

The legs the model creates (a bracket's exits, an OCO's stop) are orders of their own here,
reported in their parent's ``legs``. Its book (orders, positions, cash)
is a SQLite file of its own under the state folder (created 0600), so like a real broker it
outlives an executor restart and reconciliation has something to compare with; working orders of
the matching model are put back into it at start (a trailing stop's best price restarts there).
A notional order is refused (this broker takes a qty).

``cancel`` cancels a working order through the matching model (its group with it). ``replace``
cancels an open order (a top-level one: not a leg) and places a new one under the new id with the
same spec and the new fields (checked first: a replace refused changes nothing); the old one is
reported ``replaced`` (an OCO's or bracket's legs are made anew for the new order).
``submit(request, may_send)`` asks ``may_send()`` right before taking the order: a reason means
"do not send" and the order is refused with it (``OrderRefused``), as brokers/base.py agrees.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flinktrade import bus, calendars, events, sessions
from flinktrade.bus import TopicPartition
from flinktrade.config import Settings
from flinktrade.errors import TransientError
from flinktrade.events import PLAIN_ORDER, OrderClass, OrderSpec, OrderStatus, OrderType, Side
from flinktrade.execution.brokers.base import (
    Account,
    Broker,
    BrokerOrder,
    OrderExists,
    OrderRefused,
    OrderRequest,
    ReconnectHandler,
    SendGuard,
    TradeUpdate,
    UpdateHandler,
)
from flinktrade.execution.market import parse_price
from flinktrade.execution.settings import SimMarketHours, SimMatchOn
from flinktrade.execution.store import create_private
from flinktrade.execution.store.records import spec_from_text, spec_text
from flinktrade.matching import Book, Change, Costs, Execution, Order, Status, Update
from flinktrade.orders import Leg, order_problem

log = logging.getLogger(__name__)

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
_PRICE_STEP = Decimal("0.000001")
_COLUMNS = (
    "id, client_order_id, symbol, side, qty, status, filled_qty, filled_avg_price, created_ms,"
    " spec, parent, leg"
)
_DAY_MS = 86_400_000
_SESSIONS = {
    SimMarketHours.REGULAR: frozenset({sessions.Session.REGULAR}),
    SimMarketHours.EXTENDED: frozenset(
        {sessions.Session.PRE, sessions.Session.REGULAR, sessions.Session.POST}
    ),
}
"""The sessions whose prices match, per ``market_hours`` (``all``: every price)."""
_ADDED = (("spec", "TEXT"), ("parent", "TEXT"), ("leg", "TEXT"))
"""Columns added with the order model: a book written before gets them on open (NULL: a simple
market order)."""


class SimulatedBroker(Broker):
    name = "sim"
    paper = True
    fractional = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = settings.execution.sim
        path = settings.execution.sim_store_path(settings.state_dir)
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
        if self._get("cash") is None:
            self._set("cash", str(self.config.starting_cash))
        self._db.commit()
        self.prices: dict[str, Decimal] = {}
        self._sessions = _SESSIONS.get(self.config.market_hours)
        self._calendar = calendars.current(settings.state_dir)  # the refreshed one, if any
        self.matching = Book(
            Costs(
                per_share=float(self.config.commission_per_share),
                minimum=float(self.config.commission_min),
                slippage_bps=float(self.config.slippage_bps),
            ),
            follow_sessions=self._sessions is not None,  # as the backtester's --market-hours
            calendar=self._calendar,
        )
        self._last_ts = 0
        """The newest price time seen: orders are placed at it, prices meet them after it."""
        self.bars = self.config.match_on is SimMatchOn.BARS
        self.prices_seen = 0
        """Price records taken from the price topics (matched or not): progress to wait on."""
        self._restore()
        self._on_update: UpdateHandler | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.following = threading.Event()
        """Set once the price feed has its start offsets: later prices all reach the book."""

    # ------------------------------------------------------------------ book keeping

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
                f"SELECT {_COLUMNS} FROM orders WHERE parent = ? ORDER BY created_ms, id", (coid,)
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

    # ------------------------------------------------------------------ Broker

    def submit(self, request: OrderRequest, may_send: SendGuard | None = None) -> BrokerOrder:
        reason = None if may_send is None else may_send()
        if reason is not None:
            raise OrderRefused(reason)
        problem = self.refusal(request)
        if problem is not None:
            raise OrderRefused(problem)
        assert request.qty is not None  # refusal() refused a notional
        matched = self.bars or not _simple_market(request.spec)
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO orders (id, client_order_id, symbol, side, qty, status,"
                    " created_ms, spec, leg) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        str(uuid.uuid4()),
                        request.client_order_id,
                        request.symbol,
                        request.side.value,
                        str(request.qty),
                        OrderStatus.NEW.value,
                        time.time_ns() // 1_000_000,
                        spec_text(request.spec) if matched else None,
                        (Leg.TAKE_PROFIT if request.spec.oco else Leg.ENTRY).value,
                    ),
                )
            except sqlite3.IntegrityError:
                raise OrderExists("client_order_id must be unique") from None
            if matched:
                entry = Order.of(
                    request.client_order_id,
                    request.symbol,
                    request.side,
                    request.spec,
                    float(request.qty),
                )
                changes = self.matching.submit(entry, self._last_ts)
                refused = [
                    c for c in changes if isinstance(c, Update) and c.status is Status.REJECTED
                ]
                if refused:
                    self._db.rollback()
                    raise OrderRefused(f"simulated broker: {refused[0].reason}")
                updates = self._apply(changes)
            else:
                updates = []
            self._db.commit()
            order = self.get_order(request.client_order_id)
        self._send(updates)
        assert order is not None
        return order

    @staticmethod
    def refusal(request: OrderRequest) -> str | None:
        """Why this broker does not take ``request`` (None if it does): it needs a qty > 0 (no
        notional); every type and class of the order model is taken."""
        if request.qty is None or request.qty <= 0:
            return "the simulated broker takes orders with qty > 0 (no notional)"
        return None

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM orders WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
            return None if row is None else self._order(row)

    def cancel(self, client_order_id: str) -> bool:
        """Cancel an open order (and the rest of its group, as the matching model does); False
        when it is final or unknown. The ``canceled`` updates are pushed like any other."""
        with self._lock:
            order = self.get_order(client_order_id)
            if order is None or order.status.final:
                return False
            changes = self.matching.cancel(client_order_id, self._last_ts)
            if changes:
                updates = self._apply(changes)
            else:  # a plain market order waiting for its price: not in the matching model
                self._db.execute(
                    "UPDATE orders SET status = ? WHERE client_order_id = ?",
                    (OrderStatus.CANCELED.value, client_order_id),
                )
                canceled = self.get_order(client_order_id)
                assert canceled is not None
                updates = [TradeUpdate(event="canceled", order=canceled, ts=_now_ms())]
            self._db.commit()
        self._send(updates)
        return True

    def replace(
        self,
        client_order_id: str,
        new_client_order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        trail: Decimal | None = None,
    ) -> BrokerOrder:
        """Cancel ``client_order_id`` and place ``new_client_order_id`` with its spec and the new
        fields (qty: the new order's; by default what the old one had left), the old reported
        ``replaced``. Refused, with nothing changed, when the old order is not open or is a leg,
        or the new fields do not fit its type."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM orders WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
            old = None if row is None else self._order(row, legs=False)
            if old is None or old.status.final or old.qty is None:
                raise OrderRefused(f"replace of {client_order_id}: the order is not open")
            if row[10] is not None:
                raise OrderRefused("the simulated broker replaces top-level orders, not legs")
            if self.get_order(new_client_order_id) is not None:
                raise OrderExists("client_order_id must be unique")
            spec = spec_from_text(row[9]) or PLAIN_ORDER
            request = OrderRequest(
                new_client_order_id,
                old.symbol,
                old.side,
                qty if qty is not None else old.qty - old.filled_qty,
                _replaced_spec(spec, limit_price, stop_price, trail),
            )
            problem = self.refusal(request) or order_problem(request.spec)
            if problem is not None:
                raise OrderRefused(f"replace of {client_order_id}: {problem}")
            changes = self.matching.cancel(client_order_id, self._last_ts, "replaced")
            updates = self._apply(changes)
            self._db.execute(
                "UPDATE orders SET status = ? WHERE client_order_id = ?",
                (OrderStatus.CANCELED.value, client_order_id),
            )
            self._db.commit()
            ended = self.get_order(client_order_id)
            assert ended is not None
            updates = [u for u in updates if u.order.client_order_id != client_order_id]
            updates.insert(0, TradeUpdate(event="replaced", order=ended, ts=_now_ms()))
        self._send(updates)
        return self.submit(request)

    def open_orders(self) -> list[BrokerOrder]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM orders WHERE status IN ('new', 'partially_filled')"
            ).fetchall()
            return [self._order(r, legs=False) for r in rows]

    def positions(self) -> dict[str, Decimal]:
        with self._lock:
            rows = self._db.execute("SELECT symbol, qty FROM positions").fetchall()
        return {s: Decimal(q) for s, q in sorted(rows) if Decimal(q) != 0}

    def account(self) -> Account:
        with self._lock:
            cash = Decimal(self._get("cash") or "0")
            held = self.positions()
            equity = cash + sum(
                (q * self.prices.get(s, Decimal(0)) for s, q in held.items()), Decimal(0)
            )
            if any(s not in self.prices for s in held):  # unpriced holdings: at fill prices
                equity = cash + self._cost_of(held)
            today = datetime.now(tz=UTC).date().isoformat()
            if self._get("day") != today:
                self._set("day", today)
                self._set("day_start_equity", str(equity))
                self._db.commit()
            start = Decimal(self._get("day_start_equity") or str(equity))
        return Account(equity=equity, last_equity=start, cash=cash)

    def _cost_of(self, held: dict[str, Decimal]) -> Decimal:
        total = Decimal(0)
        for symbol, qty in held.items():
            row = self._db.execute(
                "SELECT filled_avg_price FROM orders WHERE symbol = ? AND filled_avg_price"
                " IS NOT NULL ORDER BY created_ms DESC LIMIT 1",
                (symbol,),
            ).fetchone()
            price = self.prices.get(symbol) or (Decimal(row[0]) if row else Decimal(0))
            total += qty * price
        return total

    def market_open(self) -> bool:
        return True  # the simulated market trades whenever prices flow

    def start_updates(self, on_update: UpdateHandler, on_reconnect: ReconnectHandler) -> None:
        self._on_update = on_update
        topics = list(self.config.price_topics)
        bus.ensure_topics(self.settings.kafka, topics)
        self._thread = threading.Thread(
            target=self._follow_prices, args=(topics,), name="sim-broker-prices", daemon=True
        )
        self._thread.start()
        on_reconnect()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ prices and fills

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
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM orders WHERE symbol = ? AND spec IS NULL"
                " AND status IN ('new', 'partially_filled')",
                (symbol,),
            ).fetchall()
            market = [self._order(r, legs=False) for r in rows]
        for order in market:
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
            with self._lock:
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM orders WHERE symbol = ? AND spec IS NULL"
                    " AND status IN ('new', 'partially_filled')",
                    (bar.symbol,),
                ).fetchall()
            for row in rows:
                self._fill(self._order(row, legs=False), bar.open)
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
        if self._calendar is None or self._sessions is None or interval_ms >= _DAY_MS:
            return True
        return self._calendar.session_at(ts) in self._sessions

    # ------------------------------------------------------------------ the matching model

    def _restore(self) -> None:
        """Put the working orders of the matching model back into it (a restart)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM orders WHERE spec IS NOT NULL"
            " AND status IN ('new', 'partially_filled') ORDER BY created_ms, id"
        ).fetchall()
        for row in rows:
            _oid, coid, symbol, side, qty, _st, filled, _avg, _created, spec_json, parent, leg = row
            spec = spec_from_text(spec_json)
            if spec is None:
                continue
            left = float(Decimal(qty) - Decimal(filled))
            order = Order.of(coid, symbol, Side(side), spec.model_copy(update={"qty": None}), left)
            if parent is not None:  # a leg: no exits of its own, cancelled with its group
                order.spec = None
                order.leg = Leg(leg) if leg else Leg.ENTRY
                order.parent_id = parent
                order.group = parent
            elif spec.oco:  # its stop leg is a row of its own, put back on its own
                order.spec = None
                order.group = coid
            self.matching.submit(order, 0)

    def _apply(self, changes: list[Change]) -> list[TradeUpdate]:
        """Write what the matching model did (new legs, statuses, fills: cash and positions);
        the trade updates to send once committed. Under the lock."""
        events: dict[str, tuple[str, Execution | None]] = {}
        for change in changes:
            if isinstance(change, Execution):
                self._execute(change)
                event = (
                    "fill"
                    if self.matching.orders[change.order_id].remaining <= 0
                    else ("partial_fill")
                )
                events[change.order_id] = (event, change)
                continue
            self._ensure_row(change.order_id)
            self._db.execute(
                "UPDATE orders SET status = ? WHERE client_order_id = ?",
                (change.status.value, change.order_id),
            )
            if change.order_id not in events or events[change.order_id][1] is None:
                events[change.order_id] = (change.status.value, None)
        updates = []
        for coid, (event, execution) in events.items():
            order = self.get_order(coid)
            if order is None:
                continue
            if execution is None:
                updates.append(TradeUpdate(event=event, order=order, ts=_now_ms()))
                continue
            updates.append(
                TradeUpdate(
                    event=event,
                    order=order,
                    execution_id=str(uuid.uuid4()),
                    price=_dec(execution.price),
                    qty=_dec(execution.qty),
                    position_qty=self._position(order.symbol),
                    ts=execution.ts if self.bars else _now_ms(),  # bars: the bar's start
                    commission=_dec(execution.commission),
                )
            )
        return updates

    def _ensure_row(self, coid: str) -> None:
        """A leg the matching model created: an order row of its own, under its parent."""
        known = self._db.execute("SELECT 1 FROM orders WHERE client_order_id = ?", (coid,))
        if known.fetchone() is not None:
            return
        leg = self.matching.orders[coid]
        spec = OrderSpec(
            type=leg.type,
            time_in_force=leg.time_in_force,
            limit_price=_price(leg.limit_price),
            stop_price=_price(leg.stop_price),
            trail_percent=None if leg.trail_percent is None else _dec(leg.trail_percent),
            trail_price=_price(leg.trail_price),
        )
        self._db.execute(
            "INSERT INTO orders (id, client_order_id, symbol, side, qty, status, created_ms,"
            " spec, parent, leg) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()),
                coid,
                leg.symbol,
                leg.side.value,
                str(_dec(leg.qty or 0.0)),
                OrderStatus.NEW.value,
                _now_ms(),
                spec_text(spec),
                leg.parent_id,
                leg.leg.value,
            ),
        )

    def _execute(self, fill: Execution) -> None:
        """Book one execution of the matching model: cash, position, the order's fill."""
        self._ensure_row(fill.order_id)
        qty, price, fee = _dec(fill.qty), _dec(fill.price), _dec(fill.commission)
        sign = Decimal(1) if fill.side is Side.BUY else Decimal(-1)
        cash = Decimal(self._get("cash") or "0") - sign * qty * price - fee
        self._set("cash", str(cash))
        position = self._position(fill.symbol) + sign * qty
        self._db.execute(
            "INSERT OR REPLACE INTO positions (symbol, qty) VALUES (?, ?)",
            (fill.symbol, str(position)),
        )
        order = self.matching.orders[fill.order_id]
        self._db.execute(
            "UPDATE orders SET filled_qty = ?, filled_avg_price = ? WHERE client_order_id = ?",
            (str(_dec(order.filled_qty)), str(_dec(order.avg_price)), fill.order_id),
        )

    def _position(self, symbol: str) -> Decimal:
        row = self._db.execute("SELECT qty FROM positions WHERE symbol = ?", (symbol,)).fetchone()
        return Decimal(row[0]) if row else Decimal(0)

    def _send(self, updates: list[TradeUpdate]) -> None:
        if self._on_update is None:
            return
        for update in updates:
            self._on_update(update)

    def _fill(self, order: BrokerOrder, market: Decimal) -> None:
        qty = (order.qty or Decimal(0)) - order.filled_qty
        if qty <= 0:
            return
        slip = market * self.config.slippage_bps / Decimal(10_000)
        price = (market + slip if order.side == Side.BUY else market - slip).quantize(_PRICE_STEP)
        commission = max(self.config.commission_min, self.config.commission_per_share * qty)
        sign = Decimal(1) if order.side == Side.BUY else Decimal(-1)
        with self._lock:
            cash = Decimal(self._get("cash") or "0") - sign * qty * price - commission
            self._set("cash", str(cash))
            row = self._db.execute(
                "SELECT qty FROM positions WHERE symbol = ?", (order.symbol,)
            ).fetchone()
            position = (Decimal(row[0]) if row else Decimal(0)) + sign * qty
            self._db.execute(
                "INSERT OR REPLACE INTO positions (symbol, qty) VALUES (?, ?)",
                (order.symbol, str(position)),
            )
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
                    ts=time.time_ns() // 1_000_000,
                    commission=commission,
                )
            )


def _bar(raw: bytes) -> events.Bar | None:
    """The bar in a record of the bars topic (an ``analytics.bars`` or ``market.bars`` record);
    None for a trade or a record that is no valid bar."""
    if b'"open"' not in raw:
        return None
    try:
        return events.decode(events.Bar, raw)
    except (events.DecodeError, ValueError, RecursionError):
        return None


def _replaced_spec(
    spec: OrderSpec,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    trail: Decimal | None,
) -> OrderSpec:
    """``spec`` with a replace's new prices (``trail`` in the unit the spec trails by);
    ``OrderRefused`` when a field does not fit the order's type."""
    update: dict[str, Any] = {}
    if limit_price is not None:
        if spec.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            raise OrderRefused(f"{spec.type.value} orders have no limit_price to replace")
        update["limit_price"] = limit_price
    if stop_price is not None:
        if spec.type not in (OrderType.STOP, OrderType.STOP_LIMIT):
            raise OrderRefused(f"{spec.type.value} orders have no stop_price to replace")
        update["stop_price"] = stop_price
    if trail is not None:
        if spec.type is not OrderType.TRAILING_STOP:
            raise OrderRefused("trail is only for trailing_stop orders")
        update["trail_percent" if spec.trail_percent is not None else "trail_price"] = trail
    try:
        return OrderSpec.model_validate({**spec.model_dump(), **update})
    except ValueError as exc:
        raise OrderRefused(f"invalid replace: {str(exc).splitlines()[0][:200]}") from None


def _simple_market(spec: OrderSpec) -> bool:
    return spec.type is OrderType.MARKET and spec.order_class is OrderClass.SIMPLE


def _dec(value: float) -> Decimal:
    """A float of the matching model as an exact decimal of its shortest repr, 6 decimals."""
    return Decimal(repr(value)).quantize(_PRICE_STEP)


def _price(value: float | None) -> Decimal | None:
    return None if value is None else _dec(value)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
