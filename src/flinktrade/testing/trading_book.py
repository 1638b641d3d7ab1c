"""The order book of the fake Alpaca trading API: orders, executions, positions, cash.

Pure bookkeeping, no I/O and no threads of its own: ``create_order`` validates and books an
order with its legs as Alpaca does (``trading_orders``: raising ``ApiError`` with Alpaca's status,
code and message), ``fill`` executes (part of) one, ``push_price`` moves a symbol's price and
executes the working orders it crosses (``cross``: one order at the current price), ``replace``
replaces one and ``cancel``/``cancel_all`` cancel. Orders hang together as Alpaca's do: a
parent's fill sets its ``held`` legs to ``new``, a leg's fill cancels the others of its bracket or
OCO, a parent's cancel cancels its legs. Every change of an order becomes a ``trade_updates``
event handed to ``_on_event`` (the fake streams it; the base keeps nothing).
``account_json``/``positions_json`` render the account in Alpaca's wire form (numbers as
strings). ``FakeAlpacaTrading`` builds on it and adds the servers; tests may use it alone.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flinktrade.testing.trading_orders import (
    OPEN_STATUSES,
    WORKING_STATUSES,
    ApiError,
    FakeOrder,
    build_order,
    crossed,
    iso,
    num,
    replacement,
)

__all__ = ["OPEN_STATUSES", "ApiError", "FakeOrder", "OrderBook", "Position", "iso", "num"]

Event = tuple[dict[str, Any], bool]  # a trade_updates event and whether it is a fill


@dataclass
class Position:
    qty: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)  # signed cost basis of the open quantity
    asset_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class OrderBook:
    """One account's orders and positions; every method is safe to call from any thread."""

    def __init__(
        self,
        *,
        fill_price: Decimal | dict[str, Decimal] = Decimal(100),
        enforce_unique: bool = True,
        cash: Decimal = Decimal(100_000),
        lock: threading.RLock | None = None,
    ) -> None:
        self.fill_price = fill_price
        self.enforce_unique = enforce_unique
        self.initial_cash = cash
        self.lock = lock or threading.RLock()
        self.orders: dict[str, FakeOrder] = {}
        self.by_client_id: dict[str, FakeOrder] = {}
        self.positions: dict[str, Position] = {}
        self.cash = cash
        self.prices: dict[str, Decimal] = {}  # pushed by push_price, ahead of fill_price
        self.created: Counter[str] = Counter()  # POSTed orders per client_order_id

    def _on_event(self, data: dict[str, Any], *, fill: bool = False) -> None:
        """A ``trade_updates`` event happened (called without the lock held)."""

    def _on_booked(self, order: FakeOrder) -> None:
        """``order`` was just booked (called without the lock held)."""

    # ------------------------------------------------------------------ inspection

    def orders_created(self, client_order_id: str | None = None) -> int:
        with self.lock:
            if client_order_id is None:
                return sum(self.created.values())
            return self.created[client_order_id]

    def duplicates(self) -> dict[str, int]:
        """client_order_ids with more than one order (only possible with enforce_unique off)."""
        with self.lock:
            return {coid: n for coid, n in self.created.items() if n > 1}

    def position_qty(self) -> dict[str, Decimal]:
        with self.lock:
            return {s: p.qty for s, p in sorted(self.positions.items()) if p.qty != 0}

    def open_order_count(self) -> int:
        with self.lock:
            return sum(1 for o in self.orders.values() if o.status in OPEN_STATUSES)

    # ------------------------------------------------------------------ the book

    def price_of(self, symbol: str) -> Decimal:
        """The price of ``symbol`` now: the last pushed one, else ``fill_price``."""
        pushed = self.prices.get(symbol)
        if pushed is not None:
            return pushed
        if isinstance(self.fill_price, dict):
            return self.fill_price.get(symbol, Decimal(100))
        return self.fill_price

    def create_order(self, body: dict[str, Any]) -> FakeOrder:
        """Validate and book an order with its legs as Alpaca does (raises ``ApiError``)."""
        with self.lock:
            symbol = str(body.get("symbol") or "").upper()
            order = build_order(body, self.price_of(symbol), time.time())
            if self.enforce_unique and order.client_order_id in self.by_client_id:
                raise ApiError(422, 40010001, "client_order_id must be unique")
            for booked in (order, *order.legs):
                self.orders[booked.id] = booked
                self.by_client_id[booked.client_order_id] = booked
            self.created[order.client_order_id] += 1
        self._on_booked(order)
        return order

    def place_external_order(self, symbol: str, side: str, qty: Decimal) -> FakeOrder:
        """An order placed by someone else on the account (the web UI, another program)."""
        return self.create_order(
            {"symbol": symbol, "side": side, "qty": str(qty), "type": "market",
             "time_in_force": "day", "client_order_id": f"manual-{uuid.uuid4().hex[:12]}"}
        )  # fmt: skip

    def fill(self, order_id: str, qty: Decimal | None = None, price: Decimal | None = None) -> None:
        """Execute (part of) an order now and push the fill event (and what follows from it: a
        filled parent's legs go live, a filled leg cancels the others of its group)."""
        with self.lock:
            events = self._execute(self.orders[order_id], qty, price)
        self._emit(events)

    def push_price(self, symbol: str, price: Decimal) -> None:
        """``symbol`` trades at ``price`` now: market orders fill at it from now on, and every
        working limit, stop, stop-limit or trailing-stop order it crosses fills at it."""
        symbol = symbol.upper()
        with self.lock:
            self.prices[symbol] = price
            events: list[Event] = []
            for order in sorted(self.orders.values(), key=lambda o: o.created):
                if order.symbol == symbol:
                    events += self._cross(order, price)
        self._emit(events)

    def cross(self, order_id: str) -> None:
        """Execute ``order_id`` if it is working and the current price crosses it; an IOC or FOK
        order the price does not cross is canceled (it fills at once or not at all)."""
        with self.lock:
            order = self.orders[order_id]
            events = self._cross(order, self.price_of(order.symbol))
            if order.time_in_force in ("ioc", "fok") and order.status in WORKING_STATUSES:
                events += self._cancel(order)
        self._emit(events)

    def replace(self, order_id: str, body: dict[str, Any]) -> FakeOrder:
        """``PATCH /v2/orders/{id}``: a new order replaces the open ``order_id`` (``replaces``),
        which becomes ``replaced`` (``replaced_by``); legs follow their new parent."""
        with self.lock:
            old = self.orders.get(order_id)
            if old is None:
                raise ApiError(404, 40410000, "order not found")
            now = time.time()
            new = replacement(old, body, now)
            if self.enforce_unique and new.client_order_id in self.by_client_id:
                raise ApiError(422, 40010001, "client_order_id must be unique")
            old.status, old.replaced_at, old.updated, old.replaced_by = "replaced", now, now, new.id
            self.orders[new.id] = new
            self.by_client_id[new.client_order_id] = new
            if old.parent_id is not None:
                parent = self.orders[old.parent_id]
                parent.legs = [new if leg is old else leg for leg in parent.legs]
            for leg in new.legs:
                leg.parent_id = new.id
            message = {"event": "replaced", "order": old.to_json(), "timestamp": iso(now)}
        self._emit([(message, False)])
        if new.status != "held":
            self._on_booked(new)
        return new

    def cancel(self, order_id: str) -> FakeOrder:
        """Cancel an open order, and with it its legs and the other orders of its OCO group."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise ApiError(404, 40410000, "order not found")
            if order.status not in OPEN_STATUSES:
                raise ApiError(422, 42210000, "order is not cancelable")
            events = self._cancel(order)
            for other in (*order.legs, *self._group(order)):
                events += self._cancel(other)
        self._emit(events)
        return order

    def cancel_all(self) -> list[FakeOrder]:
        """``DELETE /v2/orders``: cancel every open order; the orders canceled."""
        with self.lock:
            canceled = [o for o in self.orders.values() if o.status in OPEN_STATUSES]
            events: list[Event] = []
            for order in canceled:
                events += self._cancel(order)
        self._emit(events)
        return canceled

    # ------------------------------------------------------------------ life cycle (lock held)

    def _emit(self, events: list[Event]) -> None:
        for message, is_fill in events:
            self._on_event(message, fill=is_fill)

    def _cross(self, order: FakeOrder, price: Decimal) -> list[Event]:
        if order.type == "market" or order.status not in WORKING_STATUSES:
            return []
        return self._execute(order, None, price) if crossed(order, price) else []

    def _group(self, order: FakeOrder) -> list[FakeOrder]:
        """The other orders one fill of ``order`` cancels: its sibling legs, and for an OCO the
        take-profit parent and its stop-loss leg of each other."""
        parent = order if order.parent_id is None else self.orders[order.parent_id]
        members = [parent, *parent.legs] if parent.order_class == "oco" else list(parent.legs)
        if order.parent_id is None and parent.order_class != "oco":
            return []
        return [o for o in members if o is not order]

    def _cancel(self, order: FakeOrder) -> list[Event]:
        if order.status not in OPEN_STATUSES:
            return []
        order.status = "canceled"
        order.canceled_at = order.updated = time.time()
        return [({"event": "canceled", "order": order.to_json(), "timestamp": iso()}, False)]

    def _execute(self, order: FakeOrder, qty: Decimal | None, price: Decimal | None) -> list[Event]:
        if order.status not in OPEN_STATUSES:
            return []
        px = price if price is not None else self.price_of(order.symbol)
        total = order.qty if order.qty is not None else (order.notional or Decimal(0)) / px
        remaining = total - order.filled_qty
        part = remaining if qty is None else min(qty, remaining)
        if part <= 0:
            return []
        cost_before = (order.filled_avg_price or Decimal(0)) * order.filled_qty
        order.filled_qty += part
        order.filled_avg_price = (cost_before + px * part) / order.filled_qty
        now = time.time()
        order.updated = now
        done = order.filled_qty >= total
        order.status = "filled" if done else "partially_filled"
        if done:
            order.filled_at = now
        sign = Decimal(1) if order.side == "buy" else Decimal(-1)
        position = self.positions.setdefault(order.symbol, Position())
        self._book(position, sign * part, px)
        self.cash -= sign * part * px
        message = {
            "event": "fill" if done else "partial_fill",
            "execution_id": str(uuid.uuid4()),
            "order": order.to_json(),
            "timestamp": iso(now),
            "price": num(px),
            "qty": num(part),
            "position_qty": num(position.qty),
        }
        events: list[Event] = [(message, True)]
        if not done:
            return events
        for other in self._group(order):
            events += self._cancel(other)
        if order.order_class in ("bracket", "oto"):
            for leg in order.legs:
                if leg.status == "held":
                    leg.status, leg.updated = "new", now
                    events.append(({"event": "new", "order": leg.to_json(), "timestamp": iso(now)},
                                   False))  # fmt: skip
            for leg in order.legs:
                events += self._cross(leg, self.price_of(leg.symbol))
        return events

    @staticmethod
    def _book(position: Position, delta: Decimal, price: Decimal) -> None:
        if position.qty == 0 or (position.qty > 0) == (delta > 0):
            position.cost += delta * price
        else:  # reducing (or flipping): the cost of what remains keeps its average
            closing = min(abs(delta), abs(position.qty))
            avg = position.cost / position.qty
            position.cost -= avg * closing * (1 if position.qty > 0 else -1)
            leftover = abs(delta) - closing
            if leftover > 0:
                position.cost = delta / abs(delta) * leftover * price
        position.qty += delta
        if position.qty == 0:
            position.cost = Decimal(0)

    def set_position(self, symbol: str, qty: Decimal, price: Decimal = Decimal(100)) -> None:
        with self.lock:
            position = self.positions.setdefault(symbol, Position())
            position.qty, position.cost = qty, qty * price

    def account_json(self) -> dict[str, Any]:
        with self.lock:
            long_value = sum(
                (p.qty * self.price_of(s) for s, p in self.positions.items() if p.qty > 0),
                Decimal(0),
            )
            short_value = sum(
                (p.qty * self.price_of(s) for s, p in self.positions.items() if p.qty < 0),
                Decimal(0),
            )
            equity = self.cash + long_value + short_value
            return {
                "id": "5b3ff1b5-0c3c-4a4b-9b4c-3f1e0f3a1c11",
                "account_number": "PA3FAKE00001",
                "status": "ACTIVE",
                "crypto_status": "INACTIVE",
                "currency": "USD",
                "buying_power": num(self.cash * 2),
                "regt_buying_power": num(self.cash * 2),
                "daytrading_buying_power": "0",
                "non_marginable_buying_power": num(self.cash),
                "cash": num(self.cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "portfolio_value": num(equity),
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": "2024-01-02T14:30:00.000000Z",
                "trade_suspended_by_user": False,
                "multiplier": "2",
                "shorting_enabled": True,
                "equity": num(equity),
                "last_equity": num(self.initial_cash),
                "long_market_value": num(long_value),
                "short_market_value": num(short_value),
                "initial_margin": "0",
                "maintenance_margin": "0",
                "last_maintenance_margin": "0",
                "sma": "0",
                "daytrade_count": 0,
            }

    def positions_json(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.position_json(s, p) for s, p in sorted(self.positions.items()) if p.qty]

    def position_json(self, symbol: str, p: Position) -> dict[str, Any]:
        price = self.price_of(symbol)
        value = p.qty * price
        avg = p.cost / p.qty
        pl = value - p.cost
        return {
            "asset_id": p.asset_id,
            "symbol": symbol,
            "exchange": "NASDAQ",
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": num(avg),
            "qty": num(p.qty),
            "qty_available": num(p.qty),
            "side": "long" if p.qty > 0 else "short",
            "market_value": num(value),
            "cost_basis": num(p.cost),
            "unrealized_pl": num(pl),
            "unrealized_plpc": num(pl / abs(p.cost)) if p.cost else "0",
            "unrealized_intraday_pl": num(pl),
            "unrealized_intraday_plpc": num(pl / abs(p.cost)) if p.cost else "0",
            "current_price": num(price),
            "lastday_price": num(price),
            "change_today": "0",
        }
