"""A loopback fake of Alpaca's trading API: REST and the ``trade_updates`` WebSocket stream.

It speaks Alpaca's wire protocol, so alpaca-py's ``TradingClient`` and ``TradingStream`` work
against it unchanged::

    with FakeAlpacaTrading(fill_price=Decimal("101.25")) as fake:
        client = TradingClient(fake.key_id, fake.secret_key, url_override=fake.base_url)
        stream = TradingStream(fake.key_id, fake.secret_key, url_override=fake.stream_url)

REST (JSON, numbers as strings, UUID ids, ``X-Ratelimit-*`` headers on every answer):
``GET /v2/account``, ``GET /v2/clock``, ``POST /v2/orders``, ``GET /v2/orders``,
``GET /v2/orders/{id}``, ``GET /v2/orders:by_client_order_id``, ``DELETE /v2/orders[/{id}]``,
``GET /v2/positions[/{symbol}]``, ``DELETE /v2/positions[/{symbol}]``. A repeated
``client_order_id`` is refused with 422 ``client_order_id must be unique`` (``enforce_unique``).

Stream (JSON text frames): ``{"action":"authenticate","data":{"key_id","secret_key"}}`` ->
``{"stream":"authorization","data":{"status":"authorized",...}}``; ``{"action":"listen",...}`` ->
``{"stream":"listening",...}``; then ``{"stream":"trade_updates","data":{"event",...}}``.

Market orders are accepted (``accepted``), then ``new`` and ``fill`` events follow on a worker
thread at ``fill_price`` (per symbol if a dict), in ``fill_parts`` executions.

Fault switches (each for the next ``times`` matching requests): ``error_after_accept`` (the order
is created, the answer is a 5xx), ``drop_after_accept`` (created, connection closed without an
answer), ``hang_after_accept`` (created, the answer is held for ``seconds``), ``error_before_accept``
(5xx, nothing created), ``rate_limit`` (429 with ``X-Ratelimit-Remaining: 0``), ``stale_lookup``
(``by_client_order_id`` answers 404 although the order exists); on the stream: ``repeat_fills``
(each fill event sent ``n`` times), ``drop_events`` (the next ``n`` events are never sent),
``disconnect_stream()``, ``refuse_stream`` (the next ``n`` connections are closed before they can
authenticate). Counters: ``requests`` (with their arrival times in ``request_times``),
``order_posts``, ``created`` (orders created per ``client_order_id``).

Foreign answers, as a proxy or a sick gateway gives them, for the next ``times`` requests that
match ``method``/``path`` (``None`` matches any; with ``accept=True`` a ``POST /v2/orders`` books
the order first): ``answer_with(status, body, content_type=, rate_headers=, headers=)`` (an HTML
error page, an empty body, a 429 without headers...), ``reset_connection`` (closed without an
answer), ``hang(seconds)`` (the answer is held back). ``GATEWAY_PAGE`` is a typical HTML page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from queue import Empty, Queue
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

OPEN_STATUSES = frozenset(
    {"new", "accepted", "pending_new", "partially_filled", "held", "accepted_for_bidding"}
)
RATE_LIMIT = 200


def _iso(ts: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


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
            "created_at": _iso(self.created),
            "updated_at": _iso(self.updated or self.created),
            "submitted_at": _iso(self.created),
            "filled_at": None if self.filled_at is None else _iso(self.filled_at),
            "expired_at": None,
            "canceled_at": None if self.canceled_at is None else _iso(self.canceled_at),
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": self.asset_id,
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": None if self.notional is None else _num(self.notional),
            "qty": None if self.qty is None else _num(self.qty),
            "filled_qty": _num(self.filled_qty),
            "filled_avg_price": (
                None if self.filled_avg_price is None else _num(self.filled_avg_price)
            ),
            "order_class": "simple",
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": "buy_to_open" if self.side == "buy" else "sell_to_close",
            "time_in_force": self.time_in_force,
            "limit_price": None if self.limit_price is None else _num(self.limit_price),
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
class _Position:
    qty: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)  # signed cost basis of the open quantity
    asset_id: str = field(default_factory=lambda: str(uuid.uuid4()))


GATEWAY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass
class _Fault:
    times: int
    status: int = 504
    seconds: float = 0.0


@dataclass
class _Foreign:
    """An answer that is not the fake's own (see ``answer_with``, ``reset_connection``, ``hang``)."""

    times: int
    action: str  # "answer" | "reset" | "hang"
    method: str | None = None
    path: str | None = None
    accept: bool = False
    status: int = 502
    body: bytes = b""
    content_type: str | None = None
    rate_headers: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and (self.method is None or self.method == method)
            and (self.path is None or self.path == path)
        )


class FakeAlpacaTrading:
    """The fake: a context manager serving REST on ``base_url`` and the stream on ``stream_url``."""

    def __init__(
        self,
        *,
        fill_price: Decimal | dict[str, Decimal] = Decimal(100),
        auto_fill: bool = True,
        fill_parts: int = 1,
        fill_delay_s: float = 0.0,
        enforce_unique: bool = True,
        market_open: bool = True,
        cash: Decimal = Decimal(100_000),
        key_id: str = "fake-key-id",
        secret_key: str = "fake-secret-key",  # noqa: S107 - a test credential, never real
        host: str = "127.0.0.1",
        port: int = 0,
        stream_port: int = 0,
    ) -> None:
        self.fill_price = fill_price
        self.auto_fill = auto_fill
        self.fill_parts = max(1, fill_parts)
        self.fill_delay_s = fill_delay_s
        self.enforce_unique = enforce_unique
        self.market_open = market_open
        self.key_id = key_id
        self.secret_key = secret_key
        self.initial_cash = cash
        self._host = host
        self._port = port
        self._stream_port = stream_port

        self.lock = threading.RLock()
        self.orders: dict[str, FakeOrder] = {}
        self.by_client_id: dict[str, FakeOrder] = {}
        self.positions: dict[str, _Position] = {}
        self.cash = cash
        self.requests: list[tuple[str, str]] = []
        self.request_times: list[float] = []  # time.monotonic() at each request's arrival
        self.order_posts = 0
        self.created: Counter[str] = Counter()
        self.events_sent: list[dict[str, Any]] = []
        self.rate_limit_reset_s = 1.0

        self._faults: dict[str, _Fault] = {}
        self._foreign: list[_Foreign] = []
        self._refuse_stream = 0
        self._repeat_fills = 1
        self._drop_events = 0
        self._stop = threading.Event()
        self._fills: Queue[str | None] = Queue()
        self._http: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws_server: Server | None = None
        self._clients: set[ServerConnection] = set()
        self._ws_ready = threading.Event()
        self.stream_connections = 0

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> FakeAlpacaTrading:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._http = ThreadingHTTPServer((self._host, self._port), handler)
        self._http.daemon_threads = True
        self._spawn(self._http.serve_forever, "fake-alpaca-rest")
        self._spawn(self._fill_worker, "fake-alpaca-fills")
        self._spawn(self._run_ws, "fake-alpaca-stream")
        if not self._ws_ready.wait(10):
            raise RuntimeError("the fake trade_updates stream did not start")

    def close(self) -> None:
        self._stop.set()
        self._fills.put(None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._loop is not None and self._ws_server is not None:
            self._loop.call_soon_threadsafe(self._ws_server.close)
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    @property
    def base_url(self) -> str:
        assert self._http is not None
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def stream_url(self) -> str:
        assert self._ws_server is not None
        host, port = next(iter(self._ws_server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}/stream"

    # ------------------------------------------------------------------ fault switches

    def error_after_accept(self, times: int = 1, status: int = 504) -> None:
        self._faults["error_after_accept"] = _Fault(times, status)

    def drop_after_accept(self, times: int = 1) -> None:
        self._faults["drop_after_accept"] = _Fault(times)

    def hang_after_accept(self, times: int = 1, seconds: float = 30.0) -> None:
        self._faults["hang_after_accept"] = _Fault(times, seconds=seconds)

    def error_before_accept(self, times: int = 1, status: int = 503) -> None:
        self._faults["error_before_accept"] = _Fault(times, status)

    def rate_limit(self, times: int = 1, reset_in_s: float = 1.0) -> None:
        self.rate_limit_reset_s = reset_in_s
        self._faults["rate_limit"] = _Fault(times, 429)

    def stale_lookup(self, times: int = 1) -> None:
        self._faults["stale_lookup"] = _Fault(times, 404)

    def answer_with(
        self,
        status: int = 502,
        body: bytes = GATEWAY_PAGE,
        *,
        content_type: str | None = "text/html",
        rate_headers: bool = False,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        accept: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests with exactly this (a proxy's page, an
        empty body, a 429 without ``X-Ratelimit-*`` headers, ...)."""
        with self.lock:
            self._foreign.append(
                _Foreign(times, "answer", method, path, accept, status, body, content_type,
                         rate_headers, dict(headers or {}))
            )  # fmt: skip

    def reset_connection(
        self, *, method: str | None = None, path: str | None = None, times: int = 1,
        accept: bool = False,
    ) -> None:  # fmt: skip
        """Close the next ``times`` matching requests' connections without an answer."""
        with self.lock:
            self._foreign.append(_Foreign(times, "reset", method, path, accept))

    def hang(
        self, seconds: float, *, method: str | None = None, path: str | None = None,
        times: int = 1, accept: bool = False,
    ) -> None:  # fmt: skip
        """Hold the next ``times`` matching answers back for ``seconds`` (client timeouts)."""
        with self.lock:
            self._foreign.append(_Foreign(times, "hang", method, path, accept, seconds=seconds))

    def refuse_stream(self, n: int) -> None:
        """Close the next ``n`` stream connections as soon as they open."""
        self._refuse_stream = n

    def _take_foreign(self, method: str, path: str) -> _Foreign | None:
        with self.lock:
            for fault in self._foreign:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
            return None

    def repeat_fills(self, n: int) -> None:
        self._repeat_fills = max(1, n)

    def drop_events(self, n: int) -> None:
        self._drop_events = n

    def disconnect_stream(self) -> None:
        """Close every stream connection (clients reconnect; events meanwhile are lost)."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._disconnect_all(), self._loop).result(5)

    def _take(self, name: str) -> _Fault | None:
        with self.lock:
            fault = self._faults.get(name)
            if fault is None or fault.times <= 0:
                return None
            fault.times -= 1
            return fault

    # ------------------------------------------------------------------ inspection

    @property
    def request_count(self) -> int:
        with self.lock:
            return len(self.requests)

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

    def wait_for(self, predicate: Callable[[FakeAlpacaTrading], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(self):
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake Alpaca: condition not met within {timeout_s}s")
            time.sleep(0.02)

    # ------------------------------------------------------------------ the book

    def price_of(self, symbol: str) -> Decimal:
        if isinstance(self.fill_price, dict):
            return self.fill_price.get(symbol, Decimal(100))
        return self.fill_price

    def create_order(self, body: dict[str, Any]) -> FakeOrder:
        """Validate and book an order as Alpaca does (raises ``_ApiError``)."""
        symbol = str(body.get("symbol") or "").upper()
        side = body.get("side")
        type_ = body.get("type") or body.get("order_type") or "market"
        tif = body.get("time_in_force")
        if not symbol:
            raise _ApiError(422, 40010001, "symbol is required")
        if side not in ("buy", "sell"):
            raise _ApiError(422, 40010001, "invalid side")
        if tif not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
            raise _ApiError(422, 40010001, "invalid time_in_force")
        if type_ not in ("market", "limit"):
            raise _ApiError(422, 40010001, f"order type {type_} is not supported by the fake")
        qty, notional = _decimal(body.get("qty")), _decimal(body.get("notional"))
        if (qty is None) == (notional is None):
            raise _ApiError(422, 40010001, "qty or notional is required")
        if (qty is not None and qty <= 0) or (notional is not None and notional <= 0):
            raise _ApiError(422, 40010001, "qty must be > 0")
        coid = str(body.get("client_order_id") or uuid.uuid4())
        if len(coid) > 128:
            raise _ApiError(422, 40010001, "client_order_id must be no more than 128 characters")
        with self.lock:
            if self.enforce_unique and coid in self.by_client_id:
                raise _ApiError(422, 40010001, "client_order_id must be unique")
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
        if self.auto_fill and order.type == "market":
            self._fills.put(order.id)
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
            position = self.positions.setdefault(order.symbol, _Position())
            self._book(position, sign * part, px)
            self.cash -= sign * part * px
            message = {
                "event": "fill" if done else "partial_fill",
                "execution_id": str(uuid.uuid4()),
                "order": order.to_json(),
                "timestamp": _iso(now),
                "price": _num(px),
                "qty": _num(part),
                "position_qty": _num(position.qty),
            }
        for _ in range(self._repeat_fills):
            self._publish(message)

    @staticmethod
    def _book(position: _Position, delta: Decimal, price: Decimal) -> None:
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
            position = self.positions.setdefault(symbol, _Position())
            position.qty, position.cost = qty, qty * price

    def cancel(self, order_id: str) -> FakeOrder:
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise _ApiError(404, 40410000, "order not found")
            if order.status not in OPEN_STATUSES:
                raise _ApiError(422, 42210000, "order is not cancelable")
            order.status = "canceled"
            order.canceled_at = order.updated = time.time()
            message = {"event": "canceled", "order": order.to_json(), "timestamp": _iso()}
        self._publish(message)
        return order

    def _fill_worker(self) -> None:
        while not self._stop.is_set():
            try:
                order_id = self._fills.get(timeout=0.5)
            except Empty:
                continue
            if order_id is None:
                return
            if self.fill_delay_s:
                self._stop.wait(self.fill_delay_s)
            with self.lock:
                order = self.orders[order_id]
                if order.status == "accepted":
                    order.status = "new"
                    order.updated = time.time()
                    message = {"event": "new", "order": order.to_json(), "timestamp": _iso()}
                else:
                    message = None
            if message is not None:
                self._publish(message)
            with self.lock:
                total = order.qty
            parts = self.fill_parts if total is not None else 1
            for i in range(parts):
                remaining = None
                if total is not None and i < parts - 1:
                    remaining = (total / parts).quantize(Decimal(1)) or None
                self.fill(order_id, remaining)

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
                "buying_power": _num(self.cash * 2),
                "regt_buying_power": _num(self.cash * 2),
                "daytrading_buying_power": "0",
                "non_marginable_buying_power": _num(self.cash),
                "cash": _num(self.cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "portfolio_value": _num(equity),
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": "2024-01-02T14:30:00.000000Z",
                "trade_suspended_by_user": False,
                "multiplier": "2",
                "shorting_enabled": True,
                "equity": _num(equity),
                "last_equity": _num(self.initial_cash),
                "long_market_value": _num(long_value),
                "short_market_value": _num(short_value),
                "initial_margin": "0",
                "maintenance_margin": "0",
                "last_maintenance_margin": "0",
                "sma": "0",
                "daytrade_count": 0,
            }

    def positions_json(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self._position_json(s, p) for s, p in sorted(self.positions.items()) if p.qty]

    def _position_json(self, symbol: str, p: _Position) -> dict[str, Any]:
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
            "avg_entry_price": _num(avg),
            "qty": _num(p.qty),
            "qty_available": _num(p.qty),
            "side": "long" if p.qty > 0 else "short",
            "market_value": _num(value),
            "cost_basis": _num(p.cost),
            "unrealized_pl": _num(pl),
            "unrealized_plpc": _num(pl / abs(p.cost)) if p.cost else "0",
            "unrealized_intraday_pl": _num(pl),
            "unrealized_intraday_plpc": _num(pl / abs(p.cost)) if p.cost else "0",
            "current_price": _num(price),
            "lastday_price": _num(price),
            "change_today": "0",
        }

    def clock_json(self) -> dict[str, Any]:
        now = datetime.now(tz=UTC)
        return {
            "timestamp": now.isoformat(),
            "is_open": self.market_open,
            "next_open": (now + timedelta(hours=1)).isoformat(),
            "next_close": (now + timedelta(hours=7)).isoformat(),
        }

    # ------------------------------------------------------------------ stream

    def _publish(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.events_sent.append(data)
            if self._drop_events > 0:
                self._drop_events -= 1
                return
        if self._loop is None or self._stop.is_set():
            return
        text = json.dumps({"stream": "trade_updates", "data": data})
        asyncio.run_coroutine_threadsafe(self._broadcast(text), self._loop)

    async def _broadcast(self, text: str) -> None:
        for ws in list(self._clients):
            with contextlib.suppress(ConnectionClosed):
                await ws.send(text)

    async def _disconnect_all(self) -> None:
        for ws in list(self._clients):
            self._clients.discard(ws)
            await ws.close(code=1011, reason="fake: dropped")

    def _run_ws(self) -> None:
        asyncio.run(self._ws_main())

    async def _ws_main(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with ws_serve(self._ws_handler, self._host, self._stream_port) as server:
            self._ws_server = server
            self._ws_ready.set()
            await server.wait_closed()

    async def _ws_handler(self, ws: ServerConnection) -> None:
        self.stream_connections += 1
        if self._refuse_stream > 0:
            self._refuse_stream -= 1
            await ws.close(code=1013, reason="fake: try again later")
            return
        authorized = False
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await ws.send(json.dumps({"stream": "error", "data": {"message": "bad json"}}))
                    continue
                action = msg.get("action") if isinstance(msg, dict) else None
                data = msg.get("data") or {} if isinstance(msg, dict) else {}
                if action in ("authenticate", "auth"):
                    authorized = (
                        data.get("key_id") == self.key_id
                        and data.get("secret_key") == self.secret_key
                    )
                    status = "authorized" if authorized else "unauthorized"
                    await ws.send(
                        json.dumps(
                            {
                                "stream": "authorization",
                                "data": {"action": "authenticate", "status": status},
                            }
                        )
                    )
                    if not authorized:
                        await ws.close(code=1008, reason="unauthorized")
                        return
                elif action == "listen" and authorized:
                    streams = list(data.get("streams") or [])
                    if "trade_updates" in streams:
                        self._clients.add(ws)
                    await ws.send(json.dumps({"stream": "listening", "data": {"streams": streams}}))
                else:
                    await ws.send(
                        json.dumps({"stream": "error", "data": {"message": "not authorized"}})
                    )
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(ws)


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise _ApiError(422, 40010001, f"invalid number {value!r}") from None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAlpacaTrading
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake alpaca: " + format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with fake.lock:
            fake.requests.append((method, path))
            fake.request_times.append(time.monotonic())
        if (
            self.headers.get("APCA-API-KEY-ID") != fake.key_id
            or self.headers.get("APCA-API-SECRET-KEY") != fake.secret_key
        ):
            self._json(401, {"code": 40110000, "message": "request is not authorized"})
            return
        foreign = fake._take_foreign(method, path)
        if foreign is not None:
            self._foreign(foreign, method, path, raw)
            return
        if fake._take("rate_limit") is not None:
            self._json(429, {"code": 42910000, "message": "rate limit exceeded"}, remaining=0)
            return
        try:
            self._route(method, path, query, raw)
        except _ApiError as exc:
            self._json(exc.status, {"code": exc.code, "message": exc.message})

    def _route(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        fake = self.fake
        if path == "/v2/account" and method == "GET":
            self._json(200, fake.account_json())
        elif path == "/v2/clock" and method == "GET":
            self._json(200, fake.clock_json())
        elif path == "/v2/orders" and method == "POST":
            self._post_order(raw)
        elif path == "/v2/orders" and method == "GET":
            self._list_orders(query)
        elif path == "/v2/orders" and method == "DELETE":
            with fake.lock:
                open_ids = [o.id for o in fake.orders.values() if o.status in OPEN_STATUSES]
            body = [
                {"id": oid, "status": 200, "body": fake.cancel(oid).to_json()} for oid in open_ids
            ]
            self._json(207, body)
        elif path == "/v2/orders:by_client_order_id" and method == "GET":
            coid = query.get("client_order_id", "")
            with fake.lock:
                order = fake.by_client_id.get(coid)
            if order is None or fake._take("stale_lookup") is not None:
                raise _ApiError(404, 40410000, "order not found")
            self._json(200, order.to_json())
        elif path.startswith("/v2/orders/") and method in ("GET", "DELETE"):
            order_id = path.removeprefix("/v2/orders/")
            if method == "DELETE":
                fake.cancel(order_id)
                self._empty(204)
                return
            with fake.lock:
                found = fake.orders.get(order_id)
            if found is None:
                raise _ApiError(404, 40410000, "order not found")
            self._json(200, found.to_json())
        elif path == "/v2/positions" and method == "GET":
            self._json(200, fake.positions_json())
        elif path == "/v2/positions" and method == "DELETE":
            self._close_positions(None, query.get("cancel_orders") in ("true", "True"))
        elif path.startswith("/v2/positions/") and method in ("GET", "DELETE"):
            symbol = path.removeprefix("/v2/positions/").upper()
            with fake.lock:
                position = fake.positions.get(symbol)
                held = position is not None and position.qty != 0
                shown = fake._position_json(symbol, position) if held and position else None
            if shown is None:
                raise _ApiError(404, 40410000, "position does not exist")
            if method == "GET":
                self._json(200, shown)
            else:
                self._close_positions(symbol, False)
        else:
            raise _ApiError(404, 40410000, "endpoint not found")

    def _post_order(self, raw: bytes) -> None:
        fake = self.fake
        with fake.lock:
            fake.order_posts += 1
        fault = fake._take("error_before_accept")
        if fault is not None:
            self._json(fault.status, {"code": 50010000, "message": "internal server error"})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise _ApiError(400, 40010000, "request body format is invalid") from None
        if not isinstance(body, dict):
            raise _ApiError(400, 40010000, "request body format is invalid")
        order = fake.create_order(body)
        fault = fake._take("error_after_accept")
        if fault is not None:
            self._json(fault.status, {"code": 50010000, "message": "gateway timeout"})
            return
        if fake._take("drop_after_accept") is not None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        fault = fake._take("hang_after_accept")
        if fault is not None:
            fake._stop.wait(fault.seconds)
        with fake.lock:
            self._json(200, order.to_json())

    def _foreign(self, fault: _Foreign, method: str, path: str, raw: bytes) -> None:
        fake = self.fake
        if method == "POST" and path == "/v2/orders":
            with fake.lock:
                fake.order_posts += 1
        if fault.accept and method == "POST" and path == "/v2/orders":
            with contextlib.suppress(_ApiError, ValueError):
                body = json.loads(raw or b"{}")
                if isinstance(body, dict):
                    fake.create_order(body)
        if fault.action == "reset":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault.action == "hang":
            fake._stop.wait(fault.seconds)
            with contextlib.suppress(OSError):  # the client has usually given up by now
                self._json(504, {"code": 50410000, "message": "gateway timeout"})
            return
        self.send_response(fault.status)
        if fault.content_type is not None:
            self.send_header("Content-Type", fault.content_type)
        self.send_header("Content-Length", str(len(fault.body)))
        for name, value in fault.headers.items():
            self.send_header(name, value)
        if fault.rate_headers:
            self._headers(0 if fault.status == 429 else None)
        self.end_headers()
        self.wfile.write(fault.body)

    def _list_orders(self, query: dict[str, str]) -> None:
        fake = self.fake
        status = query.get("status", "open")
        limit = int(query.get("limit", "50"))
        symbols = set(filter(None, query.get("symbols", "").split(",")))
        with fake.lock:
            orders = sorted(fake.orders.values(), key=lambda o: o.created, reverse=True)
            chosen = [
                o.to_json()
                for o in orders
                if (status == "all" or (status == "open") == (o.status in OPEN_STATUSES))
                and (not symbols or o.symbol in symbols)
            ]
        self._json(200, chosen[: max(1, min(limit, 500))])

    def _close_positions(self, only: str | None, cancel_orders: bool) -> None:
        fake = self.fake
        if cancel_orders:
            with fake.lock:
                open_ids = [o.id for o in fake.orders.values() if o.status in OPEN_STATUSES]
            for oid in open_ids:
                fake.cancel(oid)
        with fake.lock:
            held = [(s, p.qty) for s, p in sorted(fake.positions.items()) if p.qty != 0]
        results = []
        for symbol, qty in held:
            if only is not None and symbol != only:
                continue
            order = fake.create_order(
                {"symbol": symbol, "side": "sell" if qty > 0 else "buy", "qty": str(abs(qty)),
                 "type": "market", "time_in_force": "day"}
            )  # fmt: skip
            results.append({"symbol": symbol, "status": 200, "body": order.to_json()})
        if only is not None:
            self._json(200, results[0]["body"])
        else:
            self._json(207, results)

    def _headers(self, remaining: int | None) -> None:
        fake = self.fake
        with fake.lock:
            used = len(fake.requests)
        left = max(0, RATE_LIMIT - used % RATE_LIMIT) if remaining is None else remaining
        self.send_header("X-Ratelimit-Limit", str(RATE_LIMIT))
        self.send_header("X-Ratelimit-Remaining", str(left))
        reset = time.time() + (fake.rate_limit_reset_s if remaining == 0 else 60)
        self.send_header("X-Ratelimit-Reset", str(int(reset + 0.999)))

    def _json(self, status: int, body: Any, remaining: int | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self._headers(remaining)
        self.end_headers()
        self.wfile.write(data)

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self._headers(None)
        self.end_headers()


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    stream_port: int = 0,
    *,
    fill_price: Decimal = Decimal(100),
    stop: threading.Event | None = None,
    on_ready: Callable[[FakeAlpacaTrading], None] | None = None,
) -> None:
    """Run the fake until ``stop`` is set (or Ctrl-C). ``on_ready`` receives it once it listens,
    e.g. to print ``base_url`` and ``stream_url`` for ``APCA_API_BASE_URL`` /
    ``APCA_API_TRADING_STREAM_URL``; its credentials are ``key_id`` / ``secret_key``."""
    stop = stop or threading.Event()
    with FakeAlpacaTrading(
        host=host, port=port, stream_port=stream_port, fill_price=fill_price
    ) as fake:
        if on_ready is not None:
            on_ready(fake)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            log.info("fake Alpaca trading API stopped")
