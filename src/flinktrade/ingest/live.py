"""``flinktrade ingest live``: Alpaca's real-time streams into the market topics, with gap backfill.

The market data stream (trades, quotes, minute bars, trading statuses of the given symbols) and,
optionally, the news stream are run by alpaca-py, which reconnects by itself with exponential
back-off. Every reconnection is followed by a backfill: as soon as the new connection is
subscribed, minute bars from just after the last bar produced (per symbol) up to now are fetched
over REST while live bars are held back; then the held bars follow. A bar already produced (same
symbol and start time) is never produced again, so the topic gets every minute exactly once, in
order. Trading statuses (halts, resumptions) become alerts.

``run`` returns when ``stop`` is set (SIGINT/SIGTERM in the CLI), after closing the streams and
flushing everything produced.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from flinktrade.errors import FlinktradeError, TransientError
from flinktrade.events import Alert, Bar, DeadLetter, Event, Severity, now_ms
from flinktrade.ingest.alpaca import (
    Credentials,
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


@dataclass(frozen=True)
class LiveRequest:
    symbols: list[str]
    feed: str = "iex"
    news: bool = False
    stream_url: str | None = None
    news_stream_url: str | None = None
    backoff: tuple[float, float] = (1.0, 30.0)


@dataclass
class LiveStats:
    connections: int = 0
    backfills: int = 0
    backfilled_bars: int = 0
    repeated_bars: int = 0


class LiveIngest:
    """Streams into a ``Sink``; one instance per ``run``."""

    def __init__(
        self,
        credentials: Credentials,
        request: LiveRequest,
        sink: Sink,
        rest: MarketDataRest,
        validator: Validator | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.credentials = credentials
        self.request = request
        self.sink = sink
        self.rest = rest
        self.validator = validator or Validator(set(request.symbols), source="alpaca-stream")
        self.clock = clock
        self.stats = LiveStats()
        self._lock = threading.RLock()
        self._started_ms = clock() // MINUTE_MS * MINUTE_MS
        self._last_bar: dict[str, int] = {}
        self._seen_bars: dict[str, set[int]] = {}
        self._held: list[dict[str, Any]] | None = None  # live bars held during a backfill
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
                    self.credentials, self.on_message, url=req.news_stream_url, backoff=req.backoff
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
            self._release_held()
        self.sink.flush()

    def run(self, stop: threading.Event) -> dict[str, int]:
        """Stream until ``stop`` is set; returns the produced counts."""
        self.start()
        try:
            while not stop.wait(0.5):
                if not any(s.alive for s in self._streams):
                    raise TransientError("the Alpaca streams stopped (see the log for why)")
        finally:
            self.stop()
        return dict(self.sink.counts)

    # ------------------------------------------------------------------ callbacks

    def on_message(self, channel: str, raw: dict[str, Any]) -> None:
        """A raw stream message (called on a stream's thread)."""
        with self._lock:
            if channel == "bars" and self._held is not None:
                self._held.append(raw)
                return
            self._handle(channel, raw)

    def on_subscribed(self, connection: int) -> None:
        """The market stream's ``connection``-th connection is subscribed."""
        self.stats.connections = connection
        if connection == 1:
            log.info("live: subscribed to %s", ", ".join(self.request.symbols))
            return
        log.warning("live: reconnected (connection %d); backfilling the gap over REST", connection)
        with self._lock:
            if self._held is None:
                self._held = []
        thread = threading.Thread(target=self._backfill, name="alpaca-backfill", daemon=True)
        self._backfill_threads.append(thread)
        thread.start()

    # ------------------------------------------------------------------ work

    def _handle(self, channel: str, raw: dict[str, Any]) -> None:
        event: Event
        if channel == "trades":
            event = self.validator.trade(raw)
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
            id=Alert.make_id("trading_status", symbol, ts),
            kind="trading_status",
            severity=Severity.WARNING if code in _HALTED else Severity.INFO,
            symbol=symbol,
            message=message,
            ts=ts,
        )

    def _backfill(self) -> None:
        """Bars missed while disconnected, from REST; then the live bars held meanwhile."""
        self.stats.backfills += 1
        try:
            end = datetime.fromtimestamp(self.clock() / 1000, UTC)
            for symbol in self.request.symbols:
                with self._lock:
                    since = self._last_bar.get(symbol, self._started_ms - MINUTE_MS) + MINUTE_MS
                start = datetime.fromtimestamp(since / 1000, UTC)
                if start >= end:
                    continue
                for page in self.rest.pages(
                    "bars",
                    [symbol],
                    start,
                    end,
                    timeframe=TimeFrame(1, TimeFrameUnit.Minute),
                    feed=rest_feed(self.request.feed),
                ):
                    with self._lock:
                        for name, record in page.records:
                            event = self.validator.bar(record, name)
                            if isinstance(event, DeadLetter) or self._first_time(event):
                                self.sink.emit(event)
                                self.stats.backfilled_bars += not isinstance(event, DeadLetter)
        except FlinktradeError as exc:
            log.error("live: backfill failed, bars may be missing until the next one: %s", exc)
        finally:
            with self._lock:
                self._release_held()

    def _release_held(self) -> None:
        held, self._held = self._held or [], None
        for raw in sorted(held, key=_bar_time):
            self._handle("bars", raw)


def _bar_time(raw: dict[str, Any]) -> int:
    try:
        return to_epoch_ns(raw.get("t"))
    except ValueError:
        return 0
