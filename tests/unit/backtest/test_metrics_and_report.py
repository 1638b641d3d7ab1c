"""Metrics on hand-made equity, and the report files' layout."""

from __future__ import annotations

import csv
import math
from decimal import Decimal
from pathlib import Path

import pytest
from tests.unit.backtest.factories import T0, make_bars, make_signal

from flinktrade import events
from flinktrade.backtest.metrics import compute, drawdown
from flinktrade.backtest.portfolio import ExecutionModel, Mode, simulate
from flinktrade.backtest.report import FEATURE_COLUMNS, iso, write_all


def test_drawdown_is_the_fall_from_the_running_peak() -> None:
    assert drawdown([100, 120, 90, 130, 65]) == pytest.approx([0, 0, -0.25, 0, -0.5])


def test_metrics_of_one_winning_and_one_losing_trade() -> None:
    closes = [10, 10, 20, 20, 20, 10, 10]
    bars = make_bars([(c, c) for c in closes])
    signals = [
        make_signal(bars[0], "buy"),  # 10 units in at 10 (bar 1), out at 20 (bar 2): +100
        make_signal(bars[1], "sell"),
        make_signal(bars[2], "buy"),  # 10 units in at 20 (bar 3), out at 10 (bar 5): -100
        make_signal(bars[4], "sell"),
    ]
    result = simulate(bars, signals, ExecutionModel(cash=100))
    m = compute(result, 100, signals=len(signals))
    assert m["trades"] == 2 and m["open_trades"] == 0
    assert m["equity_final"] == pytest.approx(100)  # 10 units +100, then 10 units -100
    assert m["return_pct"] == pytest.approx(0)
    assert m["win_rate_pct"] == pytest.approx(50)
    assert m["profit_factor"] == pytest.approx(1.0)
    assert m["max_drawdown_pct"] == pytest.approx(-50)
    assert m["buy_hold_return_pct"] == pytest.approx(0)
    assert m["exposure_pct"] == pytest.approx(3 / 7 * 100)  # held at the close of bars 1, 3, 4
    assert m["best_trade_pct"] == pytest.approx(100) and m["worst_trade_pct"] == pytest.approx(-50)
    assert m["signals"] == 4 and m["orders_filled"] == 4


def test_undefined_metrics_are_none() -> None:
    bars = make_bars([(10, 10)] * 5)
    m = compute(simulate(bars, [], ExecutionModel(cash=100)), 100)
    assert m["trades"] == 0
    assert m["win_rate_pct"] is None and m["profit_factor"] is None and m["sharpe"] is None
    assert m["return_pct"] == 0 and m["max_drawdown_pct"] == 0


def test_sharpe_of_a_known_daily_series() -> None:
    # Always long, so equity follows the closes: daily returns alternate +10 % / -5 %.
    closes = [100.0]
    for i in range(40):
        closes.append(closes[-1] * (1.1 if i % 2 == 0 else 0.95))
    bars = make_bars([(c, c) for c in closes])
    result = simulate(bars, [], ExecutionModel(cash=1000))
    # Not in the market: flat equity, no volatility.
    assert compute(result, 1000)["sharpe"] is None
    long = simulate(bars, [make_signal(bars[0], "buy")], ExecutionModel(cash=1e9))
    returns = [
        b.equity / a.equity - 1 for a, b in zip(long.equity[1:], long.equity[2:], strict=False)
    ]
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    per_year = (len(long.equity) - 1) / ((len(long.equity) - 1) / 365.25)
    got = compute(long, 1e9)["sharpe"]
    # The first return (cash -> invested at bar 1's open) differs; the rest dominate.
    assert got == pytest.approx(mean / std * math.sqrt(per_year), rel=0.05)


def test_report_files_have_the_documented_columns(tmp_path: Path) -> None:
    bars = make_bars([(10, 11), (11, 12), (12, 9), (9, 10)])
    for i, bar in enumerate(bars):
        bars[i] = bar.model_copy(update={"indicators": {"sma_20": 1.5 if i else None}})
    signals = [make_signal(bars[0], "buy"), make_signal(bars[3], "sell")]
    result = simulate(bars, signals, ExecutionModel(cash=100, mode=Mode.REVERSE))
    metrics = compute(result, 100, len(signals))
    files = write_all(tmp_path, result, {"AAA": bars}, signals, metrics, {"strategy": "x"})
    with files["features.csv"].open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["ts", "open", "high", "low", "close", "volume"] + [
        c for c, _n in FEATURE_COLUMNS
    ]
    assert rows[0][6:] == [
        "sma_20", "sma_50", "ema_12", "ema_26", "rsi_14", "macd", "macd_signal", "macd_hist",
        "bb_upper_20_2", "bb_middle_20_2", "bb_lower_20_2", "atr_14",
    ]  # fmt: skip
    assert rows[1][:7] == [iso(bars[0].ts), "10", "11", "10", "11", "1000", ""]
    assert rows[2][6] == "1.5" and rows[2][7] == ""
    with files["trades.csv"].open() as handle:
        trades = list(csv.DictReader(handle))
    assert [t["side"] for t in trades] == ["long"]
    assert trades[0]["entry_ts"] == "2024-01-02T00:00:00Z" and trades[0]["exit_ts"] == ""
    assert trades[0]["pnl"] == ""  # still open at the end: undefined
    orders = list(csv.DictReader(files["orders.csv"].open()))
    assert [o["status"] for o in orders] == ["filled", "unfilled"]
    html = files["report.html"].read_text()
    assert html.count("data:image/png;base64,") == 2
    assert files["equity.png"].read_bytes().startswith(b"\x89PNG")


def test_features_cells_are_the_exact_cells_of_every_value(tmp_path: Path) -> None:
    """Each cell of features.csv is ``cell(value, exact=True)`` of its value, whatever the value
    (hostile floats, a float subclass, numpy, ints, text), several symbols sharing bar times."""
    import numpy as np

    from flinktrade.backtest.report import cell, write_features

    class Sub(float):
        pass

    odd = [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e300, 0.1 + 0.2, Sub(1.25),
           np.float64(2.5), np.float32(0.1), 7, True, "x", Decimal("1.50")]  # fmt: skip
    bars = {}
    for symbol, shift in (("AAA", 0), ("BBB", 1)):
        series = []
        for i, value in enumerate(odd):
            indicators = {name: (value if j % 2 == 0 else None)
                          for j, (_column, name) in enumerate(FEATURE_COLUMNS)}  # fmt: skip
            bar = events.AnalyticsBar(
                symbol=symbol, ts=T0 + (i + shift) * 60_000, open=Decimal("10.10"),
                high=Decimal("11"), low=Decimal("9.5"), close=Decimal("10.0"), volume=100 + i,
                vwap=None, trades=0, interval_ms=60_000, indicators={},
            )  # fmt: skip
            bar.__dict__["indicators"] = indicators  # unvalidated: any value a run might hold
            series.append(bar)
        bars[symbol] = series
    path = tmp_path / "features.csv"
    write_features(path, bars)
    header = ["ts", "symbol", "open", "high", "low", "close", "volume"]
    header += [column for column, _name in FEATURE_COLUMNS]
    lines = [",".join(header)]
    for symbol, series in bars.items():
        for bar in series:
            values = [bar.open, bar.high, bar.low, bar.close, bar.volume]
            values += [bar.indicators.get(name) for _column, name in FEATURE_COLUMNS]
            lines.append(",".join([iso(bar.ts), symbol, *[cell(v, exact=True) for v in values]]))
    assert path.read_text() == "\n".join(lines) + "\n"


def test_features_keep_full_precision_and_match_talib(tmp_path: Path) -> None:
    """features.csv holds each indicator as the float itself (no rounding), so the file agrees
    with TA-Lib on backtesting.py's GOOG bars to 1e-9, where 8 rounded decimals could not."""
    import numpy as np
    import talib
    from backtesting.test import GOOG

    from flinktrade.backtest.report import write_features
    from flinktrade.config import AnalyticsSettings
    from flinktrade.pipeline.analytics import ClosedBar, SymbolModel

    model = SymbolModel([], AnalyticsSettings(alerts=False))
    state = model.initial_state()
    bars = []
    for when, row in GOOG.iterrows():
        ts = int(when.value // 1_000_000)
        o, h, lo, c = (Decimal(str(row[k])) for k in ("Open", "High", "Low", "Close"))
        closed = ClosedBar("GOOG", ts, o, h, lo, c, int(row.Volume), None, 0, 86_400_000)
        bars.append(model.on_bar(state, closed)[0])
    path = tmp_path / "features.csv"
    write_features(path, {"GOOG": bars})
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(GOOG)
    for row, bar in zip(rows, bars, strict=True):
        for column, name in FEATURE_COLUMNS:
            value = bar.indicators.get(name)
            assert row[column] == ("" if value is None else repr(value))
            if value is not None:
                assert float(row[column]) == value  # reads back as the same float
    close = GOOG.Close.to_numpy(dtype=float)
    high, low = GOOG.High.to_numpy(dtype=float), GOOG.Low.to_numpy(dtype=float)
    expected = {
        "sma_20": talib.SMA(close, 20),
        "ema_12": talib.EMA(close, 12),
        "rsi_14": talib.RSI(close, 14),
        "atr_14": talib.ATR(high, low, close, 14),
        "bb_upper_20_2": talib.BBANDS(close, 20, 2, 2)[0],
    }
    for column, reference in expected.items():
        got = np.array([float(r[column]) if r[column] else np.nan for r in rows])
        both = ~np.isnan(reference) & ~np.isnan(got)
        assert both.sum() > len(GOOG) - 60, column
        assert np.max(np.abs(got[both] - reference[both])) < 1e-9, column


def test_monthly_returns_and_drawdown_periods() -> None:
    from flinktrade.backtest.metrics import DrawdownPeriod, drawdown_periods, monthly_returns

    jan, feb, mar = 1_704_067_200_000, 1_706_745_600_000, 1_709_251_200_000  # 2024-01/02/03-01
    day = 86_400_000
    points = [
        (jan, 100.0), (jan + day, 110.0),  # January ends at 110: +10 % on cash 100
        (feb, 99.0), (feb + day, 88.0),  # February ends at 88: -20 %
        (mar, 121.0), (mar + day, 110.0),  # March ends at 110: +25 %
    ]  # fmt: skip
    assert monthly_returns(points, 100.0) == pytest.approx(
        {(2024, 1): 10.0, (2024, 2): -20.0, (2024, 3): 25.0}
    )
    assert drawdown_periods(points) == [
        DrawdownPeriod(jan + day, feb + day, mar, pytest.approx(-20.0)),  # 110 -> 88 -> 121
        DrawdownPeriod(mar, mar + day, None, pytest.approx(-100 / 11)),  # 121 -> 110, open
    ]
    assert drawdown_periods(points, top=1)[0].depth_pct == pytest.approx(-20.0)
