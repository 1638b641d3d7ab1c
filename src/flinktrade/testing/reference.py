"""A plain-Python reference of what the job computes, used to check it in tests and benchmarks.

It is written independently of the job: bars are folded trade by trade in arrival order, SMAs are
recomputed from scratch over the last N closes, and the crossover rule is restated here rather than
taken from ``flinktrade.strategies``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

BAR_MS = 60_000


@dataclass
class RefBar:
    symbol: str
    ts: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int = 0
    notional: float = 0.0
    trades: int = 0
    indicators: dict[str, float | None] = field(default_factory=dict)

    @property
    def vwap(self) -> float:
        return self.notional / self.volume


def bars(trades: Iterable[tuple[str, Decimal, int, int]]) -> list[RefBar]:
    """1-minute bars from ``(symbol, price, size, ts)`` in arrival order, sorted by symbol, ts."""
    open_bars: dict[tuple[str, int], RefBar] = {}
    for symbol, price, size, ts in trades:
        start = ts - ts % BAR_MS
        bar = open_bars.get((symbol, start))
        if bar is None:
            bar = open_bars[(symbol, start)] = RefBar(symbol, start, price, price, price, price)
        bar.high = max(bar.high, price)
        bar.low = min(bar.low, price)
        bar.close = price
        bar.volume += size
        bar.notional += float(price) * size
        bar.trades += 1
    return sorted(open_bars.values(), key=lambda b: (b.symbol, b.ts))


def add_sma(bars_sorted: list[RefBar], periods: Iterable[int]) -> None:
    """Set ``indicators['sma_N']`` on each bar (None until N bars exist for the symbol)."""
    closes: dict[str, list[Decimal]] = defaultdict(list)
    for bar in bars_sorted:
        history = closes[bar.symbol]
        history.append(bar.close)
        for n in periods:
            window = history[-n:]
            bar.indicators[f"sma_{n}"] = float(sum(window)) / n if len(window) == n else None


def sma_cross_signals(
    bars_sorted: list[RefBar], fast: int, slow: int
) -> list[tuple[str, int, str]]:
    """``(symbol, bar_ts, side)`` on each sign change of SMA(fast) - SMA(slow) once both exist."""
    out = []
    last_sign: dict[str, int] = {}
    for bar in bars_sorted:
        f, s = bar.indicators.get(f"sma_{fast}"), bar.indicators.get(f"sma_{slow}")
        if f is None or s is None or f == s:
            continue
        sign = 1 if f > s else -1
        previous = last_sign.get(bar.symbol)
        last_sign[bar.symbol] = sign
        if previous is not None and previous != sign:
            out.append((bar.symbol, bar.ts, "buy" if sign > 0 else "sell"))
    return out
