"""The order book of the fake Alpaca trading API: orders, executions, positions, cash.

Pure bookkeeping, no I/O and no threads of its own: ``create_order`` validates and books an
order as Alpaca does (raising ``ApiError`` with Alpaca's status and code), ``fill`` executes
(part of) one and ``cancel`` cancels one, and every change of an order becomes a
``trade_updates`` event handed to ``_on_event`` (the fake streams it; the base keeps nothing).
``account_json``/``positions_json`` render the account in Alpaca's wire form (numbers as
strings). ``FakeAlpacaTrading`` builds on it and adds the servers; tests may use it alone.

``MarketClock`` is the fake's market time: ``GET /v2/clock`` and ``GET /v2/calendar`` answered
from the bundled calendar (``flinktrade.sessions``) at a time the test sets (``now_ms``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from flinktrade import sessions

OPEN_STATUSES = frozenset(
    {"new", "accepted", "pending_new", "partially_filled", "held", "accepted_for_bidding"}
)


def iso(ts: float | None = None) -> str:
    """Alpaca's text of a time (now if ``None``): RFC 3339, microseconds, ``Z``."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def num(value: Decimal) -> str:
    """Alpaca's text of a number: plain digits, no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


class ApiError(Exception):
    """An error answer of the API: HTTP ``status``, Alpaca's ``code`` and ``message``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ApiError(422, 40010001, f"invalid number {value!r}") from None


class MarketClock:
    """The fake's market time. With ``now_ms`` set (by the test), ``GET /v2/clock`` tells the
    bundled calendar's answer at that time; with ``now_ms`` None it tells the wall clock with
    ``market_open`` as ``is_open`` (next open in an hour, next close in seven), as it always did.
    ``GET /v2/calendar`` lists the bundled calendar's trading days from ``start`` to ``end``."""

    def __init__(
        self,
        *,
        market_open: bool = True,
        now_ms: int | None = None,
        calendar: sessions.Calendar | None = None,
    ) -> None:
        self.market_open = market_open
        self.now_ms = now_ms
        self.calendar = calendar

    def _calendar(self) -> sessions.Calendar:
        return self.calendar if self.calendar is not None else sessions.bundled()

    def clock_json(self) -> dict[str, Any]:
        if self.now_ms is not None:
            return self._calendar().clock(self.now_ms).to_json()
        now = datetime.now(tz=UTC)
        return {
            "timestamp": now.isoformat(),
            "is_open": self.market_open,
            "next_open": (now + timedelta(hours=1)).isoformat(),
            "next_close": (now + timedelta(hours=7)).isoformat(),
        }

    def calendar_json(self, start: str | None, end: str | None) -> list[dict[str, str]]:
        """The trading days from ``start`` to ``end`` (dates, or RFC 3339 times: their date),
        both included; without them, those of the whole calendar."""
        calendar = self._calendar()
        first = _calendar_date(start, "start") or calendar.first or date(1970, 1, 1)
        last = _calendar_date(end, "end") or calendar.last or date(2029, 12, 31)
        return [day.to_json() for day in calendar.days(first, last)]


def _calendar_date(text: str | None, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ApiError(400, 40010000, f"invalid {name}: {text[:40]}") from None


@dataclass
class FakeOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal | None
    notional: Decimal | None
    type: str
    time_in_force: str
    limit_price: Decimal | None
    created: float
    status: str = "accepted"
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    filled_at: float | None = None
    canceled_at: float | None = None
    updated: float = 0.0
    asset_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": iso(self.created),
            "updated_at": iso(self.updated or self.created),
            "submitted_at": iso(self.created),
            "filled_at": None if self.filled_at is None else iso(self.filled_at),
            "expired_at": None,
            "canceled_at": None if self.canceled_at is None else iso(self.canceled_at),
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": self.asset_id,
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": None if self.notional is None else num(self.notional),
            "qty": None if self.qty is None else num(self.qty),
            "filled_qty": num(self.filled_qty),
            "filled_avg_price": (
                None if self.filled_avg_price is None else num(self.filled_avg_price)
            ),
            "order_class": "simple",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": "buy_to_open" if self.side == "buy" else "sell_to_close",
            "time_in_force": self.time_in_force,
            "limit_price": None if self.limit_price is None else num(self.limit_price),
            "stop_price": None,
            "status": self.status,
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
        }


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
        self.created: Counter[str] = Counter()

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
        if isinstance(self.fill_price, dict):
            return self.fill_price.get(symbol, Decimal(100))
        return self.fill_price

    def create_order(self, body: dict[str, Any]) -> FakeOrder:
        """Validate and book an order as Alpaca does (raises ``ApiError``)."""
        symbol = str(body.get("symbol") or "").upper()
        side = body.get("side")
        type_ = body.get("type") or body.get("order_type") or "market"
        tif = body.get("time_in_force")
        if not symbol:
            raise ApiError(422, 40010001, "symbol is required")
        if side not in ("buy", "sell"):
            raise ApiError(422, 40010001, "invalid side")
        if tif not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
            raise ApiError(422, 40010001, "invalid time_in_force")
        if type_ not in ("market", "limit"):
            raise ApiError(422, 40010001, f"order type {type_} is not supported by the fake")
        qty, notional = _decimal(body.get("qty")), _decimal(body.get("notional"))
        if (qty is None) == (notional is None):
            raise ApiError(422, 40010001, "qty or notional is required")
        if (qty is not None and qty <= 0) or (notional is not None and notional <= 0):
            raise ApiError(422, 40010001, "qty must be > 0")
        coid = str(body.get("client_order_id") or uuid.uuid4())
        if len(coid) > 128:
            raise ApiError(422, 40010001, "client_order_id must be no more than 128 characters")
        with self.lock:
            if self.enforce_unique and coid in self.by_client_id:
                raise ApiError(422, 40010001, "client_order_id must be unique")
            now = time.time()
            order = FakeOrder(
                id=str(uuid.uuid4()),
                client_order_id=coid,
                symbol=symbol,
                side=str(side),
                qty=qty,
                notional=notional,
                type=str(type_),
                time_in_force=str(tif),
                limit_price=_decimal(body.get("limit_price")),
                created=now,
                updated=now,
            )
            self.orders[order.id] = order
            self.by_client_id[coid] = order
            self.created[coid] += 1
        self._on_booked(order)
        return order

    def place_external_order(self, symbol: str, side: str, qty: Decimal) -> FakeOrder:
        """An order placed by someone else on the account (the web UI, another program)."""
        return self.create_order(
            {"symbol": symbol, "side": side, "qty": str(qty), "type": "market",
             "time_in_force": "day", "client_order_id": f"manual-{uuid.uuid4().hex[:12]}"}
        )  # fmt: skip

    def fill(self, order_id: str, qty: Decimal | None = None, price: Decimal | None = None) -> None:
        """Execute (part of) an order now and push the fill event."""
        with self.lock:
            order = self.orders[order_id]
            if order.status not in OPEN_STATUSES:
                return
            px = price if price is not None else self.price_of(order.symbol)
            total = order.qty if order.qty is not None else (order.notional or Decimal(0)) / px
            remaining = total - order.filled_qty
            part = remaining if qty is None else min(qty, remaining)
            if part <= 0:
                return
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
        self._on_event(message, fill=True)

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

    def cancel(self, order_id: str) -> FakeOrder:
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise ApiError(404, 40410000, "order not found")
            if order.status not in OPEN_STATUSES:
                raise ApiError(422, 42210000, "order is not cancelable")
            order.status = "canceled"
            order.canceled_at = order.updated = time.time()
            message = {"event": "canceled", "order": order.to_json(), "timestamp": iso()}
        self._on_event(message)
        return order

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
