"""A loopback fake of Alpaca's market data API: historical REST and the real-time WebSocket streams.

It speaks Alpaca's wire protocols, so the real alpaca-py clients work against it unchanged::

    with FakeAlpacaData(seed=7) as fake:
        StockHistoricalDataClient(fake.key_id, fake.secret_key, url_override=fake.rest_url)
        StockDataStream(fake.key_id, fake.secret_key, url_override=fake.stream_url("iex"))
        NewsDataStream(fake.key_id, fake.secret_key, url_override=fake.news_stream_url)

REST and WebSocket share one port (one asyncio server in a background thread): plain ``GET``
requests are answered as REST, upgrade requests become streams.

REST: ``/v2/stocks/bars``, ``/v2/stocks/trades`` and ``/v1beta1/news``, paginated, authenticated
by headers (HTTP 401 for wrong keys). Faults on demand: ``rate_limit`` (HTTP 429 with
``Retry-After`` and ``X-Ratelimit-*``) and ``fail`` (bursts of 5xx).

Streams: ``/v2/{feed}`` (trades, quotes, bars, statuses) and ``/v1beta1/news``, in msgpack
(error 402 on the auth of wrong keys). ``drop_streams`` cuts every connection without a close
frame, as a network failure would; ``mute_streams`` keeps connections open but delivers nothing on
them (alpaca-py issue 740), until unmuted or reconnected; ``refuse_streams`` refuses new ones.

Data is a deterministic function of ``seed``, symbol and minute: one bar per minute of the regular
session (14:30-21:00 UTC, Monday to Friday), one to three trades per bar, one news item per symbol
every two hours. ``bars``, ``trades`` and ``news`` return that ground truth for tests to compare
against. A market clock (``clock_ms``) caps what REST returns, like "now" does on the real API;
``emit_minutes`` advances it and pushes the new minute to subscribed stream clients.

The parts: ``alpaca_market`` (``MarketTruth``: the market, no I/O), ``data_http`` (the REST
answers and their faults), ``data_stream`` (the stream endpoints). This module puts them on the
shared ``Loopback`` base (one port, ``start``/``stop``, ``wait_for``) and adds the market clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from flinktrade.testing._loopback import Loopback
from flinktrade.testing.alpaca_market import (
    MINUTE_MS,
    MarketTruth,
    iso,
    parse_time,
    session_minutes,
)
from flinktrade.testing.data_http import DataRest, RestRequest, response
from flinktrade.testing.data_stream import FEEDS, NEWS_PATH, DataStreams

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
        self._rest = DataRest(self, key_id, secret_key, self.lock)
        self._streams = DataStreams(key_id, secret_key, self.lock)

    # ----------------------------------------------------------------- lifecycle

    def _start(self) -> None:
        server = self._serve_websockets(
            self._streams.handle,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=2**22,
            logger=_WS_LOG,
        )
        self.port = int(next(iter(server.sockets)).getsockname()[1])

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if self._streams.refusing:
                return response(503, '{"message": "unavailable"}', {})
            return None
        answer = self._rest.handle(request)
        self._changed()
        return answer

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
        return f"ws://{self.host}:{self.port}{NEWS_PATH}"

    # ----------------------------------------------------------------- REST: faults and counters

    @property
    def requests(self) -> list[RestRequest]:
        """Every REST request so far, with the status it was answered."""
        return self._rest.requests

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
        self._rest.rate_limit(times, retry_after, reset_in, path, after)

    def fail(
        self, times: int = 1, status: int = 503, path: str | None = None, after: int = 0
    ) -> None:
        """Answer the next ``times`` REST requests (to ``path``, if given; after letting
        ``after`` of them through) with ``status``."""
        self._rest.fail(times, status, path, after)

    def clear_faults(self) -> None:
        """Forget every prepared fault: requests succeed again."""
        self._rest.faults.clear()

    def request_count(self, path: str | None = None, status: int | None = None) -> int:
        return self._rest.count(path, status)

    # ----------------------------------------------------------------- streams

    @property
    def stream_connections(self) -> dict[str, int]:
        """Opened WebSocket connections per path (``/v2/iex``, ``/v1beta1/news``)."""
        return self._streams.connections

    def refuse_streams(self, refuse: bool = True) -> None:
        """While set, new stream connections are refused (HTTP 503 to the upgrade), as during an
        outage; REST keeps working."""
        self._streams.refusing = refuse

    def mute_streams(self, path: str, mute: bool = True) -> None:
        """While set, the connections open on ``path`` now stay open but get nothing more (the
        "connected but silent" failure); new connections are served normally."""
        self._streams.mute(path, mute)

    def subscribed(self, path: str, channel: str, symbols: Iterable[str]) -> bool:
        """Whether a client on ``path`` that a push would reach (not muted) is subscribed to
        ``channel`` for all ``symbols``."""
        return self._streams.subscribed(path, channel, symbols)

    def push(self, path: str, messages: list[dict[str, Any]]) -> int:
        """Send ``messages`` to every client on ``path`` subscribed to them; returns how many
        clients got at least one. ``t``/``created_at``/``updated_at`` may be RFC 3339 text or
        epoch ns; they go out as msgpack Timestamps."""
        return self._call(self._streams.push(path, messages))

    def push_news(self, item: Mapping[str, Any]) -> int:
        return self.push(NEWS_PATH, [{"T": "n", **item}])

    def drop_streams(self, path: str | None = None) -> int:
        """Cut every stream connection (on ``path``) without a close frame; returns how many."""
        return self._call(self._streams.drop(path))

    # ----------------------------------------------------------------- the market clock

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
        names = set(symbols) or self._streams.followed(paths)
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
                self.push(NEWS_PATH, news)
        return emitted


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
