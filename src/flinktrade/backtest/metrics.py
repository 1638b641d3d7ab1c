"""Performance metrics of a simulated portfolio, as one flat JSON-compatible dict.

Conventions (close to backtesting.py's, so the two can be compared): percentages are in percent;
``max_drawdown_pct`` is negative (-25.0 means the equity fell 25 % below its running peak);
``sharpe`` and ``sortino`` use daily returns of the equity (the last equity of each UTC day; per-bar
returns when the data spans fewer than three days), a zero risk-free rate, and annualise with the
number of those periods per year actually present in the data (about 252 for exchange days);
``cagr_pct`` compounds over the calendar time from the first bar's start to the last bar's start;
``trades``, ``win_rate_pct`` and ``profit_factor`` count closed trades only (a position still open at
the end is in ``equity_final`` and ``open_trades``). A value that is not defined (no trades, no
losing trade, a flat equity) is ``None``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from flinktrade.backtest.portfolio import SimulationResult

DAY_MS = 86_400_000
YEAR_MS = 365.25 * DAY_MS

METRIC_KEYS = (
    "start",
    "end",
    "symbols",
    "bars",
    "equity_start",
    "equity_final",
    "equity_peak",
    "return_pct",
    "buy_hold_return_pct",
    "cagr_pct",
    "volatility_ann_pct",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown_pct",
    "exposure_pct",
    "trades",
    "open_trades",
    "win_rate_pct",
    "best_trade_pct",
    "worst_trade_pct",
    "avg_trade_pct",
    "profit_factor",
    "commissions",
    "signals",
    "orders_filled",
)


def drawdown(equity: list[float]) -> list[float]:
    """Per point, the fall from the running peak as a fraction (0 or negative)."""
    peak = -math.inf
    out = []
    for value in equity:
        peak = max(peak, value)
        out.append(value / peak - 1 if peak > 0 else 0.0)
    return out


def _periodic_returns(points: list[tuple[int, float]]) -> tuple[list[float], float]:
    """(returns, periods per year) of the equity: daily when the data covers >= 3 UTC days."""
    daily: dict[int, float] = {}
    for ts, value in points:
        daily[ts // DAY_MS] = value
    series = list(daily.values()) if len(daily) >= 3 else [v for _t, v in points]
    returns = [b / a - 1 for a, b in itertools.pairwise(series) if a > 0]
    span_ms = points[-1][0] - points[0][0]
    years = span_ms / YEAR_MS
    per_year = (len(series) - 1) / years if years > 0 else 0.0
    return returns, per_year


def _ratio(returns: list[float], per_year: float) -> tuple[float | None, float | None, float]:
    n = len(returns)
    if n < 2 or per_year <= 0:
        return None, None, 0.0
    mean = sum(returns) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / (n - 1))
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / n)
    scale = math.sqrt(per_year)
    sharpe = mean / std * scale if std > 0 else None
    sortino = mean / downside * scale if downside > 0 else None
    return sharpe, sortino, std * scale


def compute(result: SimulationResult, cash: float, signals: int = 0) -> dict[str, Any]:
    """The metrics of one simulation started with ``cash``."""
    points = [(p.ts, p.equity) for p in result.equity]
    values = [v for _t, v in points]
    final = values[-1]
    closed = [t for t in result.trades if t.exit_ts is not None and t.pnl is not None]
    pnls = [t.pnl for t in closed if t.pnl is not None]
    rets = [t.return_pct for t in closed if t.return_pct is not None]
    wins = sum(p for p in pnls if p > 0)
    losses = -sum(p for p in pnls if p < 0)
    years = (points[-1][0] - points[0][0]) / YEAR_MS
    cagr = ((final / cash) ** (1 / years) - 1) * 100 if years > 0 and final > 0 else None
    returns, per_year = _periodic_returns(points)
    sharpe, sortino, volatility = _ratio(returns, per_year)
    max_dd = min(drawdown(values)) * 100
    buy_hold = [
        (result.last_close[s] / result.first_close[s] - 1) * 100
        for s in result.symbols
        if result.first_close.get(s)
    ]
    out: dict[str, Any] = {
        "start": points[0][0],
        "end": points[-1][0],
        "symbols": len(result.symbols),
        "bars": result.total_bars,
        "equity_start": cash,
        "equity_final": final,
        "equity_peak": max(values),
        "return_pct": (final / cash - 1) * 100,
        "buy_hold_return_pct": sum(buy_hold) / len(buy_hold) if buy_hold else None,
        "cagr_pct": cagr,
        "volatility_ann_pct": volatility * 100 if returns else None,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": cagr / -max_dd if cagr is not None and max_dd < 0 else None,
        "max_drawdown_pct": max_dd,
        "exposure_pct": result.exposure_bars / result.total_bars * 100 if result.total_bars else 0,
        "trades": len(closed),
        "open_trades": len(result.trades) - len(closed),
        "win_rate_pct": sum(1 for p in pnls if p > 0) / len(pnls) * 100 if pnls else None,
        "best_trade_pct": max(rets) if rets else None,
        "worst_trade_pct": min(rets) if rets else None,
        "avg_trade_pct": sum(rets) / len(rets) if rets else None,
        "profit_factor": wins / losses if losses > 0 else None,
        "commissions": sum(o.commission for o in result.orders),
        "signals": signals,
        "orders_filled": sum(1 for o in result.orders if o.status == "filled"),
    }
    return {k: out[k] for k in METRIC_KEYS}


def monthly_returns(points: list[tuple[int, float]], cash: float) -> dict[tuple[int, int], float]:
    """Per UTC (year, month), the return in percent from the previous month's last equity (the
    first month: from ``cash``) to this month's last."""
    from datetime import UTC, datetime

    last: dict[tuple[int, int], float] = {}
    for ts, value in points:
        moment = datetime.fromtimestamp(ts / 1000, UTC)
        last[(moment.year, moment.month)] = value
    out: dict[tuple[int, int], float] = {}
    previous = cash
    for month, value in last.items():
        out[month] = (value / previous - 1) * 100 if previous > 0 else 0.0
        previous = value
    return out


@dataclass(frozen=True)
class DrawdownPeriod:
    """From a peak to the first point back at (or above) it; ``end`` None if never recovered."""

    start: int
    trough: int
    end: int | None
    depth_pct: float  # negative


def drawdown_periods(points: list[tuple[int, float]], top: int = 5) -> list[DrawdownPeriod]:
    """The ``top`` deepest drawdown periods of the equity, deepest first."""
    periods: list[DrawdownPeriod] = []
    peak_ts, peak = points[0] if points else (0, 0.0)
    trough_ts, trough = peak_ts, peak
    for ts, value in points[1:]:
        if value >= peak:
            if trough < peak and peak > 0:
                periods.append(DrawdownPeriod(peak_ts, trough_ts, ts, (trough / peak - 1) * 100))
            peak_ts, peak = ts, value
            trough_ts, trough = ts, value
        elif value < trough:
            trough_ts, trough = ts, value
    if trough < peak and peak > 0:
        periods.append(DrawdownPeriod(peak_ts, trough_ts, None, (trough / peak - 1) * 100))
    periods.sort(key=lambda p: (p.depth_pct, p.start))
    return periods[:top]


@dataclass(frozen=True)
class Attribution:
    """The P&L of one symbol or one strategy (``by``: ``symbol`` or ``strategy``)."""

    by: str
    name: str
    trades: int
    """Closed trades."""
    open_trades: int
    pnl_closed: float
    """Net of both commissions."""
    pnl_open: float
    """Positions still open, marked at the last close, net of the entry commission."""
    commissions: float

    @property
    def pnl(self) -> float:
        return self.pnl_closed + self.pnl_open


def attribution(result: SimulationResult) -> list[Attribution]:
    """Who made the money: per symbol, then per strategy, in name order.

    A trade belongs to the strategy whose signal opened it (its ``open`` order; when several
    strategies trade one symbol they share its position, so a later signal of another strategy
    may close it). The per-symbol rows add up to the portfolio's final equity minus its cash,
    and so do the per-strategy rows."""
    opened_by = {
        (o.symbol, o.fill_ts): o.strategy
        for o in result.orders
        if o.intent == "open" and o.status == "filled"
    }
    rows: dict[tuple[str, str], list[float]] = {}
    for trade in result.trades:
        strategy = opened_by.get((trade.symbol, trade.entry_ts), "")
        if trade.exit_ts is None:
            last = result.last_close[trade.symbol]
            sign = 1 if trade.direction == "long" else -1
            pnl_open = sign * trade.size * (last - trade.entry_price) - trade.commission
            values = [0, 1, 0.0, pnl_open, trade.commission]
        else:
            values = [1, 0, trade.pnl or 0.0, 0.0, trade.commission]
        for key in (("symbol", trade.symbol), ("strategy", strategy)):
            row = rows.setdefault(key, [0, 0, 0.0, 0.0, 0.0])
            for i, value in enumerate(values):
                row[i] += value
    for symbol in result.symbols:  # a symbol that never traded still gets its (zero) row
        rows.setdefault(("symbol", symbol), [0, 0, 0.0, 0.0, 0.0])
    return [
        Attribution(by, name, int(r[0]), int(r[1]), r[2], r[3], r[4])
        for (by, name), r in sorted(rows.items(), key=lambda kv: (kv[0][0] != "symbol", kv[0]))
    ]
