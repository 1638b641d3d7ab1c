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
    exact: dict[str, Decimal | None] = field(default_factory=dict)
    """The same indicators as exact decimals where the reference has them (SMAs): crossovers are
    decided on these, so two equal SMAs never differ by float rounding."""

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
    """Set ``indicators['sma_N']`` (float) and ``exact['sma_N']`` (Decimal) on each bar, None
    until N bars exist for the symbol."""
    closes: dict[str, list[Decimal]] = defaultdict(list)
    for bar in bars_sorted:
        history = closes[bar.symbol]
        history.append(bar.close)
        for n in periods:
            window = history[-n:]
            sma = sum(window, Decimal(0)) / n if len(window) == n else None
            bar.exact[f"sma_{n}"] = sma
            bar.indicators[f"sma_{n}"] = None if sma is None else float(sma)


def sma_cross_signals(
    bars_sorted: list[RefBar], fast: int, slow: int
) -> list[tuple[str, int, str]]:
    """``(symbol, bar_ts, side)`` on each sign change of SMA(fast) - SMA(slow) once both exist.

    Compares the exact SMAs of ``add_sma`` (the float ones where a bar has no exact value)."""
    out = []
    last_sign: dict[str, int] = {}
    for bar in bars_sorted:
        values = bar.exact if f"sma_{slow}" in bar.exact else bar.indicators
        f, s = values.get(f"sma_{fast}"), values.get(f"sma_{slow}")
        if f is None or s is None or f == s:
            continue
        sign = 1 if f > s else -1
        previous = last_sign.get(bar.symbol)
        last_sign[bar.symbol] = sign
        if previous is not None and previous != sign:
            out.append((bar.symbol, bar.ts, "buy" if sign > 0 else "sell"))
    return out
