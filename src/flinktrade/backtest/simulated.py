"""A simulated market as a backtest input (``--simulate 20x390``): one-minute bars and news.

The bars are built from ``ingest.simulator.MarketSimulator``'s trades (one seed: the same input on
every machine), with the simulator's own news, plus strong stories every ``news_every`` minutes per
symbol placed on the edges the two engines must order alike (one millisecond before a bar's end,
exactly at its end, two stories at the same millisecond, one story about two symbols), so that a
strategy trading on news sentiment has something to trade. The same input serves the
``backtest`` and ``optimize`` commands and the tests (engine parity, sweeps, walk-forward).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from flinktrade import events
from flinktrade.bars import make_bar
from flinktrade.errors import ConfigError

MINUTE = 60_000
DEFAULT_MINUTES = 390
DEFAULT_SEED = 11
MAX_SYMBOLS = 500
MAX_MINUTES = 100_000
_UP = "{s} surges after record earnings beat and an upgrade"
_DOWN = "{s} plunges after a profit warning and a downgrade"
_SPEC = re.compile(r"^\s*(\d+)\s*(?:[x*]\s*(\d+)\s*)?$")


@dataclass(frozen=True)
class SimulatedMarket:
    """What to simulate: ``symbols`` symbols over ``minutes`` one-minute bars, from ``seed``."""

    symbols: int
    minutes: int = DEFAULT_MINUTES
    seed: int = DEFAULT_SEED

    @classmethod
    def parse(cls, spec: str, seed: int = DEFAULT_SEED) -> SimulatedMarket:
        """``SYMBOLS`` or ``SYMBOLSxMINUTES`` (``20x390``)."""
        match = _SPEC.match(spec)
        if match is None:
            raise ConfigError(f"--simulate {spec!r}: expected SYMBOLS or SYMBOLSxMINUTES (20x390)")
        symbols = int(match.group(1))
        minutes = int(match.group(2)) if match.group(2) else DEFAULT_MINUTES
        if not 1 <= symbols <= MAX_SYMBOLS:
            raise ConfigError(f"--simulate {spec!r}: 1 to {MAX_SYMBOLS} symbols")
        if not 2 <= minutes <= MAX_MINUTES:
            raise ConfigError(f"--simulate {spec!r}: 2 to {MAX_MINUTES} minutes")
        return cls(symbols, minutes, seed)

    def describe(self) -> str:
        return f"simulated {self.symbols} symbols x {self.minutes} minutes (seed {self.seed})"

    def build(self) -> tuple[list[events.Bar], list[events.NewsItem]]:
        return simulated_market(self.symbols, self.minutes, self.seed)


def simulated_market(
    symbols: int, minutes: int, seed: int = DEFAULT_SEED, news_every: int = 17
) -> tuple[list[events.Bar], list[events.NewsItem]]:
    """One-minute bars built from ``MarketSimulator`` trades (its own news included), plus strong
    stories every ``news_every`` minutes per symbol placed on the edges of the operator's order.
    Bars in (time, symbol) order, news in time order."""
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
        bar = make_bar(
            symbol, minute, Decimal(prices[0]).scaleb(-2), Decimal(max(prices)).scaleb(-2),
            Decimal(min(prices)).scaleb(-2), Decimal(prices[-1]).scaleb(-2), volume,
            vwap=sum(t.cents * t.size for t in trades) / volume / 100, trades=len(trades),
            ingest_ts=0,
        )  # fmt: skip
        bars.append(bar)
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
