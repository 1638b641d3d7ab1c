"""A loopback fake of Alpaca's market data API: historical REST and the real-time WebSocket streams.

It speaks Alpaca's wire protocols, so the real alpaca-py clients work against it unchanged::

    with FakeAlpacaData(seed=7) as fake:
        StockHistoricalDataClient(fake.key_id, fake.secret_key, url_override=fake.rest_url)
        StockDataStream(fake.key_id, fake.secret_key, url_override=fake.stream_url("iex"))
        NewsDataStream(fake.key_id, fake.secret_key, url_override=fake.news_stream_url)

REST and WebSocket share one port (one asyncio server in a background thread): plain ``GET``
requests are answered as REST, upgrade requests become streams.

REST: ``/v2/stocks/bars``, ``/v2/stocks/trades`` (``{"bars"|"trades": {symbol: [...]},
"next_page_token"}``, ordered by symbol then time) and ``/v1beta1/news`` (``{"news": [...],
"next_page_token"}``), paginated with ``limit`` and an opaque ``page_token``, authenticated with the
``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers. Faults on demand: ``rate_limit`` (HTTP 429
with ``Retry-After`` and ``X-Ratelimit-Limit/Remaining/Reset``) and ``fail`` (bursts of 5xx).

Streams: ``/v2/{feed}`` (trades, quotes, bars, statuses) and ``/v1beta1/news``, in msgpack with
timestamps as msgpack Timestamp extensions: ``connected`` on open, ``auth``, ``subscribe`` answered
with the full subscription set, then arrays of ``t``/``q``/``b``/``s``/``n`` messages.
``drop_streams`` cuts every connection without a close frame, as a network failure would;
``mute_streams`` keeps connections open but delivers nothing on them (alpaca-py issue 740), until
unmuted or reconnected. Wrong keys get error 402 on the stream's auth and HTTP 401 on REST.

Data is a deterministic function of ``seed``, symbol and minute: one bar per minute of the regular
session (14:30-21:00 UTC, Monday to Friday), one to three trades per bar, one news item per symbol
every two hours. ``bars``, ``trades`` and ``news`` return that ground truth for tests to compare
against. A market clock (``clock_ms``) caps what REST returns, like "now" does on the real API;
``emit_minutes`` advances it and pushes the new minute to subscribed stream clients. The market
itself is ``alpaca_market.MarketTruth`` (no I/O); this module serves it on the shared ``Loopback``
base.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgpack
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from flinktrade.testing._loopback import FaultPlan, Loopback
from flinktrade.testing.alpaca_market import (
    MINUTE_MS,
    MarketTruth,
    iso,
    parse_time,
    session_minutes,
)

__all__ = [
    "FEEDS",
    "MINUTE_MS",
    "FakeAlpacaData",
    "MarketTruth",
    "RestRequest",
    "iso",
    "parse_time",
    "serve",
    "session_minutes",
]

log = logging.getLogger(__name__)
_WS_LOG = logging.getLogger(f"{__name__}.websockets")
_WS_LOG.setLevel(logging.WARNING)  # one line per REST request otherwise

FAKE_KEY_ID = "fake-key-id"
FAKE_SECRET_KEY = "fake-secret-key"  # noqa: S105 - the fake's own, not a secret
MAX_LIMIT = {"bars": 10_000, "trades": 10_000, "news": 50}
DEFAULT_LIMIT = {"bars": 1_000, "trades": 1_000, "news": 10}
FEEDS = ("iex", "sip", "delayed_sip", "test")


@dataclass(frozen=True)
class RestRequest:
    """One REST request as the fake saw it and the status it answered."""

    path: str
    params: dict[str, str]
    status: int
    at: float
    """``time.monotonic()`` when it arrived."""


@dataclass(frozen=True)
class _Fault:
    status: int
    headers: dict[str, str]
    body: str


@dataclass
class _Client:
    connection: ServerConnection
    path: str
    subscriptions: dict[str, set[str]] = field(default_factory=dict)
    authenticated: bool = False


class FakeAlpacaData(Loopback, MarketTruth):
    """Alpaca market data (REST + streams) on a loopback port; a context manager."""

    label = "fake alpaca"

    def __init__(
        self,
        seed: int = 7,
        key_id: str = FAKE_KEY_ID,
        secret_key: str = FAKE_SECRET_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        clock_ms: int | None = None,
    ) -> None:
        Loopback.__init__(self)
        MarketTruth.__init__(self, seed, clock_ms, self.lock)
        self.key_id = key_id
        self.secret_key = secret_key
        self.host = host
        self.port = port
        self.requests: list[RestRequest] = []
        self.stream_connections: dict[str, int] = {}
        """Opened WebSocket connections per path (``/v2/iex``, ``/v1beta1/news``)."""
        self._faults: FaultPlan[_Fault] = FaultPlan()
        self._refusing = False
        self._muted: set[str] = set()
        self._clients: list[_Client] = []

    # ----------------------------------------------------------------- lifecycle

    def _start(self) -> None:
        server = self._serve_websockets(
            self._handle_stream,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=2**22,
            logger=_WS_LOG,
        )
        self.port = int(next(iter(server.sockets)).getsockname()[1])

    @property
    def rest_url(self) -> str:
        """The market data REST root, for ``url_override`` / ``APCA_API_DATA_URL``."""
        return f"http://{self.host}:{self.port}"

    def stream_url(self, feed: str = "iex") -> str:
        """The full market data stream URL of ``feed``, for ``APCA_API_STREAM_URL``."""
        return f"ws://{self.host}:{self.port}/v2/{feed}"

    @property
    def news_stream_url(self) -> str:
        """The full news stream URL, for ``APCA_API_NEWS_STREAM_URL``."""
        return f"ws://{self.host}:{self.port}/v1beta1/news"

    # ----------------------------------------------------------------- faults and counters

    def rate_limit(
        self,
        times: int = 1,
        retry_after: float | None = 1,
        reset_in: float | None = None,
        path: str | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``times`` REST requests (to ``path``, if given; after letting ``after``
        of them through) with HTTP 429.

        ``retry_after`` sets ``Retry-After`` (seconds); ``reset_in`` sets ``X-Ratelimit-Reset`` to
        now + that many seconds (epoch seconds, as Alpaca does).
        """
        headers = {"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": "0"}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        if reset_in is not None:
            headers["X-Ratelimit-Reset"] = str(math.ceil(time.time() + reset_in))
        body = json.dumps({"code": 42910000, "message": "rate limit exceeded"})
        self._faults.arm(_Fault(429, headers, body), times, scope=path, after=after)

    def fail(
        self, times: int = 1, status: int = 503, path: str | None = None, after: int = 0
    ) -> None:
        """Answer the next ``times`` REST requests (to ``path``, if given; after letting
        ``after`` of them through) with ``status``."""
        body = json.dumps({"code": status * 100_000, "message": HTTPStatus(status).phrase})
        self._faults.arm(_Fault(status, {}, body), times, scope=path, after=after)

    def clear_faults(self) -> None:
        """Forget every prepared fault: requests succeed again."""
        self._faults.clear()

    def request_count(self, path: str | None = None, status: int | None = None) -> int:
        with self.lock:
            return sum(
                1
                for r in self.requests
                if (path is None or r.path == path) and (status is None or r.status == status)
            )

    # ----------------------------------------------------------------- REST

    def refuse_streams(self, refuse: bool = True) -> None:
        """While set, new stream connections are refused (HTTP 503 to the upgrade), as during an
        outage; REST keeps working."""
        self._refusing = refuse

    def mute_streams(self, path: str, mute: bool = True) -> None:
        """While set, the connections open on ``path`` now stay open but get nothing more (the
        "connected but silent" failure); new connections are served normally."""
        with self.lock:
            connections = {id(c.connection) for c in self._clients if c.path == path}
            if mute:
                self._muted |= {f"{path}#{cid}" for cid in connections}
            else:
                self._muted = {m for m in self._muted if not m.startswith(f"{path}#")}

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if self._refusing:
                return _response(503, json.dumps({"message": "unavailable"}), {})
            return None
        parts = urlsplit(request.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        status, body, headers = self._answer(parts.path, params, request.headers)
        with self.lock:
            self.requests.append(RestRequest(parts.path, params, status, time.monotonic()))
            self._changed()
        return _response(status, body, headers)

    def _answer(
        self, path: str, params: dict[str, str], headers: Headers
    ) -> tuple[int, str, dict[str, str]]:
        fault = self._faults.take(lambda scope: scope in (None, path))
        if fault is not None:
            return fault.status, fault.body, dict(fault.headers)
        if (
            headers.get("APCA-API-KEY-ID") != self.key_id
            or headers.get("APCA-API-SECRET-KEY") != self.secret_key
        ):
            return 401, json.dumps({"code": 40110000, "message": "request is not authorized"}), {}
        kind = {"/v2/stocks/bars": "bars", "/v2/stocks/trades": "trades", "/v1beta1/news": "news"}
        if path not in kind:
            return 404, json.dumps({"message": "Not Found"}), {}
        try:
            return 200, json.dumps(self._page(kind[path], params)), {}
        except ValueError as exc:
            return 422, json.dumps({"code": 42210000, "message": str(exc)}), {}

    def _page(self, kind: str, params: dict[str, str]) -> dict[str, Any]:
        symbols = [s for s in params.get("symbols", "").split(",") if s]
        if not symbols:
            raise ValueError("missing symbols")
        limit = int(params.get("limit") or DEFAULT_LIMIT[kind])
        if not 1 <= limit <= MAX_LIMIT[kind]:
            raise ValueError(f"invalid limit: must be between 1 and {MAX_LIMIT[kind]}")
        now = self.clock_ms if self.clock_ms is not None else int(time.time() * 1000)
        start = (
            parse_time(params["start"]) if params.get("start") else now // 86_400_000 * 86_400_000
        )
        end = parse_time(params["end"]) if params.get("end") else now
        descending = params.get("sort", "asc" if kind != "news" else "desc").lower() == "desc"
        offset = _decode_token(params.get("page_token"))
        if kind == "news":
            items = self.news(symbols, start, end)
            if descending:
                items.reverse()
            chunk = items[offset : offset + limit]
            more = offset + limit < len(items)
            return {
                "news": chunk,
                "next_page_token": _encode_token(offset + limit) if more else None,
            }
        rows: list[tuple[str, dict[str, Any]]] = []
        for symbol in sorted(set(symbols)):
            if kind == "bars":
                records = self.bars(symbol, start, end, params.get("timeframe", "1Min"))
            else:
                records = self.trades(symbol, start, end)
            if descending:
                records.reverse()
            rows += [(symbol, r) for r in records]
            with self.lock:
                rows += list(self._stray[kind].get(symbol, []))
        grouped: dict[str, list[dict[str, Any]]] = {}
        for symbol, record in rows[offset : offset + limit]:
            grouped.setdefault(symbol, []).append(record)
        more = offset + limit < len(rows)
        return {kind: grouped, "next_page_token": _encode_token(offset + limit) if more else None}

    # ----------------------------------------------------------------- streams

    async def _handle_stream(self, connection: ServerConnection) -> None:
        path = urlsplit(connection.request.path if connection.request else "/").path
        is_news = path == "/v1beta1/news"
        if not is_news and path.removeprefix("/v2/") not in FEEDS:
            await connection.close(1008, "unknown stream")
            return
        client = _Client(connection, path)
        with self.lock:
            self.stream_connections[path] = self.stream_connections.get(path, 0) + 1
        try:
            await connection.send(_pack([{"T": "success", "msg": "connected"}]))
            async for frame in connection:
                message = msgpack.unpackb(frame) if isinstance(frame, bytes) else json.loads(frame)
                await self._on_stream_message(client, message, is_news)
        except ConnectionClosed:
            pass
        finally:
            with self.lock:
                if client in self._clients:
                    self._clients.remove(client)

    async def _on_stream_message(self, client: _Client, message: Any, is_news: bool) -> None:
        ws = client.connection
        action = message.get("action") if isinstance(message, dict) else None
        if action == "auth":
            if client.authenticated:
                await ws.send(_pack([{"T": "error", "code": 403, "msg": "already authenticated"}]))
            elif message.get("key") == self.key_id and message.get("secret") == self.secret_key:
                client.authenticated = True
                await ws.send(_pack([{"T": "success", "msg": "authenticated"}]))
            else:
                await ws.send(_pack([{"T": "error", "code": 402, "msg": "auth failed"}]))
                await ws.close()
        elif action in ("subscribe", "unsubscribe"):
            if not client.authenticated:
                await ws.send(_pack([{"T": "error", "code": 401, "msg": "not authenticated"}]))
                return
            channels = ("news",) if is_news else _MARKET_CHANNELS
            for channel in channels:
                wanted = set(message.get(channel) or [])
                current = client.subscriptions.setdefault(channel, set())
                if action == "subscribe":
                    current |= wanted
                else:
                    current -= wanted
            reply: dict[str, Any] = {"T": "subscription"}
            for channel in channels:
                reply[channel] = sorted(client.subscriptions.get(channel, set()))
            if not is_news:
                reply["corrections"] = reply["trades"]
                reply["cancelErrors"] = reply["trades"]
            with self.lock:
                if client not in self._clients:
                    self._clients.append(client)
            await ws.send(_pack([reply]))
        else:
            await ws.send(_pack([{"T": "error", "code": 400, "msg": "invalid syntax"}]))

    def subscribed(self, path: str, channel: str, symbols: Iterable[str]) -> bool:
        """Whether a client on ``path`` is subscribed to ``channel`` for all ``symbols``."""
        wanted = set(symbols)
        with self.lock:
            return any(
                c.path == path
                and (
                    wanted <= c.subscriptions.get(channel, set())
                    or "*" in c.subscriptions.get(channel, set())
                )
                for c in self._clients
            )

    def push(self, path: str, messages: list[dict[str, Any]]) -> int:
        """Send ``messages`` to every client on ``path`` subscribed to them; returns how many
        clients got at least one. ``t``/``created_at``/``updated_at`` may be RFC 3339 text or
        epoch ns; they go out as msgpack Timestamps."""
        return self._call(self._push(path, messages))

    async def _push(self, path: str, messages: list[dict[str, Any]]) -> int:
        reached = 0
        with self.lock:
            clients = [
                c
                for c in self._clients
                if c.path == path and f"{path}#{id(c.connection)}" not in self._muted
            ]
        for client in clients:
            wanted = [m for m in messages if _wants(client, m)]
            if not wanted:
                continue
            with contextlib.suppress(ConnectionClosed):
                await client.connection.send(_pack([_wire(m) for m in wanted]))
                reached += 1
        return reached

    def emit_minutes(
        self, count: int = 1, feed: str | None = None, symbols: Iterable[str] = ()
    ) -> list[tuple[str, dict[str, Any]]]:
        """Advance the market clock ``count`` session minutes and stream each finished minute:
        its trades, a quote and its bar on ``feed`` (default: every feed), and its news items on
        the news stream, for ``symbols`` (default: every symbol a market stream client follows).

        Returns ``(symbol, bar)`` for every bar pushed, whether or not a client was connected.
        """
        if self.clock_ms is None:
            raise RuntimeError("set clock_ms before emitting live minutes")
        paths = [f"/v2/{feed}"] if feed else [f"/v2/{f}" for f in FEEDS]
        names = set(symbols)
        if not names:
            with self.lock:
                for client in self._clients:
                    if client.path in paths:
                        for channel in ("trades", "bars", "quotes"):
                            names |= client.subscriptions.get(channel, set())
            names.discard("*")
        emitted: list[tuple[str, dict[str, Any]]] = []
        for _ in range(count):
            minute = next(session_minutes(self.clock_ms, self.clock_ms + 7 * 86_400_000))
            messages: list[dict[str, Any]] = []
            news: list[dict[str, Any]] = []
            for symbol in sorted(names):
                trades = self.minute_trades(symbol, minute)
                messages += [{"T": "t", "S": symbol, **t} for t in trades]
                last = trades[-1]
                messages.append(
                    {
                        "T": "q",
                        "S": symbol,
                        "bx": "V",
                        "bp": round(last["p"] - 0.01, 2),
                        "bs": 3,
                        "ax": "V",
                        "ap": round(last["p"] + 0.01, 2),
                        "as": 2,
                        "t": last["t"],
                        "c": ["R"],
                        "z": "C",
                    }
                )
                bar = self.bar(symbol, minute)
                messages.append({"T": "b", "S": symbol, **bar})
                emitted.append((symbol, bar))
                if self.news_minute(symbol, minute):
                    news.append({"T": "n", **self.news_item(symbol, minute)})
            self.clock_ms = minute + MINUTE_MS
            for path in paths:
                if messages:
                    self.push(path, messages)
            if news:
                self.push("/v1beta1/news", news)
        return emitted

    def push_news(self, item: Mapping[str, Any]) -> int:
        return self.push("/v1beta1/news", [{"T": "n", **item}])

    def drop_streams(self, path: str | None = None) -> int:
        """Cut every stream connection (on ``path``) without a close frame; returns how many."""
        return self._call(self._drop(path))

    async def _drop(self, path: str | None) -> int:
        with self.lock:
            victims = [c for c in self._clients if path is None or c.path == path]
            for client in victims:
                self._clients.remove(client)
        for client in victims:
            client.connection.transport.abort()
        return len(victims)


_MARKET_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
_MESSAGE_CHANNEL = {"t": "trades", "q": "quotes", "b": "bars", "u": "updatedBars",
                    "d": "dailyBars", "s": "statuses", "l": "lulds", "n": "news"}  # fmt: skip


def _wants(client: _Client, message: Mapping[str, Any]) -> bool:
    channel = _MESSAGE_CHANNEL.get(str(message.get("T")))
    if channel is None:
        return True
    subscribed = client.subscriptions.get(channel, set())
    if "*" in subscribed:
        return True
    if channel == "news":
        return bool(subscribed & set(message.get("symbols") or []))
    return message.get("S") in subscribed


def _wire(message: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(message)
    for key in ("t", "created_at", "updated_at"):
        value = out.get(key)
        if isinstance(value, str):
            out[key] = msgpack.Timestamp.from_unix_nano(_parse_ns(value))
        elif isinstance(value, int):
            out[key] = msgpack.Timestamp.from_unix_nano(value)
    return out


def _parse_ns(text: str) -> int:
    """Epoch ns of RFC 3339 text with up to nine fractional digits."""
    head, _, rest = text.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp())
    return seconds * 1_000_000_000 + int((rest or "0").ljust(9, "0")[:9])


def _pack(messages: list[dict[str, Any]]) -> bytes:
    return bytes(msgpack.packb(messages))


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        raise ValueError("invalid page_token") from None


def _response(status: int, body: str, headers: Mapping[str, str]) -> Response:
    data = body.encode()
    all_headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(data))),
        ]
    )
    for key, value in headers.items():
        all_headers[key] = value
    return Response(status, HTTPStatus(status).phrase, all_headers, data)


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    seed: int = 7,
    key_id: str = FAKE_KEY_ID,
    secret_key: str = FAKE_SECRET_KEY,
    tick_s: float = 1.0,
    start: str = "2024-01-02T14:30:00Z",
    ready: Callable[[FakeAlpacaData], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run the fake until ``stop`` is set (or KeyboardInterrupt), advancing the market clock one
    session minute every ``tick_s`` seconds from ``start`` and streaming it on every feed.

    ``ready`` is called once the port is open (e.g. to print the URLs and variables to set).
    """
    fake = FakeAlpacaData(seed, key_id, secret_key, host, port, clock_ms=parse_time(start))
    halt = stop or threading.Event()
    with fake:
        if ready is not None:
            ready(fake)
        try:
            while not halt.wait(tick_s):
                fake.emit_minutes(1)
        except KeyboardInterrupt:
            pass
