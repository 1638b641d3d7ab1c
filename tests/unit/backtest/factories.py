"""Factories of bars and signals for the backtest unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from flinktrade import events

DAY = 86_400_000
T0 = 1_704_067_200_000  # 2024-01-01 UTC


def make_bars(
    rows: Sequence[tuple[float, float]], symbol: str = "AAA", interval: int = DAY
) -> list[events.AnalyticsBar]:
    """Bars from (open, close) pairs, one per interval from T0 (prices rounded to 6 decimals, the
    most a price may have)."""
    out = []
    for i, (o, c) in enumerate(rows):
        op, cl = Decimal(str(round(o, 6))), Decimal(str(round(c, 6)))
        out.append(
            events.AnalyticsBar(
                symbol=symbol,
                ts=T0 + i * interval,
                open=op,
                high=max(op, cl),
                low=min(op, cl),
                close=cl,
                volume=1000,
                interval_ms=interval,
            )
        )
    return out


def make_signal(bar: events.Bar, side: str, strategy: str = "s") -> events.Signal:
    return events.Signal(
        id=events.Signal.make_id(strategy, bar.symbol, bar.ts),
        strategy=strategy,
        symbol=bar.symbol,
        side=events.Side(side),
        price=bar.close,
        bar_ts=bar.ts,
        ts=bar.ts + bar.interval_ms,
    )


MINUTE = 60_000
_UP = "{s} surges after record earnings beat and an upgrade"
_DOWN = "{s} plunges after a profit warning and a downgrade"


def simulated_market(
    symbols: int, minutes: int, seed: int = 11, news_every: int = 17
) -> tuple[list[events.Bar], list[events.NewsItem]]:
    """One-minute bars built from ``MarketSimulator`` trades (its own news included), plus strong
    stories every ``news_every`` minutes per symbol placed on the edges the engines must order
    alike: one millisecond before a bar's end, exactly at its end, two stories at the same
    millisecond, and one story about two symbols. Bars in time order, news in time order."""
    from flinktrade.ingest.simulator import MarketSimulator, RawTrade

    simulator = MarketSimulator(symbols=symbols, seed=seed, gap_ms=60_000 * 0.5 / (8 * symbols))
    start = simulator.ts
    end = start + minutes * MINUTE
    per_bar: dict[tuple[str, int], list[RawTrade]] = {}
    news: list[events.NewsItem] = []
    for item in simulator:
        if item.ts >= end:
            break
        if isinstance(item, RawTrade):
            minute = item.ts - item.ts % MINUTE
            per_bar.setdefault((item.symbol, minute), []).append(item)
        else:
            news.append(item)
    bars = []
    for (symbol, minute), trades in per_bar.items():
        prices = [t.cents for t in trades]
        volume = sum(t.size for t in trades)
        bars.append(
            events.Bar(
                symbol=symbol,
                ts=minute,
                open=Decimal(prices[0]).scaleb(-2),
                high=Decimal(max(prices)).scaleb(-2),
                low=Decimal(min(prices)).scaleb(-2),
                close=Decimal(prices[-1]).scaleb(-2),
                volume=volume,
                vwap=sum(t.cents * t.size for t in trades) / volume / 100,
                trades=len(trades),
                ingest_ts=0,
            )
        )
    bars.sort(key=lambda b: (b.ts, b.symbol))
    first = int(start) - int(start) % MINUTE + MINUTE
    names = sorted({b.symbol for b in bars})
    for k, symbol in enumerate(names):
        for j, minute in enumerate(
            range(first + (k % news_every) * MINUTE, int(end), news_every * MINUTE)
        ):
            edge = (minute + MINUTE - 1, minute + MINUTE, minute + 30_000)[j % 3]
            headline = (_UP if (j + k) % 2 == 0 else _DOWN).format(s=symbol)
            story = events.NewsItem(
                id=events.stable_id("test-news", symbol, edge),
                headline=headline,
                symbols=[symbol] if j % 5 else [symbol, names[(k + 1) % len(names)]],
                ts=edge,
                ingest_ts=0,
            )
            news.append(story)
            if j % 4 == 1:  # a second story at the same millisecond: ordered by id
                twin = (_DOWN if (j + k) % 2 == 0 else _UP).format(s=symbol)
                news.append(story.model_copy(update={"id": story.id[::-1], "headline": twin}))
    news.sort(key=lambda n: n.ts)
    return bars, news
