"""A loopback fake of Alpaca's trading API: REST and the ``trade_updates`` WebSocket stream.

It speaks Alpaca's wire protocol, so alpaca-py's ``TradingClient`` and ``TradingStream`` work
against it unchanged::

    with FakeAlpacaTrading(fill_price=Decimal("101.25")) as fake:
        client = TradingClient(fake.key_id, fake.secret_key, url_override=fake.base_url)
        stream = TradingStream(fake.key_id, fake.secret_key, url_override=fake.stream_url)

REST (JSON, numbers as strings, UUID ids, ``X-Ratelimit-*`` headers on every answer):
``GET /v2/account``, ``GET /v2/clock``, ``GET /v2/calendar``, ``POST /v2/orders``,
``GET /v2/orders[?nested=true]``,
``GET /v2/orders/{id}``, ``PATCH /v2/orders/{id}``, ``GET /v2/orders:by_client_order_id``,
``DELETE /v2/orders[/{id}]``, ``GET /v2/positions[/{symbol}]``, ``DELETE /v2/positions[/{symbol}]``.
A repeated ``client_order_id`` is refused with 422 ``client_order_id must be unique``
(``enforce_unique``). Orders follow Alpaca's model (``trading_orders``): market, limit, stop,
stop-limit and trailing-stop orders, every time in force, ``extended_hours``, ``qty`` (fractional)
or ``notional``, the classes simple, bracket, OTO and OCO with their legs, replace; an order Alpaca
would refuse is answered with Alpaca's status, code and message.

Stream (JSON text frames): ``{"action":"authenticate","data":{"key_id","secret_key"}}`` ->
``{"stream":"authorization","data":{"status":"authorized",...}}``; ``{"action":"listen",...}`` ->
``{"stream":"listening",...}``; then ``{"stream":"trade_updates","data":{"event",...}}``.

Orders are accepted (``accepted``), then a ``new`` event follows on a worker thread and a market
order fills at the symbol's price (``fill_price``, per symbol if a dict, or the last
``push_price``) in ``fill_parts`` executions; a limit, stop, stop-limit or trailing-stop order
fills (at the price, gaps included) once the price crosses it, checked then and at every
``push_price(symbol, price)`` (from another process: ``POST /fake/prices``); an IOC or FOK
order the price does not cross at once is canceled. A
parent's fill turns its ``held`` legs ``new``; a leg's fill cancels its siblings; each change is
a ``trade_updates`` event. ``auto_fill=False`` leaves new orders ``accepted`` (``fill`` and
``push_price`` still execute them).

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

The market clock: ``market_open`` (``is_open`` on the wall clock), or ``now_ms``, a time the test
sets, for the answer of ``calendar`` (default the bundled one; ``/v2/clock`` and
``/v2/calendar``: ``MarketClock``). With ``now_ms`` set, a ``day`` order expires as Alpaca's do,
at the end of the session it was placed in on that calendar (the regular close, 13:00 on an
early close, 20:00 with ``extended_hours``: ``trading_orders.day_order_end``): ``set_clock(ms)``
(from another process ``POST /fake/clock`` ``{"now_ms": ...}``) moves the market time and
expires the open day orders whose end it reached (and their open legs), each with an ``expired``
trade update. Without ``now_ms`` (the wall clock) nothing expires.

The parts: ``trading_book`` (orders, executions, positions, cash, the market clock: bookkeeping
without I/O), ``trading_http`` (the REST handler and the foreign answers), ``trading_stream`` (the
``trade_updates`` endpoint). This module puts them on the shared ``Loopback`` base (servers,
``start``/``stop``/``close``, ``wait_for``) and adds the fault switches and the worker thread that
announces and fills new orders.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from queue import Empty, Queue
from typing import Any

from flinktrade import sessions
from flinktrade.testing._loopback import FaultPlan, Loopback
from flinktrade.testing.trading_book import (
    OPEN_STATUSES,
    FakeOrder,
    MarketClock,
    OrderBook,
    iso,
)
from flinktrade.testing.trading_http import (
    GATEWAY_PAGE,
    RATE_LIMIT,
    ForeignAnswer,
    Switch,
    TradingHandler,
)
from flinktrade.testing.trading_orders import day_order_end
from flinktrade.testing.trading_stream import TradeUpdates

__all__ = ["GATEWAY_PAGE", "OPEN_STATUSES", "RATE_LIMIT", "FakeAlpacaTrading", "FakeOrder", "serve"]

log = logging.getLogger(__name__)


class FakeAlpacaTrading(Loopback, OrderBook, MarketClock):
    """The fake: a context manager serving REST on ``base_url`` and the stream on ``stream_url``."""

    label = "fake Alpaca"

    def __init__(
        self,
        *,
        fill_price: Decimal | dict[str, Decimal] = Decimal(100),
        auto_fill: bool = True,
        fill_parts: int = 1,
        fill_delay_s: float = 0.0,
        enforce_unique: bool = True,
        market_open: bool = True,
        now_ms: int | None = None,
        calendar: sessions.Calendar | None = None,
        cash: Decimal = Decimal(100_000),
        key_id: str = "fake-key-id",
        secret_key: str = "fake-secret-key",  # noqa: S107 - a test credential, never real
        host: str = "127.0.0.1",
        port: int = 0,
        stream_port: int = 0,
    ) -> None:
        Loopback.__init__(self)
        OrderBook.__init__(
            self, fill_price=fill_price, enforce_unique=enforce_unique, cash=cash, lock=self.lock
        )
        self.auto_fill = auto_fill
        self.fill_parts = max(1, fill_parts)
        self.fill_delay_s = fill_delay_s
        MarketClock.__init__(self, market_open=market_open, now_ms=now_ms, calendar=calendar)
        self.key_id = key_id
        self.secret_key = secret_key
        self._host = host
        self._port = port
        self._stream_port = stream_port

        self.requests: list[tuple[str, str]] = []
        self.request_times: list[float] = []  # time.monotonic() at each request's arrival
        self.order_posts = 0
        self.rate_limit_reset_s = 1.0

        self._switches: FaultPlan[Switch] = FaultPlan()
        self._foreign: FaultPlan[ForeignAnswer] = FaultPlan()
        self._repeat_fills = 1
        self._fills: Queue[str | None] = Queue()
        self._http_address: tuple[str, int] | None = None
        self._stream = TradeUpdates(key_id, secret_key)
        self._stream_address: tuple[str, int] | None = None

    # ------------------------------------------------------------------ lifecycle

    def _start(self) -> None:
        http = self._serve_http(TradingHandler, self._host, self._port)
        host, port = http.server_address[:2]
        self._http_address = (str(host), int(port))
        self._spawn(self._fill_worker, "fake-alpaca-fills")
        server = self._serve_websockets(self._stream.handle, self._host, self._stream_port)
        host, port = next(iter(server.sockets)).getsockname()[:2]
        self._stream_address = (str(host), int(port))

    def _stopping_hook(self) -> None:
        self._fills.put(None)

    def close(self) -> None:
        """The same as ``stop``."""
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._http_address is not None, "the fake is not running"
        host, port = self._http_address
        return f"http://{host}:{port}"

    @property
    def stream_url(self) -> str:
        assert self._stream_address is not None, "the fake is not running"
        host, port = self._stream_address
        return f"ws://{host}:{port}/stream"

    # ------------------------------------------------------------------ fault switches

    def error_after_accept(self, times: int = 1, status: int = 504) -> None:
        self._switch("error_after_accept", times, Switch(status))

    def drop_after_accept(self, times: int = 1) -> None:
        self._switch("drop_after_accept", times, Switch())

    def hang_after_accept(self, times: int = 1, seconds: float = 30.0) -> None:
        self._switch("hang_after_accept", times, Switch(seconds=seconds))

    def error_before_accept(self, times: int = 1, status: int = 503) -> None:
        self._switch("error_before_accept", times, Switch(status))

    def rate_limit(self, times: int = 1, reset_in_s: float = 1.0) -> None:
        self.rate_limit_reset_s = reset_in_s
        self._switch("rate_limit", times, Switch(429))

    def stale_lookup(self, times: int = 1) -> None:
        self._switch("stale_lookup", times, Switch(404))

    def _switch(self, name: str, times: int, switch: Switch) -> None:
        """Arm ``name`` for the next ``times`` requests, in place of what it had left."""
        self._switches.arm(switch, times, scope=name, replace=True)

    def take_switch(self, name: str) -> Switch | None:
        """The switch ``name`` if it is armed for this request (it counts as used)."""
        return self._switches.take(lambda scope: scope == name)

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
        answer = ForeignAnswer(
            "answer", accept, status, body, content_type, rate_headers, dict(headers or {})
        )
        self._foreign.arm(answer, times, scope=(method, path))

    def reset_connection(
        self, *, method: str | None = None, path: str | None = None, times: int = 1,
        accept: bool = False,
    ) -> None:  # fmt: skip
        """Close the next ``times`` matching requests' connections without an answer."""
        self._foreign.arm(ForeignAnswer("reset", accept), times, scope=(method, path))

    def hang(
        self, seconds: float, *, method: str | None = None, path: str | None = None,
        times: int = 1, accept: bool = False,
    ) -> None:  # fmt: skip
        """Hold the next ``times`` matching answers back for ``seconds`` (client timeouts)."""
        answer = ForeignAnswer("hang", accept, seconds=seconds)
        self._foreign.arm(answer, times, scope=(method, path))

    def clear_faults(self) -> None:
        """Forget every armed fault switch and foreign answer: requests succeed again."""
        self._switches.clear()
        self._foreign.clear()

    def take_foreign(self, method: str, path: str) -> ForeignAnswer | None:
        """The foreign answer armed for ``method`` ``path``, if any (it counts as used)."""

        def in_scope(scope: object) -> bool:
            want_method, want_path = scope if isinstance(scope, tuple) else (None, None)
            return want_method in (None, method) and want_path in (None, path)

        return self._foreign.take(in_scope)

    def refuse_stream(self, n: int) -> None:
        """Close the next ``n`` stream connections as soon as they open."""
        self._stream.refuse(n)

    def repeat_fills(self, n: int) -> None:
        self._repeat_fills = max(1, n)

    def drop_events(self, n: int) -> None:
        self._stream.drop(n)

    def disconnect_stream(self) -> None:
        """Close every stream connection (clients reconnect; events meanwhile are lost)."""
        if self._loop is not None:
            self._call(self._stream.disconnect_all(), timeout_s=5)

    # ------------------------------------------------------------------ inspection

    @property
    def request_count(self) -> int:
        with self.lock:
            return len(self.requests)

    @property
    def stream_connections(self) -> int:
        return self._stream.connections

    @property
    def stream_listeners(self) -> int:
        """Stream connections listening to ``trade_updates`` now."""
        return self._stream.listeners

    @property
    def events_sent(self) -> list[dict[str, Any]]:
        return self._stream.events_sent

    def record_request(self, method: str, path: str, at: float) -> None:
        with self.lock:
            self.requests.append((method, path))
            self.request_times.append(at)
            self._changed()

    # ------------------------------------------------------------------ events and fills

    def _on_event(self, data: dict[str, Any], *, fill: bool = False) -> None:
        for _ in range(self._repeat_fills if fill else 1):
            text = self._stream.frame(data)
            if text is not None:
                self._submit(self._stream.broadcast(text))
        self._changed()

    def set_clock(self, now_ms: int) -> None:
        """Move the market time to ``now_ms``: the open ``day`` orders whose session ended by
        then expire (with their open legs), each with an ``expired`` trade update."""
        with self.lock:
            self.now_ms = now_ms
            events: list[tuple[dict[str, Any], bool]] = []
            for order in sorted(self.orders.values(), key=lambda o: o.created):
                end = order.expires_at_ms
                if end is None or end > now_ms or order.status not in OPEN_STATUSES:
                    continue
                for ending in (order, *order.legs):
                    if ending.status in OPEN_STATUSES:
                        ending.status = "expired"
                        ending.expired_at = ending.updated = time.time()
                        message = {"event": "expired", "order": ending.to_json(),
                                   "timestamp": iso(ending.expired_at)}  # fmt: skip
                        events.append((message, False))
        self._emit(events)

    def _on_booked(self, order: FakeOrder) -> None:
        with self.lock:
            if self.now_ms is not None and order.expires_at_ms is None:
                order.expires_at_ms = day_order_end(order, self.now_ms, self._calendar())
                for leg in order.legs:
                    leg.expires_at_ms = day_order_end(leg, self.now_ms, self._calendar())
        if self.auto_fill and order.status == "accepted":
            self._fills.put(order.id)
        self._changed()

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
                    message = {"event": "new", "order": order.to_json(), "timestamp": iso()}
                else:
                    message = None
            if message is not None:
                self._on_event(message)
            if order.type != "market":
                self.cross(order_id)
                continue
            with self.lock:
                total = order.qty
            parts = self.fill_parts if total is not None else 1
            for i in range(parts):
                remaining = None
                if total is not None and i < parts - 1:
                    remaining = (total / parts).quantize(Decimal(1)) or None
                self.fill(order_id, remaining)


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
