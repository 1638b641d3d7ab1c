"""A deterministic market simulator: trades (and news) for N symbols from one seed.

Prices follow a log random walk whose volatility switches between calm and stressed regimes, with
occasional jumps; a jump may come with a news item whose headline says which way it went. Prices are
kept as integer cents, so the same seed gives byte-identical records on every machine.

Event time starts at ``start_ts`` and advances by ``gap_ms`` on average per trade (over all
symbols). ``pace`` decides only the wall-clock speed at which records are handed out.

``SimulatorFeed`` runs a simulator into the market topics on a background thread at a wall-clock
pace (the ``simulate --duration`` command and the demo). A feed that fell more than
``MAX_BEHIND_S`` behind its pace (a starved machine) goes on at its pace from there rather than
catching up in one burst: after a pause longer than the job's idle timeout, a burst of many
seconds of event time, read unevenly across partitions, would make trades late.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar

from flinktrade import bus, events, topics
from flinktrade.events import NewsItem, Trade, stable_id

log = logging.getLogger(__name__)

_TICKERS = [
    "AAPL",
    "MSFT",
    "GOOG",
    "AMZN",
    "NVDA",
    "META",
    "TSLA",
    "JPM",
    "V",
    "UNH",
    "XOM",
    "JNJ",
    "WMT",
    "PG",
    "MA",
    "HD",
    "CVX",
    "MRK",
    "ABBV",
    "KO",
    "PEP",
    "AVGO",
    "COST",
    "ORCL",
    "BAC",
    "MCD",
    "CSCO",
    "TMO",
    "ABT",
    "CRM",
    "ACN",
    "DHR",
    "LIN",
    "NKE",
    "TXN",
    "NEE",
    "PM",
    "UPS",
    "RTX",
    "HON",
    "AMGN",
    "IBM",
    "QCOM",
    "LOW",
    "SBUX",
    "CAT",
    "GS",
    "INTU",
    "BA",
]

_UP_HEADLINES = (
    "{s} jumps after earnings beat and raised guidance",
    "{s} shares surge on upgrade to buy",
    "{s} rallies as record revenue tops estimates",
)
_DOWN_HEADLINES = (
    "{s} slides after guidance cut",
    "{s} falls on downgrade and weak outlook",
    "{s} plunges as earnings miss estimates",
)
_NEUTRAL_HEADLINES = (
    "{s} to present at industry conference",
    "{s} schedules quarterly results call",
    "{s} announces board appointment",
)


def symbol_names(count: int) -> list[str]:
    """``count`` ticker-like symbols: real large caps first, then SYM050, SYM051, ..."""
    names = list(_TICKERS[:count])
    names += [f"SYM{i:03d}" for i in range(len(names), count)]
    return names


@dataclass(frozen=True)
class RawTrade:
    """A simulated trade in its cheapest form (integer cents), for bulk encoding."""

    id: str
    symbol: str
    cents: int
    size: int
    ts: int

    @property
    def price(self) -> Decimal:
        return Decimal(self.cents).scaleb(-2)

    def to_json(self, ingest_ts: int) -> bytes:
        """The exact bytes ``events.encode(self.to_event(...))`` would give, faster."""
        whole, frac = divmod(self.cents, 100)
        price = f"{whole}.{frac:02d}".rstrip("0").rstrip(".") if frac else f"{whole}.0"
        return (
            f'{{"ts":{self.ts},"ingest_ts":{ingest_ts},"id":"{self.id}","symbol":"{self.symbol}",'
            f'"price":{price},"size":{self.size}}}'
        ).encode()

    def to_event(self, ingest_ts: int) -> Trade:
        return Trade(
            id=self.id,
            symbol=self.symbol,
            price=self.price,
            size=self.size,
            ts=self.ts,
            ingest_ts=ingest_ts,
        )


@dataclass
class _SymbolState:
    log_price: float
    stressed: bool = False
    seq: int = 0


class MarketSimulator:
    """Yields trades (``RawTrade``) and news (``NewsItem``) in event-time order, forever."""

    CALM_VOL = 0.0004
    STRESSED_VOL = 0.0015
    P_STRESS = 0.0005  # per trade: calm -> stressed
    P_CALM = 0.005  # per trade: stressed -> calm
    P_JUMP = 0.0002
    P_NEWS_ON_JUMP = 0.7
    P_NEUTRAL_NEWS = 0.00005

    def __init__(
        self,
        symbols: int | list[str] = 8,
        seed: int = 7,
        start_ts: int = 1_704_205_800_000,  # 2024-01-02 14:30 UTC, a market open
        gap_ms: float = 25.0,
        news: bool = True,
    ) -> None:
        self.symbols = symbol_names(symbols) if isinstance(symbols, int) else list(symbols)
        if not self.symbols:
            raise ValueError("the simulator needs at least one symbol")
        self.rng = random.Random(seed)
        self.ts = float(start_ts)
        self.gap_ms = gap_ms
        self.news = news
        self._state = {
            s: _SymbolState(math.log(self.rng.uniform(20.0, 500.0))) for s in self.symbols
        }

    def __iter__(self) -> Iterator[RawTrade | NewsItem]:
        rng = self.rng
        while True:
            self.ts += rng.uniform(0.0, 2.0 * self.gap_ms)
            ts = int(self.ts)
            symbol = self.symbols[rng.randrange(len(self.symbols))]
            state = self._state[symbol]
            if state.stressed:
                state.stressed = rng.random() > self.P_CALM
            else:
                state.stressed = rng.random() < self.P_STRESS
            vol = self.STRESSED_VOL if state.stressed else self.CALM_VOL
            step = rng.gauss(0.0, vol)
            jump = 0.0
            if rng.random() < self.P_JUMP:
                jump = rng.choice((-1.0, 1.0)) * rng.uniform(0.02, 0.06)
            state.log_price = min(max(state.log_price + step + jump, math.log(1.0)), 9.0)
            cents = max(1, round(math.exp(state.log_price) * 100))
            state.seq += 1
            yield RawTrade(f"{symbol}-{state.seq}", symbol, cents, rng.randint(1, 500), ts)
            if self.news and jump and rng.random() < self.P_NEWS_ON_JUMP:
                yield self._news(symbol, ts, jump > 0)
            elif self.news and rng.random() < self.P_NEUTRAL_NEWS:
                yield self._news(symbol, ts, None)

    def _news(self, symbol: str, ts: int, up: bool | None) -> NewsItem:
        pool = _NEUTRAL_HEADLINES if up is None else _UP_HEADLINES if up else _DOWN_HEADLINES
        headline = self.rng.choice(pool).format(s=symbol)
        return NewsItem(
            id=stable_id("sim-news", symbol, ts),
            headline=headline,
            summary=f"Simulated story about {symbol}.",
            source="simulator",
            symbols=[symbol],
            ts=ts,
            ingest_ts=ts,
        )

    def trades(self, count: int) -> list[RawTrade]:
        """The next ``count`` trades (news skipped)."""
        out: list[RawTrade] = []
        for item in self:
            if isinstance(item, RawTrade):
                out.append(item)
                if len(out) == count:
                    return out
        return out  # pragma: no cover - the iterator is infinite


@dataclass
class SimulatorFeed:
    """Runs the simulator into the market topics on a background thread at a wall-clock pace."""

    bootstrap_servers: bus.Servers
    simulator: MarketSimulator
    trades_per_second: float
    produced_trades: int = 0
    produced_news: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None
    fault: BaseException | None = None
    """Raised by the thread instead of producing (the demo's fault injection)."""
    name: str = "simulator"
    trades_topic: str = topics.TRADES.name
    producer: bus.EventProducer | None = None
    """The producer to send with, made beforehand (a new idempotent producer waits for its id from
    the broker, up to ~1 s on a broker just started); None: the thread makes one."""
    behind_s: float = 0.0
    """Wall-clock time the feed skipped rather than caught up (see ``MAX_BEHIND_S``)."""

    MAX_BEHIND_S: ClassVar[float] = 1.0

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            if self.fault is not None:
                raise self.fault
            producer = self.producer or bus.EventProducer(self.bootstrap_servers)
            tick = 0.05
            per_tick = self.trades_per_second * tick
            budget = 0.0
            items = iter(self.simulator)
            next_tick = time.monotonic()
            while not self._stop.is_set():
                budget += per_tick
                while budget >= 1.0:
                    item = next(items)
                    now = events.now_ms()
                    if isinstance(item, RawTrade):
                        producer.send_raw(
                            self.trades_topic, item.to_json(now), item.symbol.encode(), item.ts
                        )
                        self.produced_trades += 1
                        budget -= 1.0
                    else:
                        producer.send(item.model_copy(update={"ingest_ts": now}))
                        self.produced_news += 1
                next_tick += tick
                now_s = time.monotonic()
                if now_s - next_tick > self.MAX_BEHIND_S:  # stalled: no catch-up burst
                    self.behind_s += now_s - next_tick
                    log.debug(
                        "simulator feed %.1f s behind its pace: going on from now",
                        now_s - next_tick,
                    )
                    next_tick = now_s
                self._stop.wait(max(0.0, next_tick - now_s))
            producer.flush()
        except BaseException as exc:  # surfaced to whoever supervises the feed
            self.error = exc
            log.debug("simulator feed failed", exc_info=True)
