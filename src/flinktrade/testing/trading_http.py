"""The REST side of the fake Alpaca trading API: one handler class, routed by method and path.

``GET /v2/account``, ``GET /v2/clock``, ``GET /v2/calendar``, ``POST /v2/orders``,
``GET /v2/orders`` (``nested=true``
rolls legs up under their parent), ``GET /v2/orders/{id}``, ``PATCH /v2/orders/{id}`` (replace),
``GET /v2/orders:by_client_order_id``, ``DELETE /v2/orders[/{id}]`` (a parent takes its legs),
``GET /v2/positions[/{symbol}]``, ``DELETE /v2/positions[/{symbol}]``, and the fake's own
``POST /fake/prices`` (``{"AAPL": "101.5"}``: ``push_price`` from outside), ``POST /fake/clock``
(``{"now_ms": ...}``: ``set_clock`` from outside): JSON, numbers as
strings, ``X-Ratelimit-*`` headers on every answer, 401 for wrong keys. Before routing, the handler asks
the fake for an armed fault (``ForeignAnswer``: a proxy's page, a reset, a held answer; the named
switches such as ``rate_limit`` or ``error_after_accept``) and answers with it instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from flinktrade.testing.trading_book import OPEN_STATUSES, ApiError

if TYPE_CHECKING:
    from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

log = logging.getLogger(__name__)

RATE_LIMIT = 200
PRICES_PATH = "/fake/prices"  # the fake's control route: push prices from another process
CLOCK_PATH = "/fake/clock"  # set the fake's market time from another process
GATEWAY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def _flag(value: str | None) -> bool:
    return value in ("true", "True", "1")


@dataclass(frozen=True)
class Switch:
    """A named fault switch (``error_after_accept``, ``rate_limit``, ...) and its parameters."""

    status: int = 504
    seconds: float = 0.0


@dataclass(frozen=True)
class ForeignAnswer:
    """An answer that is not the fake's own (see ``answer_with``, ``reset_connection``, ``hang``)."""

    action: str  # "answer" | "reset" | "hang"
    accept: bool = False
    status: int = 502
    body: bytes = b""
    content_type: str | None = None
    rate_headers: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class TradingHandler(BaseHTTPRequestHandler):
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

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fake.record_request(method, path, time.monotonic())
        if (
            self.headers.get("APCA-API-KEY-ID") != fake.key_id
            or self.headers.get("APCA-API-SECRET-KEY") != fake.secret_key
        ):
            self._json(401, {"code": 40110000, "message": "request is not authorized"})
            return
        foreign = fake.take_foreign(method, path)
        if foreign is not None:
            self._foreign(foreign, method, path, raw)
            return
        if fake.take_switch("rate_limit") is not None:
            self._json(429, {"code": 42910000, "message": "rate limit exceeded"}, remaining=0)
            return
        try:
            self._route(method, path, query, raw)
        except ApiError as exc:
            self._json(exc.status, {"code": exc.code, "message": exc.message})

    def _route(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        fake = self.fake
        if path == "/v2/account" and method == "GET":
            self._json(200, fake.account_json())
        elif path == "/v2/clock" and method == "GET":
            self._json(200, fake.clock_json())
        elif path == "/v2/calendar" and method == "GET":
            self._json(200, fake.calendar_json(query.get("start"), query.get("end")))
        elif path == "/v2/orders" and method == "POST":
            self._post_order(raw)
        elif path == "/v2/orders" and method == "GET":
            self._list_orders(query)
        elif path == "/v2/orders" and method == "DELETE":
            canceled = fake.cancel_all()
            with fake.lock:
                body = [{"id": o.id, "status": 200, "body": o.to_json()} for o in canceled]
            self._json(207, body)
        elif path == "/v2/orders:by_client_order_id" and method == "GET":
            coid = query.get("client_order_id", "")
            with fake.lock:
                order = fake.by_client_id.get(coid)
            if order is None or fake.take_switch("stale_lookup") is not None:
                raise ApiError(404, 40410000, "order not found")
            with fake.lock:
                found_json = order.to_json()
            self._json(200, found_json)
        elif path.startswith("/v2/orders/") and method in ("GET", "DELETE", "PATCH"):
            order_id = path.removeprefix("/v2/orders/")
            if method == "DELETE":
                fake.cancel(order_id)
                self._empty(204)
                return
            if method == "PATCH":
                new = fake.replace(order_id, self._body(raw))
                with fake.lock:
                    new_json = new.to_json()
                self._json(200, new_json)
                return
            nested = _flag(query.get("nested"))
            with fake.lock:
                found = fake.orders.get(order_id)
                shown = None if found is None else found.to_json(legs=nested)
            if shown is None:
                raise ApiError(404, 40410000, "order not found")
            self._json(200, shown)
        elif path == "/v2/positions" and method == "GET":
            self._json(200, fake.positions_json())
        elif path == PRICES_PATH and method == "POST":
            self._push_prices(self._body(raw))
        elif path == CLOCK_PATH and method == "POST":
            now_ms = self._body(raw).get("now_ms")
            if not isinstance(now_ms, int) or isinstance(now_ms, bool) or now_ms < 0:
                raise ApiError(422, 40010000, "now_ms must be epoch milliseconds")
            fake.set_clock(now_ms)
            self._json(200, fake.clock_json())
        elif path == "/v2/positions" and method == "DELETE":
            self._close_positions(None, query.get("cancel_orders") in ("true", "True"))
        elif path.startswith("/v2/positions/") and method in ("GET", "DELETE"):
            symbol = path.removeprefix("/v2/positions/").upper()
            with fake.lock:
                position = fake.positions.get(symbol)
                held = position is not None and position.qty != 0
                shown = fake.position_json(symbol, position) if held and position else None
            if shown is None:
                raise ApiError(404, 40410000, "position does not exist")
            if method == "GET":
                self._json(200, shown)
            else:
                self._close_positions(symbol, False)
        else:
            raise ApiError(404, 40410000, "endpoint not found")

    def _post_order(self, raw: bytes) -> None:
        fake = self.fake
        with fake.lock:
            fake.order_posts += 1
        fault = fake.take_switch("error_before_accept")
        if fault is not None:
            self._json(fault.status, {"code": 50010000, "message": "internal server error"})
            return
        order = fake.create_order(self._body(raw))
        fault = fake.take_switch("error_after_accept")
        if fault is not None:
            self._json(fault.status, {"code": 50010000, "message": "gateway timeout"})
            return
        if fake.take_switch("drop_after_accept") is not None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        fault = fake.take_switch("hang_after_accept")
        if fault is not None:
            fake.pause(fault.seconds)
        with fake.lock:
            self._json(200, order.to_json())

    def _push_prices(self, body: dict[str, Any]) -> None:
        """The fake's own control route (not Alpaca's): ``{"AAPL": "101.5", ...}`` moves each
        symbol's price as ``push_price`` does, so a process outside the tests can drive fills."""
        prices = {}
        for symbol, value in body.items():
            try:
                price = Decimal(str(value))
            except InvalidOperation:
                raise ApiError(422, 40010001, f"invalid price {value!r} for {symbol}") from None
            if not price.is_finite() or price <= 0:
                raise ApiError(422, 40010001, f"invalid price {value!r} for {symbol}")
            prices[str(symbol).upper()] = price
        for symbol, price in prices.items():
            self.fake.push_price(symbol, price)
        self._json(200, {symbol: str(price) for symbol, price in prices.items()})

    @staticmethod
    def _body(raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, 40010000, "request body format is invalid") from None
        if not isinstance(body, dict):
            raise ApiError(400, 40010000, "request body format is invalid")
        return body

    def _foreign(self, fault: ForeignAnswer, method: str, path: str, raw: bytes) -> None:
        fake = self.fake
        if method == "POST" and path == "/v2/orders":
            with fake.lock:
                fake.order_posts += 1
        if fault.accept and method == "POST" and path == "/v2/orders":
            with contextlib.suppress(ApiError, ValueError):
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
            fake.pause(fault.seconds)
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
        """Newest first; ``nested=true`` lists parents only, each with its legs, open while any
        of them is open (legs are otherwise listed as orders of their own)."""
        fake = self.fake
        status = query.get("status", "open")
        limit = int(query.get("limit", "50"))
        symbols = set(filter(None, query.get("symbols", "").split(",")))
        nested = _flag(query.get("nested"))
        with fake.lock:
            orders = sorted(fake.orders.values(), key=lambda o: o.created, reverse=True)
            chosen = []
            for o in orders:
                if nested and o.parent_id is not None:
                    continue
                is_open = any(x.status in OPEN_STATUSES for x in (o, *(o.legs if nested else ())))
                if (status == "all" or (status == "open") == is_open) and (
                    not symbols or o.symbol in symbols
                ):
                    chosen.append(o.to_json(legs=nested))
        self._json(200, chosen[: max(1, min(limit, 500))])

    def _close_positions(self, only: str | None, cancel_orders: bool) -> None:
        fake = self.fake
        if cancel_orders:
            fake.cancel_all()
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
