"""``flinktrade ingest live``: Alpaca's real-time streams into the market topics, with gap backfill.

The market data stream (trades, quotes, minute bars, trading statuses of the given symbols) and,
optionally, the news stream are run by alpaca-py, which reconnects by itself with exponential
back-off and jitter. Every reconnection is followed by a backfill over REST of what the stream
missed: minute bars and trades after a market stream reconnect, news after a news stream
reconnect. Live records of those kinds are held back while it runs, then follow in time order.
Nothing is produced twice: bars are deduplicated by symbol and start time, trades and news by
their ids, so the topics get every record exactly once, in order. Trading statuses (halts,
resumptions) become alerts.

A wall-clock watchdog (``watch``, every tick of ``run``, on the injected clock) covers a stream
that stays connected but stops delivering (alpaca-py issue 740): when the market stream has
been silent longer than ``silence_s`` during the regular session, an alert goes to ``alerts`` and
the connection is closed, so alpaca-py reconnects with back-off and the backfill fills the gap.
The news stream is not watched: hours without news are normal.

Keys the streams refuse (error 401/402 on auth) or REST refuses (HTTP 401/403) stop ``run`` with
one ``ConfigError`` naming ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY`` instead of retrying.

``run`` returns when ``stop`` is set (SIGINT/SIGTERM in the CLI), after closing the streams and
flushing everything produced.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from flinktrade.errors import ConfigError, FlinktradeError, TransientError
from flinktrade.events import (
    Alert,
    AlertKind,
    Bar,
    DeadLetter,
    Event,
    NewsItem,
    Severity,
    Trade,
    now_ms,
)
from flinktrade.ingest.alpaca import (
    ONE_MINUTE,
    Credentials,
    Kind,
    LiveStream,
    MarketDataRest,
    market_stream,
    news_stream,
    rest_feed,
)
from flinktrade.ingest.history import Sink
from flinktrade.ingest.validate import Validator, to_epoch_ns

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
_HALTED = {"H", "P", "Q", "M"}  # halt, paused, quotation only, volatility pause
_SEEN_BARS_KEPT = 10_000
_SEEN_IDS_KEPT = 100_000
_MARKET_CHANNELS = ("trades", "quotes", "bars", "statuses")
_NEW_YORK = ZoneInfo("America/New_York")


def regular_session(ts_ms: int) -> bool:
    """Whether ``ts_ms`` is in the US regular session, 09:30-16:00 New York time, Monday to
    Friday. Exchange holidays are not known: a silent holiday raises one alert per threshold."""
    moment = datetime.fromtimestamp(ts_ms / 1000, _NEW_YORK)
    return moment.weekday() < 5 and time(9, 30) <= moment.time() < time(16, 0)


@dataclass(frozen=True)
class LiveRequest:
    symbols: list[str]
    feed: str = "iex"
    news: bool = False
    stream_url: str | None = None
    news_stream_url: str | None = None
    backoff: tuple[float, float] = (1.0, 30.0)
    silence_s: float = 120.0
    """The market stream connected but silent this long in the regular session: alert, then
    reconnect and backfill."""


@dataclass
class LiveStats:
    connections: int = 0
    news_connections: int = 0
    backfills: int = 0
    backfilled_bars: int = 0
    backfilled_trades: int = 0
    backfilled_news: int = 0
    repeated_bars: int = 0
    repeated_trades: int = 0
    repeated_news: int = 0
    silences: int = 0


class _Recent:
    """The last ``capacity`` keys seen, to drop repeats."""

    def __init__(self, capacity: int = _SEEN_IDS_KEPT) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def first_time(self, key: str) -> bool:
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return True


class LiveIngest:
    """Streams into a ``Sink``; one instance per ``run``. ``clock`` (epoch ms) times the
    watchdog and the backfills; ``market_open`` says when silence is abnormal."""

    def __init__(
        self,
        credentials: Credentials,
        request: LiveRequest,
        sink: Sink,
        rest: MarketDataRest,
        validator: Validator | None = None,
        clock: Callable[[], int] = now_ms,
        market_open: Callable[[int], bool] = regular_session,
    ) -> None:
        self.credentials = credentials
        self.request = request
        self.sink = sink
        self.rest = rest
        self.validator = validator or Validator(set(request.symbols), source="alpaca-stream")
        self.clock = clock
        self.market_open = market_open
        self.stats = LiveStats()
        self._lock = threading.RLock()
        self._started_ms = clock() // MINUTE_MS * MINUTE_MS
        self._last_bar: dict[str, int] = {}
        self._seen_bars: dict[str, set[int]] = {}
        self._last_trade: dict[str, int] = {}
        self._seen_trades = _Recent()
        self._last_news: int | None = None
        self._seen_news = _Recent()
        self._held: dict[str, list[dict[str, Any]]] = {}  # live records held during a backfill
        self._heard_ms: int | None = None  # the market stream's last data (or subscription)
        self._fatal: FlinktradeError | None = None
        self._backfill_threads: list[threading.Thread] = []
        self._streams: list[LiveStream] = []

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        req = self.request
        market = market_stream(
            self.credentials,
            req.symbols,
            self.on_message,
            feed=req.feed,
            url=req.stream_url,
            on_subscribed=self.on_subscribed,
            backoff=req.backoff,
        )
        self._streams = [market]
        if req.news:
            self._streams.append(
                news_stream(
                    self.credentials,
                    self.on_message,
                    url=req.news_stream_url,
                    on_subscribed=self.on_news_subscribed,
                    backoff=req.backoff,
                )
            )
        for stream in self._streams:
            stream.start()

    def stop(self) -> None:
        """Close the streams, let a running backfill finish, and flush."""
        for stream in self._streams:
            stream.stop()
        for thread in self._backfill_threads:
            thread.join(60)
        with self._lock:
            self._release_held(list(self._held))
        self.sink.flush()

    def run(self, stop: threading.Event, tick_s: float = 0.5) -> dict[str, int]:
        """Stream until ``stop`` is set; returns the produced counts. ``ConfigError`` when
        Alpaca refuses the keys, ``TransientError`` when every stream has ended."""
        self.start()
        try:
            while not stop.wait(tick_s):
                self.check()
                self.watch()
        finally:
            self.stop()
        return dict(self.sink.counts)

    def check(self) -> None:
        """Raise what ended the ingest: refused keys, or streams that all stopped."""
        fatal = self._fatal or next((s.fatal for s in self._streams if s.fatal), None)
        if fatal is not None:
            raise fatal
        if self._streams and not any(s.alive for s in self._streams):
            raise TransientError("the Alpaca streams stopped (see the log for why)")

    def watch(self) -> float | None:
        """The watchdog: if the market stream is connected, the regular session is on and
        nothing came for longer than ``silence_s``, alert and force a reconnect (which
        backfills). Returns the silence in seconds when it acted."""
        if not self._streams:
            return None
        now = self.clock()
        market = self._streams[0]
        with self._lock:
            heard = self._heard_ms
            if heard is None or not market.connected or not self.market_open(now):
                self._heard_ms = None if heard is None else now  # silence counts from here
                return None
            if now - heard <= self.request.silence_s * 1000:
                return None
            self._heard_ms = now  # one alert per silence
            self.stats.silences += 1
            silent_s = (now - heard) / 1000
            log.warning(
                "live: %s stream connected but silent for %.0fs; reconnecting",
                market.name,
                silent_s,
            )
            self.sink.emit(
                Alert(
                    id=Alert.make_id(f"{AlertKind.STREAM_SILENT}:{market.name}", None, now),
                    kind=AlertKind.STREAM_SILENT,
                    severity=Severity.WARNING,
                    message=(
                        f"Alpaca {market.name} stream connected but silent for "
                        f"{silent_s:.0f}s during market hours; reconnecting and backfilling"
                    ),
                    value=silent_s,
                    threshold=self.request.silence_s,
                    ts=now,
                )
            )
        market.reconnect()
        return silent_s

    # ------------------------------------------------------------------ callbacks

    def on_message(self, channel: str, raw: dict[str, Any]) -> None:
        """A raw stream message (called on a stream's thread)."""
        with self._lock:
            if channel in _MARKET_CHANNELS:
                self._heard_ms = self.clock()
            held = self._held.get(channel)
            if held is not None:
                held.append(raw)
                return
            self._handle(channel, raw)

    def on_subscribed(self, connection: int) -> None:
        """The market stream's ``connection``-th connection is subscribed."""
        self.stats.connections = connection
        with self._lock:
            self._heard_ms = self.clock()
        if connection == 1:
            log.info("live: subscribed to %s", ", ".join(self.request.symbols))
            return
        log.warning("live: reconnected (connection %d); backfilling the gap over REST", connection)
        self._start_backfill(("bars", "trades"))

    def on_news_subscribed(self, connection: int) -> None:
        """The news stream's ``connection``-th connection is subscribed."""
        self.stats.news_connections = connection
        if connection > 1:
            log.warning("live: news reconnected (connection %d); backfilling news", connection)
            self._start_backfill(("news",))

    # ------------------------------------------------------------------ work

    def _handle(self, channel: str, raw: dict[str, Any]) -> None:
        event: Event
        if channel == "trades":
            event = self.validator.trade(raw)
            if isinstance(event, Trade) and not self._first_trade(event):
                return
        elif channel == "quotes":
            event = self.validator.quote(raw)
        elif channel == "bars":
            event = self.validator.bar(raw)
            if isinstance(event, Bar) and not self._first_time(event):
                return
        elif channel == "statuses":
            event = self._status(raw)
        elif channel == "news":
            event = self.validator.news(raw)
            if isinstance(event, NewsItem) and not self._first_news(event):
                return
        else:
            return
        self.sink.emit(event)

    def _first_time(self, bar: Bar) -> bool:
        seen = self._seen_bars.setdefault(bar.symbol, set())
        if bar.ts in seen:
            self.stats.repeated_bars += 1
            return False
        seen.add(bar.ts)
        if len(seen) > _SEEN_BARS_KEPT:
            for old in sorted(seen)[: len(seen) - _SEEN_BARS_KEPT]:
                seen.discard(old)
        self._last_bar[bar.symbol] = max(bar.ts, self._last_bar.get(bar.symbol, 0))
        return True

    def _first_trade(self, trade: Trade) -> bool:
        if not self._seen_trades.first_time(trade.id):
            self.stats.repeated_trades += 1
            return False
        self._last_trade[trade.symbol] = max(trade.ts, self._last_trade.get(trade.symbol, 0))
        return True

    def _first_news(self, item: NewsItem) -> bool:
        if not self._seen_news.first_time(item.id):
            self.stats.repeated_news += 1
            return False
        self._last_news = max(item.ts, self._last_news or 0)
        return True

    def _status(self, raw: dict[str, Any]) -> Event:
        symbol = str(raw.get("S") or "")
        try:
            ts = to_epoch_ns(raw.get("t")) // 1_000_000
        except ValueError:
            ts = self.clock()
        code = str(raw.get("sc") or "")
        if not symbol:
            return self.validator.dead(self.sink.topics.alerts, raw, "S: missing symbol")
        message = f"{symbol}: {raw.get('sm') or code}"
        if raw.get("rm"):
            message += f" ({raw['rm']})"
        return Alert(
            id=Alert.make_id(AlertKind.TRADING_STATUS, symbol, ts),
            kind=AlertKind.TRADING_STATUS,
            severity=Severity.WARNING if code in _HALTED else Severity.INFO,
            symbol=symbol,
            message=message,
            ts=ts,
        )

    def _start_backfill(self, kinds: tuple[str, ...]) -> None:
        with self._lock:
            for kind in kinds:
                self._held.setdefault(kind, [])
        thread = threading.Thread(
            target=self._backfill, args=(kinds,), name="alpaca-backfill", daemon=True
        )
        self._backfill_threads.append(thread)
        thread.start()

    def _backfill(self, kinds: tuple[str, ...]) -> None:
        """What the stream missed while disconnected, from REST; then the live records of
        those kinds held meanwhile."""
        self.stats.backfills += 1
        end = datetime.fromtimestamp(self.clock() / 1000, UTC)
        try:
            for kind in kinds:
                if kind == "news":
                    with self._lock:
                        since = self._last_news if self._last_news is not None else self._started_ms
                    self._fetch("news", self.request.symbols, since, end)
                    continue
                for symbol in self.request.symbols:
                    with self._lock:
                        if kind == "bars":
                            last = self._last_bar.get(symbol, self._started_ms - MINUTE_MS)
                            since = last + MINUTE_MS
                        else:  # trades: from the last one's time; ids drop those already sent
                            since = self._last_trade.get(symbol, self._started_ms)
                    self._fetch("trades" if kind == "trades" else "bars", [symbol], since, end)
        except ConfigError as exc:
            log.error("live: Alpaca refused the backfill: %s", exc)
            self._fatal = exc
        except FlinktradeError as exc:
            log.error("live: backfill failed, records may be missing until the next one: %s", exc)
        finally:
            with self._lock:
                self._release_held(kinds)

    def _fetch(self, kind: Kind, symbols: Iterable[str], since_ms: int, end: datetime) -> None:
        start = datetime.fromtimestamp(since_ms / 1000, UTC)
        if start >= end:
            return
        extra: dict[str, Any] = {}
        if kind != "news":
            extra["feed"] = rest_feed(self.request.feed)
        if kind == "bars":
            extra["timeframe"] = ONE_MINUTE
        for page in self.rest.pages(kind, list(symbols), start, end, **extra):
            with self._lock:
                for name, record in page.records:
                    event: Event
                    if kind == "bars":
                        event = self.validator.bar(record, name)
                        fresh = isinstance(event, DeadLetter) or self._first_time(event)
                        self.stats.backfilled_bars += fresh and isinstance(event, Bar)
                    elif kind == "trades":
                        event = self.validator.trade(record, name)
                        fresh = isinstance(event, DeadLetter) or self._first_trade(event)
                        self.stats.backfilled_trades += fresh and isinstance(event, Trade)
                    else:
                        event = self.validator.news(record)
                        fresh = isinstance(event, DeadLetter) or self._first_news(event)
                        self.stats.backfilled_news += fresh and isinstance(event, NewsItem)
                    if fresh:
                        self.sink.emit(event)

    def _release_held(self, kinds: Iterable[str]) -> None:
        for kind in kinds:
            held = self._held.pop(kind, None) or []
            key = "created_at" if kind == "news" else "t"
            for raw in sorted(held, key=lambda r: _record_time(r, key)):
                self._handle(kind, raw)


def _record_time(raw: dict[str, Any], key: str = "t") -> int:
    try:
        return to_epoch_ns(raw.get(key))
    except ValueError:
        return 0
