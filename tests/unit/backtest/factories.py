"""Factories of bars and signals for the backtest unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from flinktrade import events
from flinktrade.backtest import simulated

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


def make_signal(
    bar: events.Bar, side: str, strategy: str = "s", order: events.OrderSpec | None = None
) -> events.Signal:
    return events.Signal(
        id=events.Signal.make_id(strategy, bar.symbol, bar.ts),
        strategy=strategy,
        symbol=bar.symbol,
        side=events.Side(side),
        price=bar.close,
        bar_ts=bar.ts,
        ts=bar.ts + bar.interval_ms,
        order=order,
    )


MINUTE = 60_000
simulated_market = simulated.simulated_market
"""The simulated market the ``--simulate`` input builds (``backtest.simulated``)."""
