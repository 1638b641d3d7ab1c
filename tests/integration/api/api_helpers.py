"""Factories for the API tests: seeded bars with indicators, signals, orders, fills, news; the
running server's handle."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

import httpx

from flinktrade import bus, events
from flinktrade.api.server import ApiServer
from flinktrade.config import Settings
from flinktrade.events import Side
from flinktrade.execution.store import OrderStore

T0 = 1_704_205_800_000  # 2024-01-02 14:30 UTC
MINUTE = 60_000
BARS = {"AAA": 120, "BBB": 30}


def make_bars(symbol: str, n: int, seed: int) -> list[events.AnalyticsBar]:
    """A random walk of 1-minute bars with SMA 20/50 and Bollinger(20, 2) as the job names them."""
    rng = random.Random(seed)
    closes: list[float] = []
    bars = []
    price = 100.0
    for i in range(n):
        open_ = price
        price = max(1.0, price * (1 + rng.gauss(0, 0.004)))
        closes.append(price)
        indicators: dict[str, float | None] = {}
        if len(closes) >= 20:
            window = closes[-20:]
            mean = sum(window) / 20
            sd = (sum((c - mean) ** 2 for c in window) / 20) ** 0.5
            indicators.update(sma_20=mean, bb_upper_20_2=mean + 2 * sd, bb_lower_20_2=mean - 2 * sd)
        if len(closes) >= 50:
            indicators["sma_50"] = sum(closes[-50:]) / 50
        high = max(open_, price) * (1 + rng.random() * 0.002)
        low = min(open_, price) * (1 - rng.random() * 0.002)
        bars.append(
            events.AnalyticsBar(
                ts=T0 + i * MINUTE,
                symbol=symbol,
                open=Decimal(f"{open_:.2f}"),
                high=Decimal(f"{high:.2f}"),
                low=Decimal(f"{low:.2f}"),
                close=Decimal(f"{price:.2f}"),
                volume=rng.randint(1_000, 9_000),
                indicators=indicators,
            )
        )
    return bars


def make_signal(symbol: str, bar: events.AnalyticsBar, side: Side, strategy: str) -> events.Signal:
    return events.Signal(
        ts=bar.ts + MINUTE,
        id=events.Signal.make_id(strategy, symbol, bar.ts),
        strategy=strategy,
        symbol=symbol,
        side=side,
        price=bar.close,
        bar_ts=bar.ts,
        reason=f"{strategy} test signal",
    )


def make_order(
    signal: events.Signal, status: events.OrderStatus, filled: int = 0
) -> events.OrderEvent:
    coid = f"ft-{signal.id}"
    return events.OrderEvent(
        ts=signal.ts + (1_000 if filled else 0),
        event_id=events.OrderEvent.make_event_id(coid, status, Decimal(filled)),
        id=coid,
        client_order_id=coid,
        signal_id=signal.id,
        strategy=signal.strategy,
        symbol=signal.symbol,
        side=signal.side,
        qty=Decimal(10),
        status=status,
        filled_qty=Decimal(filled),
        filled_avg_price=signal.price if filled else None,
    )


def make_fill(signal: events.Signal, qty: int = 10) -> events.Fill:
    coid = f"ft-{signal.id}"
    return events.Fill(
        ts=signal.ts + 1_000,
        id=f"x-{signal.id}",
        order_id=coid,
        client_order_id=coid,
        strategy=signal.strategy,
        symbol=signal.symbol,
        side=signal.side,
        qty=Decimal(qty),
        price=signal.price,
    )


@dataclass
class Seeded:
    bars: dict[str, list[events.AnalyticsBar]]
    signals: list[events.Signal]
    alerts: list[events.Alert]
    orders: list[events.OrderEvent]
    fills: list[events.Fill]
    news: list[events.NewsItem]


def seed() -> Seeded:
    bars = {symbol: make_bars(symbol, n, seed=i) for i, (symbol, n) in enumerate(BARS.items())}
    aaa = bars["AAA"]
    signals = [
        make_signal("AAA", aaa[60], Side.BUY, "sma_cross"),
        make_signal("AAA", aaa[90], Side.SELL, "rsi_reversion"),
        make_signal("BBB", bars["BBB"][25], Side.BUY, "bollinger_breakout"),
    ]
    orders = []
    for s in signals[:2]:
        orders += [
            make_order(s, events.OrderStatus.PENDING),
            make_order(s, events.OrderStatus.FILLED, 10),
        ]
    fills = [make_fill(s) for s in signals[:2]]
    alerts = [
        events.Alert(
            ts=T0 + k * MINUTE,
            id=events.Alert.make_id(kind, "AAA", T0 + k * MINUTE),
            kind=kind,
            severity=severity,
            symbol="AAA",
            message=f"{kind} on AAA",
        )
        for k, (kind, severity) in enumerate(
            [
                ("price_jump", events.Severity.WARNING),
                ("stale_feed", events.Severity.CRITICAL),
                ("news_shock", events.Severity.INFO),
            ]
        )
    ]
    news = [
        events.NewsItem(
            ts=T0 + k * 7 * MINUTE,
            id=f"news-{k}",
            headline=headline,
            source="test wire",
            symbols=symbols,
            sentiment=sentiment,
        )
        for k, (headline, symbols, sentiment) in enumerate(
            [
                ("AAA beats estimates", ["AAA"], 0.8),
                ("BBB recalls product", ["BBB"], -0.6),
                ("AAA and BBB in talks", ["AAA", "BBB"], 0.1),
            ]
        )
    ]
    return Seeded(bars, signals, alerts, orders, fills, news)


@dataclass
class ApiEnv:
    """A running API server, its settings, what its topics were seeded with, and a producer."""

    server: ApiServer
    settings: Settings
    seeded: Seeded
    producer: bus.EventProducer

    @property
    def token(self) -> str:
        return self.server.token.get_secret_value()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=10.0)

    def store(self) -> OrderStore:
        return OrderStore(self.settings.execution.store_path(self.settings.state_dir))
