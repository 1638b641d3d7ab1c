"""Alpaca market data: the only module that talks to Alpaca's data APIs (through alpaca-py).

- ``MarketDataRest`` pages through historical bars, trades and news one request at a time (so a
  caller can produce and checkpoint page by page), with alpaca-py's own REST plumbing (URL,
  auth headers, request models) but a bounded request: every request has a timeout; HTTP 429 is
  waited out as ``Retry-After`` / ``X-Ratelimit-Reset`` say; connection errors, timeouts and 5xx
  are retried with exponential back-off; a page is either returned or the run stops with
  ``TransientError`` (never skipped).
- ``LiveStream`` runs one alpaca-py ``StockDataStream`` or ``NewsDataStream`` in a background
  thread, delivering raw messages (msgpack dicts) to a callback and telling when each
  (re)connection is subscribed, so the caller can backfill the gap over REST. alpaca-py reconnects
  by itself with exponential back-off and jitter; ``reconnect`` closes a connection on purpose
  (a silent one). Keys refused at the stream's auth (error 401/402) stop the stream for good
  with ``fatal`` set to a ``ConfigError`` naming the variables, instead of retrying forever.

The other ingest modules name alpaca-py's ``TimeFrame`` and ``DataFeed`` through this module.

Credentials are ``SecretStr`` until the moment alpaca-py needs the text; they are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Literal

import requests
from alpaca.common.enums import Sort
from alpaca.data.enums import DataFeed as DataFeed  # noqa: PLC0414 (re-exported)
from alpaca.data.historical import NewsClient, StockHistoricalDataClient
from alpaca.data.live import NewsDataStream, StockDataStream
from alpaca.data.live.websocket import DataStream
from alpaca.data.requests import NewsRequest, StockBarsRequest, StockTradesRequest
from alpaca.data.timeframe import TimeFrame as TimeFrame  # noqa: PLC0414 (re-exported)
from alpaca.data.timeframe import TimeFrameUnit
from pydantic import SecretStr
from websockets.exceptions import WebSocketException

from flinktrade.config import Settings
from flinktrade.errors import ConfigError, FlinktradeError, TransientError

log = logging.getLogger(__name__)

DEFAULT_STREAM_URL = "wss://stream.data.alpaca.markets"
FEEDS = ("iex", "sip", "test")
Kind = Literal["bars", "trades", "news"]
PAGE_LIMIT: dict[str, int] = {"bars": 10_000, "trades": 10_000, "news": 50}


class AlpacaRequestError(FlinktradeError):
    """Alpaca refused a request for a reason retrying cannot fix (HTTP 4xx other than 429)."""


@dataclass(frozen=True)
class Credentials:
    key_id: SecretStr
    secret_key: SecretStr

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        """The Alpaca key pair, or a ``ConfigError`` naming the variable to set."""
        if settings.alpaca_api_key_id is None or not settings.alpaca_api_key_id.get_secret_value():
            raise ConfigError("Alpaca key id missing: set APCA_API_KEY_ID")
        secret = settings.alpaca_api_secret_key
        if secret is None or not secret.get_secret_value():
            raise ConfigError("Alpaca secret key missing: set APCA_API_SECRET_KEY")
        return cls(settings.alpaca_api_key_id, secret)


@dataclass(frozen=True)
class RetryPolicy:
    """How long one request may take and how hard to retry."""

    timeout_s: float = 15.0
    """Connect and read timeout of every request."""
    max_attempts: int = 8
    """Tries per page on connection errors, timeouts and 5xx before giving up."""
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_rate_limited: int = 20
    """HTTP 429 answers tolerated per page (each waited out) before giving up."""
    max_wait_s: float = 120.0
    """Upper bound on one rate-limit wait, whatever the headers say."""

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1, 2, ...): exponential, capped."""
        return float(min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, attempt - 1)))


def rate_limit_delay(headers: Mapping[str, str], now_s: float, fallback_s: float) -> float:
    """Seconds to wait after an HTTP 429, from ``Retry-After`` (seconds or an HTTP date) and
    ``X-Ratelimit-Reset`` (epoch seconds); the longer one wins, ``fallback_s`` if neither."""
    waits: list[float] = []
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            waits.append(float(retry_after))
        except ValueError:
            try:
                waits.append(email.utils.parsedate_to_datetime(retry_after).timestamp() - now_s)
            except (TypeError, ValueError):
                log.warning("ignoring unreadable Retry-After header %r", retry_after[:40])
    reset = headers.get("X-Ratelimit-Reset")
    if reset:
        try:
            waits.append(float(reset) - now_s)
        except ValueError:
            log.warning("ignoring unreadable X-Ratelimit-Reset header %r", reset[:40])
    return max(0.0, *waits) if waits else fallback_s


class _BoundedRest:
    """Replaces alpaca-py's ``RESTClient._one_request`` (no timeout, fixed 3 s retry on 429)."""

    _session: requests.Session
    _policy: RetryPolicy
    _sleep: Callable[[float], None]
    _not_before: float

    def _one_request(self, method: str, url: str, opts: dict[str, Any], retry: int) -> Any:
        policy = self._policy
        path = url.split("/", 3)[-1] if "://" in url else url
        failures = rate_limited = 0
        while True:
            pause = self._not_before - time.time()
            if pause > 0:
                self._sleep(min(pause, policy.max_wait_s))
            try:
                response = self._session.request(method, url, timeout=policy.timeout_s, **opts)
            except (requests.ConnectionError, requests.Timeout) as exc:
                failures += 1
                self._retry_or_raise(path, failures, type(exc).__name__)
                continue
            status = response.status_code
            if status == 429:
                rate_limited += 1
                if rate_limited > policy.max_rate_limited:
                    raise TransientError(
                        f"Alpaca /{path}: still rate limited after {rate_limited - 1} waits"
                    )
                delay = min(
                    policy.max_wait_s,
                    rate_limit_delay(response.headers, time.time(), policy.backoff(rate_limited)),
                )
                log.warning("Alpaca /%s: rate limited (HTTP 429), waiting %.2fs", path, delay)
                self._sleep(delay)
                continue
            if status >= 500 or status == 408:
                failures += 1
                self._retry_or_raise(path, failures, f"HTTP {status}")
                continue
            if status in (401, 403):
                raise ConfigError(
                    f"Alpaca refused the credentials (HTTP {status}): check APCA_API_KEY_ID "
                    "and APCA_API_SECRET_KEY"
                )
            if status >= 400:
                raise AlpacaRequestError(f"Alpaca /{path}: HTTP {status}: {response.text[:300]}")
            self._note_quota(response.headers)
            return response.json() if response.text else None

    def _retry_or_raise(self, path: str, failures: int, what: str) -> None:
        if failures >= self._policy.max_attempts:
            raise TransientError(f"Alpaca /{path}: {what}, gave up after {failures} attempts")
        delay = self._policy.backoff(failures)
        log.warning("Alpaca /%s: %s, retry %d in %.2fs", path, what, failures, delay)
        self._sleep(delay)

    def _note_quota(self, headers: Mapping[str, str]) -> None:
        """With no requests left in the window, hold the next one until the window resets."""
        if headers.get("X-Ratelimit-Remaining") == "0" and headers.get("X-Ratelimit-Reset"):
            with contextlib.suppress(ValueError):
                self._not_before = float(headers["X-Ratelimit-Reset"])


class _StockClient(_BoundedRest, StockHistoricalDataClient):
    pass


class _NewsClient(_BoundedRest, NewsClient):
    pass


@dataclass(frozen=True)
class Page:
    """One page of a history request: ``(symbol, raw record)`` pairs (symbol ``None`` for news)
    in the provider's order, the token that fetched it and the token of the next page."""

    records: list[tuple[str | None, dict[str, Any]]]
    token: str | None
    next_token: str | None


ONE_MINUTE = TimeFrame(1, TimeFrameUnit.Minute)
"""Alpaca's one-minute bars: the bars of the live stream, and the default of ``pages``."""


def parse_timeframe(text: str) -> TimeFrame:
    """``1Min``, ``5Min``, ``1Hour``, ``1Day``, ``1Week``, ``1Month`` -> alpaca-py ``TimeFrame``."""
    units = {"Min": TimeFrameUnit.Minute, "Hour": TimeFrameUnit.Hour, "Day": TimeFrameUnit.Day,
             "Week": TimeFrameUnit.Week, "Month": TimeFrameUnit.Month}  # fmt: skip
    for suffix, unit in units.items():
        amount = text.strip()[: -len(suffix)]
        if text.strip().endswith(suffix) and amount.isdigit():
            try:
                return TimeFrame(int(amount), unit)
            except ValueError as exc:
                raise ConfigError(f"invalid --timeframe {text!r}: {exc}") from None
    raise ConfigError(f"invalid --timeframe {text!r}: use e.g. 1Min, 5Min, 1Hour, 1Day")


def timeframe_ms(timeframe: TimeFrame) -> int:
    minutes = {TimeFrameUnit.Minute: 1, TimeFrameUnit.Hour: 60, TimeFrameUnit.Day: 1440,
               TimeFrameUnit.Week: 7 * 1440, TimeFrameUnit.Month: 30 * 1440}  # fmt: skip
    return timeframe.amount_value * minutes[timeframe.unit_value] * 60_000


def rest_feed(feed: str) -> DataFeed | None:
    """The ``feed`` parameter for history requests (the ``test`` stream has no REST feed)."""
    return None if feed == "test" else DataFeed(feed)


class MarketDataRest:
    """Historical bars, trades and news from Alpaca, page by page."""

    def __init__(
        self,
        credentials: Credentials,
        url: str | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        key, secret = (
            credentials.key_id.get_secret_value(),
            credentials.secret_key.get_secret_value(),
        )
        url = url.rstrip("/") if url else None
        self._stocks = _StockClient(api_key=key, secret_key=secret, url_override=url)
        self._news = _NewsClient(api_key=key, secret_key=secret, url_override=url)
        for client in (self._stocks, self._news):
            client._policy = policy or RetryPolicy()
            client._sleep = sleep
            client._not_before = 0.0

    def pages(
        self,
        kind: Kind,
        symbols: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        timeframe: TimeFrame | None = None,
        feed: DataFeed | None = None,
        page_token: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Page]:
        """Every page of ``kind`` for ``symbols`` over ``[start, end]``, oldest first, starting
        at ``page_token`` (to continue an interrupted run)."""
        limit = limit or PAGE_LIMIT[kind]
        params = self._params(kind, list(symbols), start, end, timeframe, feed, limit)
        client = self._news if kind == "news" else self._stocks
        path = "/news" if kind == "news" else f"/stocks/{kind}"
        token = page_token
        while True:
            response = client.get(path, data={**params, "page_token": token} if token else params)
            if not isinstance(response, dict):
                raise TransientError(f"Alpaca {path}: unexpected answer {type(response).__name__}")
            next_token = response.get("next_page_token") or None
            yield Page(_records(kind, response), token, next_token)
            if next_token is None:
                return
            token = next_token

    @staticmethod
    def _params(
        kind: Kind,
        symbols: list[str],
        start: datetime,
        end: datetime,
        timeframe: TimeFrame | None,
        feed: DataFeed | None,
        limit: int,
    ) -> dict[str, str]:
        request: StockBarsRequest | StockTradesRequest | NewsRequest
        if kind == "bars":
            request = StockBarsRequest(
                symbol_or_symbols=symbols,
                timeframe=timeframe or ONE_MINUTE,
                start=start,
                end=end,
                limit=limit,
                feed=feed,
                sort=Sort.ASC,
            )
        elif kind == "trades":
            request = StockTradesRequest(
                symbol_or_symbols=symbols,
                start=start,
                end=end,
                limit=limit,
                feed=feed,
                sort=Sort.ASC,
            )
        else:
            request = NewsRequest(
                symbols=",".join(symbols), start=start, end=end, limit=limit, sort=Sort.ASC
            )
        fields = request.to_request_fields()
        return {k: _wire_value(v) for k, v in fields.items() if v is not None}


def _wire_value(value: Any) -> str:
    if isinstance(value, TimeFrame):
        return str(value.value)
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _records(kind: Kind, response: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    data = response.get(kind)
    if kind == "news":
        return [(None, item) for item in data or [] if isinstance(item, dict)]
    if not isinstance(data, dict):
        return []
    return [
        (str(symbol), record)
        for symbol, records in data.items()
        for record in records or []
        if isinstance(record, dict)
    ]


# --------------------------------------------------------------------------- streams

MessageHandler = Callable[[str, dict[str, Any]], None]
"""Called with the channel (``trades``, ``quotes``, ``bars``, ``statuses``, ``news``) and the raw
message, on the stream's thread; it must not block for long."""


_AUTH_REFUSED = frozenset({"auth failed", "not authenticated", "failed to authenticate"})
"""What alpaca-py's ``ValueError`` says when the stream refused the keys (errors 402, 401)."""


class _KeysRefused(WebSocketException):
    """Raised inside alpaca-py's loop after a refused auth; the stream is already stopping."""


class _HookedMixin:
    """Counts (re)connections and reports each completed subscription; stops promptly; stops
    for good when the keys are refused."""

    connections: int
    on_subscribed: Callable[[int], None] | None
    fatal: ConfigError | None
    stream_name: str

    async def _auth(self) -> None:
        try:
            await super()._auth()  # type: ignore[misc]
        except ValueError as exc:
            if str(exc) not in _AUTH_REFUSED:
                raise
            self.fatal = ConfigError(
                f"Alpaca refused the keys on the {self.stream_name} stream ({exc}): check "
                "APCA_API_KEY_ID and APCA_API_SECRET_KEY"
            )
            await self.stop_ws()
            raise _KeysRefused(str(self.fatal)) from None

    async def _start_ws(self) -> None:
        await super()._start_ws()  # type: ignore[misc]
        self.connections += 1

    async def _send_subscribe_msg(self) -> None:
        await super()._send_subscribe_msg()  # type: ignore[misc]
        if self.on_subscribed is not None:
            self.on_subscribed(self.connections)

    async def stop_ws(self) -> None:
        await super().stop_ws()  # type: ignore[misc]
        ws: Any = getattr(self, "_ws", None)
        if ws is not None:  # wake the receive loop now instead of after its 5 s poll
            await ws.close()


class _MarketStream(_HookedMixin, StockDataStream):
    pass


class _NewsStream(_HookedMixin, NewsDataStream):
    pass


@dataclass
class LiveStream:
    """One alpaca-py data stream, run on its own thread and event loop."""

    stream: DataStream
    name: str
    _thread: threading.Thread | None = field(default=None, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)
    _ready: threading.Event = field(default_factory=threading.Event, init=False)

    @property
    def connections(self) -> int:
        return int(getattr(self.stream, "connections", 0))

    @property
    def connected(self) -> bool:
        """Connected and subscribed (alpaca-py's own flag)."""
        return bool(getattr(self.stream, "_running", False))

    @property
    def fatal(self) -> ConfigError | None:
        """Why the stream stopped for good (refused keys), if it did."""
        error: ConfigError | None = getattr(self.stream, "fatal", None)
        return error

    def reconnect(self) -> None:
        """Close the current connection (a silent one): alpaca-py reconnects with back-off."""
        loop = self._loop
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close_ws(), loop)

    async def _close_ws(self) -> None:
        ws: Any = getattr(self.stream, "_ws", None)
        if ws is not None:
            await ws.close()

    def start(self) -> None:
        def run() -> None:
            async def main() -> None:
                self._loop = asyncio.get_running_loop()
                self._ready.set()
                await self.stream._run_forever()

            try:
                asyncio.run(main())
            except Exception:
                log.exception("%s stream failed", self.name)
            finally:
                self._ready.set()

        self._thread = threading.Thread(target=run, name=f"alpaca-{self.name}", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self.stream.stop_ws(), loop)
            try:
                future.result(timeout_s)
            except (TimeoutError, RuntimeError) as exc:
                log.warning("%s stream did not stop cleanly: %s", self.name, exc)
        if self._thread is not None:
            self._thread.join(timeout_s)


def _hook(
    stream: _MarketStream | _NewsStream,
    on_subscribed: Callable[[int], None] | None,
    backoff: tuple[float, float],
) -> None:
    stream.connections = 0
    stream.on_subscribed = on_subscribed
    stream.fatal = None
    stream.stream_name = "news" if isinstance(stream, _NewsStream) else "market data"
    stream._reconnect_min_backoff, stream._reconnect_max_backoff = backoff


def market_stream(
    credentials: Credentials,
    symbols: Sequence[str],
    on_message: MessageHandler,
    *,
    feed: str = "iex",
    url: str | None = None,
    on_subscribed: Callable[[int], None] | None = None,
    backoff: tuple[float, float] = (1.0, 30.0),
) -> LiveStream:
    """Trades, quotes, minute bars and trading statuses of ``symbols`` on the ``feed`` stream
    (``url``, verbatim, when set: the full URL including the feed path)."""
    endpoint = url or f"{DEFAULT_STREAM_URL}/v2/{feed}"
    stream = _MarketStream(
        credentials.key_id.get_secret_value(),
        credentials.secret_key.get_secret_value(),
        raw_data=True,
        url_override=endpoint,
    )
    _hook(stream, on_subscribed, backoff)

    def handler(channel: str) -> Callable[[Any], Any]:
        async def handle(message: Any) -> None:
            on_message(channel, message)

        return handle

    stream.subscribe_trades(handler("trades"), *symbols)
    stream.subscribe_quotes(handler("quotes"), *symbols)
    stream.subscribe_bars(handler("bars"), *symbols)
    stream.subscribe_trading_statuses(handler("statuses"), *symbols)
    return LiveStream(stream, f"market-{feed}")


def news_stream(
    credentials: Credentials,
    on_message: MessageHandler,
    *,
    url: str | None = None,
    on_subscribed: Callable[[int], None] | None = None,
    backoff: tuple[float, float] = (1.0, 30.0),
) -> LiveStream:
    """Every news item (``*``) on the news stream; the caller filters by symbol."""
    stream = _NewsStream(
        credentials.key_id.get_secret_value(),
        credentials.secret_key.get_secret_value(),
        raw_data=True,
        url_override=url or f"{DEFAULT_STREAM_URL}/v1beta1/news",
    )
    _hook(stream, on_subscribed, backoff)

    async def handle(message: Any) -> None:
        on_message("news", message)

    stream.subscribe_news(handle, "*")
    return LiveStream(stream, "news")
