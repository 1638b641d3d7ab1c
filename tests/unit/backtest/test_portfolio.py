"""The execution model, on hand-built bars with hand-computed expectations."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tests.unit.backtest.factories import DAY, T0, make_bars, make_signal

from flinktrade.backtest.metrics import attribution
from flinktrade.backtest.portfolio import CashMode, ExecutionModel, FillAt, Mode, simulate
from flinktrade.backtest.report import write_all, write_attribution
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


@pytest.mark.parametrize("aligned", [True, False])
def test_sleeves_sum_to_the_equity_carrying_each_last_value_forward(aligned: bool) -> None:
    a = make_bars([(10, 10), (10, 20), (20, 15), (15, 15)], symbol="AAA")
    b = make_bars([(50, 50), (50, 50), (50, 25), (25, 25)], symbol="BBB")
    if not aligned:  # BBB: no bar on the first and third day
        b = [b[1], b[3]]
    result = simulate([*a, *b], [make_signal(a[0], "buy")], ExecutionModel(cash=1000))
    # AAA buys 500 // 10 = 50 units at the second open; BBB holds its 500 throughout
    assert [p.equity for p in result.equity] == [1000, 50 * 20 + 500, 50 * 15 + 500, 50 * 15 + 500]
    assert [p.exposed for p in result.equity] == [False, True, True, True]
    assert result.total_bars == 8 if aligned else 6
    assert result.exposure_bars == 3
    assert result.times["BBB"] == [bar.ts for bar in b]
    assert result.closes["BBB"] == [float(bar.close) for bar in b]


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


# -- shared cash ----------------------------------------------------------------------------------


def test_shared_cash_sizes_at_a_share_of_equity_and_attribution_adds_up(tmp_path: Path) -> None:
    """The attribution case above on one cash pool: each position is half the equity."""
    aaa = make_bars([(10, 10), (10, 10), (12, 12), (15, 15)], "AAA")
    bbb = make_bars([(20, 20), (20, 20), (25, 25), (30, 30)], "BBB")
    signals = [
        make_signal(aaa[0], "buy", "trend"),  # fills at bar 1's open 10
        make_signal(bbb[1], "buy", "dip"),  # fills at bar 2's open 25
        make_signal(aaa[2], "sell", "dip"),  # closes AAA at bar 3's open 15
    ]
    model = ExecutionModel(cash=200, commission=0.01, cash_mode=CashMode.SHARED)
    result = simulate([*aaa, *bbb], signals, model)
    # Bar 1: equity 200, half is 100: 100 // 10.1 = 9 units, commission 0.90; cash 109.10.
    # Bar 2's open: equity 109.10 + 9 * 12 = 217.10, half 108.55: 108.55 // 25.25 = 4 units
    # (a sleeve of 100 would buy 3), commission 1.00; cash 8.10.
    # Bar 3's open: AAA sold, 9 * 15 = 135 less 1.35 commission; cash 141.75.
    assert [(t.symbol, t.size, t.entry_price, t.exit_price) for t in result.trades] == [
        ("AAA", 9, 10, 15),
        ("BBB", 4, 25, None),
    ]
    assert [p.equity for p in result.equity] == pytest.approx(
        [200, 109.10 + 9 * 10, 8.10 + 9 * 12 + 4 * 25, 141.75 + 4 * 30]
    )
    aaa_pnl = 9 * (15 - 10) - 0.90 - 1.35  # 42.75
    bbb_open = 4 * (30 - 25) - 1.00  # 19.00
    rows = {(a.by, a.name): a.pnl for a in attribution(result)}
    assert rows == pytest.approx(
        {
            ("symbol", "AAA"): aaa_pnl,
            ("symbol", "BBB"): bbb_open,
            ("strategy", "trend"): aaa_pnl,
            ("strategy", "dip"): bbb_open,
        }
    )
    assert 200 + aaa_pnl + bbb_open == pytest.approx(261.75)
    assert result.equity[-1].equity == pytest.approx(261.75)
    assert result.exposure_bars == 2 + 2 and result.total_bars == 8  # AAA at bars 1-2, BBB 2-3

    write_attribution(tmp_path / "attribution.csv", attribution(result))
    with (tmp_path / "attribution.csv").open() as handle:
        written = {(r["by"], r["name"]): float(r["pnl"]) for r in csv.DictReader(handle)}
    assert sum(v for (by, _n), v in written.items() if by == "symbol") == pytest.approx(61.75)
    assert sum(v for (by, _n), v in written.items() if by == "strategy") == pytest.approx(61.75)


def test_shared_cash_closes_first_and_refuses_what_it_cannot_pay() -> None:
    aaa = make_bars([(10, 10)] * 4, "AAA")
    bbb = make_bars([(20, 20)] * 4, "BBB")
    signals = [
        make_signal(bbb[0], "buy"),  # bar 1: all the cash, 5 BBB at 20
        make_signal(aaa[1], "buy"),  # bar 2: paid by BBB's sale at the same open (closes first)
        make_signal(bbb[1], "sell"),
        make_signal(bbb[2], "buy"),  # bar 3: 5 units would cost 100, the free cash is 0
    ]
    model = ExecutionModel(cash=100, cash_mode=CashMode.SHARED, position_size=1.0)
    result = simulate([*aaa, *bbb], signals, model)
    assert [(o.symbol, o.intent, o.status, o.qty, o.reason) for o in result.orders] == [
        ("BBB", "open", "filled", 5, ""),
        ("AAA", "open", "filled", 10, ""),
        ("BBB", "close", "filled", 5, ""),
        ("BBB", "open", "refused", 0, "needs 100.00, 0.00 free cash"),
    ]
    assert result.equity[-1].equity == pytest.approx(100)


def test_shared_cash_reserves_the_value_of_a_short() -> None:
    aaa = make_bars([(10, 10)] * 3, "AAA")
    bbb = make_bars([(20, 20)] * 3, "BBB")
    signals = [make_signal(aaa[0], "sell"), make_signal(bbb[0], "buy")]
    model = ExecutionModel(
        cash=100, mode=Mode.REVERSE, cash_mode=CashMode.SHARED, position_size=1.0
    )
    result = simulate([*aaa, *bbb], signals, model)
    # Short 10 AAA at 10: the cash is 200, but 100 of it stands behind the short; equity 100.
    assert [(o.symbol, o.side.value, o.status, o.qty) for o in result.orders] == [
        ("AAA", "sell", "filled", 10),
        ("BBB", "buy", "refused", 0),
    ]
    assert result.orders[1].reason == "needs 100.00, 0.00 free cash"


@pytest.mark.parametrize("fill", list(FillAt))
@pytest.mark.parametrize("mode", list(Mode))
def test_shared_cash_with_one_symbol_is_the_sleeve(fill: FillAt, mode: Mode) -> None:
    bars = make_bars([(10, 11), (12, 9), (8, 13), (14, 12), (11, 16), (15, 15)])
    sides = ["buy", "sell", "buy", "buy", "sell", "buy"]
    signals = [make_signal(bar, side) for bar, side in zip(bars, sides, strict=True)]
    common = {"cash": 1000.0, "commission": 0.003, "fill": fill, "mode": mode}
    sleeve = simulate(bars, signals, ExecutionModel(**common))  # type: ignore[arg-type]
    shared = simulate(bars, signals, ExecutionModel(**common, cash_mode=CashMode.SHARED))  # type: ignore[arg-type]
    assert len(sleeve.trades) >= 2
    assert (shared.orders, shared.trades, shared.equity) == (
        sleeve.orders,
        sleeve.trades,
        sleeve.equity,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"position_size": 0.5}, "goes with --cash-mode shared"),
        ({"position_size": 0.0, "cash_mode": CashMode.SHARED}, r"\(0, 1\]"),
        ({"position_size": 1.5, "cash_mode": CashMode.SHARED}, r"\(0, 1\]"),
    ],
)
def test_bad_position_sizes_are_configuration_errors(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ExecutionModel(**kwargs)  # type: ignore[arg-type]
