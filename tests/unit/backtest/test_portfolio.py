"""The execution model, on hand-built bars with hand-computed expectations."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tests.unit.backtest.factories import DAY, T0, make_bars, make_signal

from flinktrade.backtest.metrics import attribution
from flinktrade.backtest.portfolio import ExecutionModel, FillAt, Mode, simulate
from flinktrade.backtest.report import write_all
from flinktrade.errors import ConfigError


def test_long_only_fills_at_the_next_open_with_all_cash_in_whole_units() -> None:
    bars = make_bars([(10, 11), (12, 13), (14, 15), (16, 17)])
    signals = [make_signal(bars[0], "buy"), make_signal(bars[2], "sell")]
    result = simulate(bars, signals, ExecutionModel(cash=1000, commission=0.01))
    # Buy at bar 1's open 12: 1000 // (12 * 1.01) = 82 units, commission 82*12*0.01 = 9.84.
    # Sell at bar 3's open 16: +82*16 - 13.12 commission.
    cash = 1000 - 82 * 12 - 9.84 + 82 * 16 - 13.12
    [trade] = result.trades
    assert (trade.direction, trade.size, trade.entry_price, trade.exit_price) == (
        "long",
        82,
        12,
        16,
    )
    assert trade.entry_ts == T0 + DAY and trade.exit_ts == T0 + 3 * DAY
    assert trade.pnl == pytest.approx(82 * 4 - 9.84 - 13.12)
    assert trade.commission == pytest.approx(9.84 + 13.12)
    assert result.equity[-1].equity == pytest.approx(cash)
    # Marked to market at each close: after bar 1, 82 units at 13.
    assert result.equity[1].equity == pytest.approx(1000 - 82 * 12 - 9.84 + 82 * 13)
    assert [p.exposed for p in result.equity] == [False, True, True, False]


def test_fill_at_close_uses_the_signal_bar_close() -> None:
    bars = make_bars([(10, 20), (30, 40)])
    result = simulate(
        bars, [make_signal(bars[0], "buy")], ExecutionModel(cash=100, fill=FillAt.CLOSE)
    )
    [trade] = result.trades
    assert (trade.entry_ts, trade.entry_price, trade.size, trade.exit_ts) == (T0, 20, 5, None)
    assert result.equity[-1].equity == pytest.approx(5 * 40)


def test_reverse_mode_closes_and_opens_the_other_side() -> None:
    bars = make_bars([(10, 10), (10, 10), (8, 8), (5, 5)])
    signals = [make_signal(bars[0], "buy"), make_signal(bars[1], "sell")]
    result = simulate(bars, signals, ExecutionModel(cash=100, mode=Mode.REVERSE))
    long, short = result.trades
    assert (long.direction, long.size, long.entry_price, long.exit_price) == ("long", 10, 10, 8)
    assert long.pnl == pytest.approx(-20)
    # 80 left: short 80 // 8 = 10 units at 8, still open; at the last close 5 it is worth +30.
    assert (short.direction, short.size, short.entry_price, short.exit_ts) == ("short", 10, 8, None)
    assert result.equity[-1].equity == pytest.approx(80 + 10 * (8 - 5))
    assert [(o.intent, o.side.value, o.qty) for o in result.orders] == [
        ("open", "buy", 10),
        ("close", "sell", 10),
        ("open", "sell", 10),
    ]


def test_slippage_and_per_share_commission() -> None:
    bars = make_bars([(100, 100), (100, 100), (100, 100)])
    signals = [make_signal(bars[0], "buy"), make_signal(bars[1], "sell")]
    model = ExecutionModel(cash=1000, slippage_bps=100, commission_per_share=1)
    result = simulate(bars, signals, model)
    [trade] = result.trades
    # Buy at 101 (+1 %), unit cost 101 + 1 -> 9 units; sell at 99 (-1 %).
    assert (trade.size, trade.entry_price, trade.exit_price) == (9, 101, 99)
    assert trade.pnl == pytest.approx(9 * (99 - 101) - 9 - 9)


def test_signals_that_cannot_act_are_recorded_not_dropped() -> None:
    bars = make_bars([(10, 10), (10, 10), (10, 10)])
    signals = [
        make_signal(bars[0], "sell"),  # long only, flat: nothing to close
        make_signal(bars[1], "buy"),
        make_signal(bars[2], "buy"),  # the last bar: no next open
    ]
    result = simulate(bars, signals, ExecutionModel(cash=5))
    assert [(o.status, o.reason) for o in result.orders] == [
        ("skipped", "long only"),
        ("skipped", "not enough equity for one unit"),
        ("unfilled", "no bar after the signal"),
    ]
    assert result.trades == []


def test_duplicate_signals_and_bars_from_an_at_least_once_job_count_once() -> None:
    bars = make_bars([(10, 10), (10, 11), (12, 12)])
    buy = make_signal(bars[0], "buy")
    once = simulate(bars, [buy], ExecutionModel(cash=100))
    twice = simulate([*bars, *bars], [buy, buy], ExecutionModel(cash=100))
    assert once.trades == twice.trades and once.equity == twice.equity


def test_several_symbols_get_equal_sleeves() -> None:
    a = make_bars([(10, 10), (10, 20)], symbol="AAA")
    b = make_bars([(10, 10), (10, 10)], symbol="BBB")
    result = simulate([*a, *b], [make_signal(a[0], "buy")], ExecutionModel(cash=200))
    # AAA's sleeve (100) buys 10 at 10, worth 200 at the close 20; BBB's 100 stays cash.
    assert result.equity[-1].equity == pytest.approx(300)
    assert result.exposure_bars == 1 and result.total_bars == 4


@pytest.mark.parametrize(
    "kwargs",
    [{"cash": 0}, {"commission": 1.5}, {"commission": -0.1}, {"slippage_bps": -1},
     {"commission_per_share": -1}],
)  # fmt: skip
def test_bad_execution_settings_are_configuration_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ExecutionModel(**kwargs)  # type: ignore[arg-type]


def test_buy_and_hold_benchmark_splits_the_cash_over_the_symbols() -> None:
    from flinktrade.backtest.portfolio import buy_and_hold

    a = make_bars([(10, 10), (10, 20), (20, 15)], symbol="AAA")
    b = make_bars([(50, 50), (50, 25)], symbol="BBB")[:2]
    b = [bar.model_copy(update={"ts": bar.ts + DAY}) for bar in b]  # BBB starts a day later
    result = simulate([*a, *b], [], ExecutionModel(cash=1000))
    # 500 in AAA at 10 (50 units), 500 in BBB at 50 (10 units; held as cash until its first bar)
    assert buy_and_hold(result, 1000) == [500 + 500, 50 * 20 + 10 * 50, 50 * 15 + 10 * 25]


def test_pnl_is_attributed_per_symbol_and_to_the_strategy_that_opened_each_trade(
    tmp_path: Path,
) -> None:
    aaa = make_bars([(10, 10), (10, 10), (12, 12), (15, 15)], "AAA")
    bbb = make_bars([(20, 20), (20, 20), (25, 25), (30, 30)], "BBB")
    signals = [
        make_signal(aaa[0], "buy", "trend"),  # opens AAA at 10 (bar 1's open)
        make_signal(aaa[2], "sell", "dip"),  # closes it at 15: the trade stays trend's
        make_signal(bbb[1], "buy", "dip"),  # opens BBB at 25, still open at the last close 30
    ]
    result = simulate([*aaa, *bbb], signals, ExecutionModel(cash=200, commission=0.01))
    # AAA's sleeve of 100: 100 // 10.1 = 9 units, commission 0.90 in and 9 * 15 * 0.01 = 1.35 out
    aaa_pnl = 9 * (15 - 10) - 0.90 - 1.35
    # BBB's sleeve: 100 // 25.25 = 3 units, commission 0.75 in; open, marked at 30
    bbb_open = 3 * (30 - 25) - 0.75
    rows = {(a.by, a.name): a for a in attribution(result)}
    assert list(rows) == [("symbol", "AAA"), ("symbol", "BBB"), ("strategy", "dip"),
                          ("strategy", "trend")]  # fmt: skip
    assert (rows["symbol", "AAA"].trades, rows["symbol", "AAA"].open_trades) == (1, 0)
    assert rows["symbol", "AAA"].pnl == pytest.approx(aaa_pnl)
    assert rows["symbol", "AAA"].commissions == pytest.approx(0.90 + 1.35)
    assert (rows["symbol", "BBB"].trades, rows["symbol", "BBB"].open_trades) == (0, 1)
    assert rows["symbol", "BBB"].pnl_open == pytest.approx(bbb_open)
    assert rows["strategy", "trend"].pnl == pytest.approx(aaa_pnl)
    assert rows["strategy", "dip"].pnl == pytest.approx(bbb_open)
    assert result.equity[-1].equity == pytest.approx(200 + aaa_pnl + bbb_open)

    files = write_all(tmp_path, result, {"AAA": aaa, "BBB": bbb}, signals, {}, {})
    with files["attribution.csv"].open() as handle:
        written = list(csv.DictReader(handle))
    assert [(r["by"], r["name"], round(float(r["pnl"]), 6)) for r in written] == [
        ("symbol", "AAA", round(aaa_pnl, 6)),
        ("symbol", "BBB", round(bbb_open, 6)),
        ("strategy", "dip", round(bbb_open, 6)),
        ("strategy", "trend", round(aaa_pnl, 6)),
    ]
    assert "P&amp;L attribution" in files["report.html"].read_text()
