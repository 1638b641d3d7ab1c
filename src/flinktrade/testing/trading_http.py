"""The REST side of the fake Alpaca trading API: one handler class, routed by method and path.

``GET /v2/account``, ``GET /v2/clock``, ``GET /v2/calendar``, ``POST /v2/orders``, ``GET /v2/orders``,
``GET /v2/orders/{id}``, ``GET /v2/orders:by_client_order_id``, ``DELETE /v2/orders[/{id}]``,
``GET /v2/positions[/{symbol}]``, ``DELETE /v2/positions[/{symbol}]``: JSON, numbers as strings,
``X-Ratelimit-*`` headers on every answer, 401 for wrong keys. Before routing, the handler asks
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
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from flinktrade.testing.trading_book import OPEN_STATUSES, ApiError

if TYPE_CHECKING:
    from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

log = logging.getLogger(__name__)

RATE_LIMIT = 200
GATEWAY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


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
            if order is None or fake.take_switch("stale_lookup") is not None:
                raise ApiError(404, 40410000, "order not found")
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
                raise ApiError(404, 40410000, "order not found")
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
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, 40010000, "request body format is invalid") from None
        if not isinstance(body, dict):
            raise ApiError(400, 40010000, "request body format is invalid")
        order = fake.create_order(body)
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
