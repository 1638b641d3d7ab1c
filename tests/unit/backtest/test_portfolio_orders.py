"""Signals with an order spec in the backtest: the matching model's fills, by hand."""

from __future__ import annotations

import csv
import re
from decimal import Decimal
from pathlib import Path

import pytest
from tests.unit.backtest.factories import DAY, T0, make_signal

from flinktrade import events
from flinktrade.backtest.engine import BacktestRequest
from flinktrade.backtest.inprocess import run_inprocess
from flinktrade.backtest.portfolio import CashMode, ExecutionModel, FillAt, Mode, simulate
from flinktrade.backtest.report import write_orders, write_trades
from flinktrade.errors import ConfigError
from flinktrade.events import OrderSpec
from flinktrade.orders import Leg, leg_client_order_id, with_exits
from flinktrade.pipeline.analytics import StrategySpec

Row = tuple[float, float, float, float]  # open, high, low, close


def bars(rows: list[Row], symbol: str = "AAA", volume: int = 1000) -> list[events.AnalyticsBar]:
    out = []
    for i, (o, h, lo, c) in enumerate(rows):
        out.append(
            events.AnalyticsBar(
                symbol=symbol,
                ts=T0 + i * DAY,
                open=Decimal(str(o)),
                high=Decimal(str(h)),
                low=Decimal(str(lo)),
                close=Decimal(str(c)),
                volume=volume,
                interval_ms=DAY,
            )
        )
    return out


def flat(price: float) -> Row:
    return (price, price, price, price)


def signal(
    bar: events.Bar, side: str, order: OrderSpec | None = None, strategy: str = "s"
) -> events.Signal:
    return make_signal(bar, side, strategy, order)


def test_take_profit_then_stop_loss_gapped_at_the_open() -> None:
    series = bars(
        [
            flat(10),
            (10, 10.5, 9.8, 10.2),  # entry at the open 10: TP 11.00, SL 9.50 not touched
            (10.4, 11.2, 10.3, 11),  # TP 11 touched
            flat(11),
            (12, 12.5, 11.9, 12.2),  # entry at 12: TP 13.20, SL 11.40
            (11, 11.2, 10.8, 11),  # opens below the stop: filled at the open, 11
        ]
    )
    spec = with_exits(take_profit_pct=10, stop_loss_pct=5)
    signals = [signal(series[0], "buy", spec), signal(series[3], "buy", spec)]
    result = simulate(series, signals, ExecutionModel(cash=1000))
    first, second = result.trades
    # 1000 // 10 = 100 units; out at 11.
    assert (first.size, first.entry_price, first.exit_price, first.exit_reason) == (
        100,
        10,
        11,
        "take_profit",
    )
    assert (first.entry_ts, first.exit_ts) == (T0 + DAY, T0 + 2 * DAY)
    assert first.pnl == pytest.approx(100)
    # 1100 // 12 = 91 units; out at the open 11.
    assert (second.size, second.entry_price, second.exit_price, second.exit_reason) == (
        91,
        12,
        11,
        "stop_loss",
    )
    assert second.pnl == pytest.approx(-91)
    assert result.equity[-1].equity == pytest.approx(1000 + 100 - 91)


def test_a_bar_touching_both_exits_takes_the_stop_loss() -> None:
    series = bars([flat(100), flat(100), (100, 105, 97, 103)])
    spec = with_exits(take_profit_pct=4, stop_loss_pct=2)
    result = simulate(series, [signal(series[0], "buy", spec)], ExecutionModel(cash=1000))
    [trade] = result.trades
    assert (trade.size, trade.exit_price, trade.exit_reason) == (10, 98, "stop_loss")
    assert trade.pnl == pytest.approx(-20)


def test_trailing_stop_exit_with_commission_and_slippage() -> None:
    series = bars([flat(100), (100, 120, 99, 118), (115, 116, 107, 110)])
    model = ExecutionModel(cash=1000, commission=0.001, slippage_bps=100)
    result = simulate(series, [signal(series[0], "buy", with_exits(trail_pct=10))], model)
    [trade] = result.trades
    # Entry at 100 + 1 % = 101: 1000 // (101 x 1.001) = 9 units, commission 9 x 101 x 0.001.
    # The mark starts at the fill, 101, then 120 after bar 1: stop 108, less 1 % = 106.92.
    assert (trade.size, trade.exit_reason) == (9, "trailing_stop")
    assert trade.entry_price == pytest.approx(101)
    assert trade.exit_price == pytest.approx(108 * 0.99)
    commission = 9 * 101 * 0.001 + 9 * 106.92 * 0.001
    assert trade.commission == pytest.approx(commission)
    assert trade.pnl == pytest.approx(9 * (106.92 - 101) - commission)


def test_a_signal_closes_the_position_and_cancels_its_exits(tmp_path: Path) -> None:
    series = bars([flat(10), flat(10), flat(10.5), flat(10.2)])
    spec = with_exits(take_profit_pct=10, stop_loss_pct=5)
    signals = [signal(series[0], "buy", spec), signal(series[1], "sell")]
    result = simulate(series, signals, ExecutionModel(cash=100))
    [trade] = result.trades
    assert (trade.size, trade.exit_price, trade.exit_reason) == (10, 10.5, "signal")
    entry = f"{signals[0].id}:open"
    tp, sl = leg_client_order_id(entry, Leg.TAKE_PROFIT), leg_client_order_id(entry, Leg.STOP_LOSS)
    rows = {o.id: o for o in result.orders}
    assert (rows[entry].status, rows[entry].order_class, rows[entry].leg) == (
        "filled",
        "bracket",
        "entry",
    )
    assert (rows[tp].status, rows[tp].type, rows[tp].limit_price, rows[tp].parent_id) == (
        "canceled",
        "limit",
        11.0,
        entry,
    )
    assert (rows[sl].status, rows[sl].type, rows[sl].stop_price) == ("canceled", "stop", 9.5)
    assert rows[sl].reason == "position closed by a signal"
    write_orders(tmp_path / "orders.csv", result.orders)
    write_trades(tmp_path / "trades.csv", result.trades)
    table = list(csv.DictReader((tmp_path / "orders.csv").open()))
    assert [(r["intent"], r["leg"], r["status"]) for r in table] == [
        ("open", "entry", "filled"),
        ("exit", "stop_loss", "canceled"),
        ("exit", "take_profit", "canceled"),
        ("close", "", "filled"),
    ]
    [written] = list(csv.DictReader((tmp_path / "trades.csv").open()))
    assert written["exit_reason"] == "signal" and written["qty"] == "10"


def test_an_invalid_spec_is_refused_with_its_reason() -> None:
    series = bars([flat(10), flat(10)])
    bad = OrderSpec(type="limit")
    result = simulate(series, [signal(series[0], "buy", bad)], ExecutionModel(cash=100))
    [order] = result.orders
    assert (order.status, order.reason, order.type) == (
        "refused",
        "a limit order needs limit_price",
        "limit",
    )
    assert result.trades == []


def test_a_limit_entry_waits_for_its_price_and_a_position_open_at_the_end_says_end() -> None:
    series = bars([flat(10), (10, 10.2, 9.9, 10), (9.8, 9.9, 9.4, 9.6), flat(9.7)])
    spec = OrderSpec(type="limit", limit_price=Decimal("9.5"), time_in_force="gtc")
    result = simulate(series, [signal(series[0], "buy", spec)], ExecutionModel(cash=100))
    [trade] = result.trades
    # 100 // 9.5 = 10 units at the limit 9.5, in bar 2; still open at the end.
    assert (trade.size, trade.entry_price, trade.entry_ts) == (10, 9.5, T0 + 2 * DAY)
    assert (trade.exit_ts, trade.exit_reason) == (None, "end")
    assert result.equity[-1].equity == pytest.approx(100 - 95 + 10 * 9.7)


def test_fill_at_close_matches_a_market_entry_at_the_signal_close() -> None:
    series = bars([flat(10), (10, 10.5, 9, 9.2), flat(9.2)])
    spec = with_exits(stop_loss_pct=5)
    model = ExecutionModel(cash=100, fill=FillAt.CLOSE)
    result = simulate(series, [signal(series[0], "buy", spec)], model)
    [trade] = result.trades
    # Entry at bar 0's close 10 (10 units), stop 9.50 met by bar 1's low 9.
    assert (trade.entry_ts, trade.entry_price, trade.exit_price, trade.exit_reason) == (
        T0,
        10,
        9.5,
        "stop_loss",
    )


def test_a_signal_on_the_side_held_is_skipped_and_keeps_the_exits() -> None:
    series = bars([flat(10), flat(10), flat(10.5), (10.5, 11.2, 10.4, 11)])
    spec = with_exits(take_profit_pct=10, stop_loss_pct=5)
    signals = [signal(series[0], "buy", spec), signal(series[1], "buy", strategy="t")]
    result = simulate(series, signals, ExecutionModel(cash=100))
    [trade] = result.trades
    assert (trade.size, trade.exit_price, trade.exit_reason) == (10, 11, "take_profit")
    skipped = [o for o in result.orders if o.signal_id == signals[1].id]
    assert [(o.status, o.reason) for o in skipped] == [("skipped", "already in position")]


@pytest.mark.parametrize("cash_mode", ["sleeves", "shared"])
def test_oco_exit_of_an_open_position(cash_mode: str) -> None:
    series = bars([flat(10), flat(10), flat(10), (10, 10.4, 9.9, 10.3)])
    oco = OrderSpec(
        type="limit",
        limit_price=Decimal("10.30"),
        take_profit_price=Decimal("10.30"),
        stop_loss_price=Decimal("9.50"),
        oco=True,
        time_in_force="gtc",
    )
    signals = [signal(series[0], "buy"), signal(series[1], "sell", oco)]
    model = ExecutionModel(cash=100, mode=Mode.REVERSE, cash_mode=CashMode(cash_mode))
    result = simulate(series, signals, model)
    [trade] = result.trades  # the oco exits, it does not reverse
    assert (trade.size, trade.exit_price, trade.exit_reason) == (10, 10.3, "take_profit")
    assert trade.exit_ts == T0 + 3 * DAY


def test_sma_cross_with_exits_in_a_backtest() -> None:
    """sma_cross(2, 3) on closes chosen so the averages cross up at bars 4 and 10; the exits are
    computed from the fills by hand."""
    rows = [flat(10), flat(9), flat(8), flat(9), flat(11)]
    rows += [(11, 11.5, 10.8, 11.4)]  # bar 5: entry at 11, 90 units; TP 12.10, SL 10.45
    rows += [(11.5, 12.3, 11.4, 12)]  # bar 6: TP 12.10 touched
    rows += [flat(12), flat(10), flat(13), flat(14)]  # crosses down at 8, up at 10
    rows += [(14, 14.2, 13.9, 14)]  # bar 11: entry at 14, 1099 // 14 = 78 units; SL 13.30
    rows += [(13.5, 13.6, 13.0, 13.2)]  # bar 12: SL touched
    series = [
        events.Bar(
            symbol=b.symbol,
            ts=b.ts,
            open=b.open,
            high=b.high,
            low=b.low,
            close=b.close,
            volume=b.volume,
            interval_ms=DAY,
        )
        for b in bars(rows)
    ]
    params = {"fast": 2, "slow": 3, "take_profit_pct": 10, "stop_loss_pct": 5}
    request = BacktestRequest((StrategySpec("sma_cross", params),), ExecutionModel(cash=1000))
    result = run_inprocess(request, series)
    assert [(s.bar_ts, s.side.value) for s in result.signals] == [
        (T0 + 4 * DAY, "buy"),
        (T0 + 8 * DAY, "sell"),
        (T0 + 10 * DAY, "buy"),
        (T0 + 12 * DAY, "sell"),
    ]
    trades = result.simulation.trades
    assert [(t.size, t.entry_price, t.exit_price, t.exit_reason) for t in trades] == [
        (90, 11, pytest.approx(12.1), "take_profit"),
        (78, 14, pytest.approx(13.3), "stop_loss"),
    ]
    assert [t.exit_ts for t in trades] == [T0 + 6 * DAY, T0 + 12 * DAY]
    assert result.metrics["equity_final"] == pytest.approx(1000 + 90 * 1.1 - 78 * 0.7)


def test_an_entry_larger_than_the_volume_share_fills_over_several_bars() -> None:
    series = bars([flat(10), flat(10), flat(9), flat(9), flat(9.5)], volume=2000)
    model = ExecutionModel(cash=1000, volume_share=0.02)  # 40 shares a bar
    spec = OrderSpec(time_in_force="gtc")  # a market order, but not the plain one
    result = simulate(series, [signal(series[0], "buy", spec)], model)
    [trade] = result.trades
    # Sized at the first fill, 10: 100 units; 40 at 10, 40 at 9, 20 at 9.
    assert (trade.size, trade.entry_ts, trade.exit_reason) == (100, T0 + DAY, "end")
    assert trade.entry_price == pytest.approx((400 + 360 + 180) / 100)
    [order] = result.orders
    assert (order.status, order.qty, order.fill_ts) == ("filled", 100, T0 + DAY)
    assert [round(p.equity, 6) for p in result.equity] == [1000, 1000, 960, 960, 1010]


def test_an_invalid_oco_is_refused_and_the_position_stays() -> None:
    series = bars([flat(10), flat(10), flat(10)])
    oco = OrderSpec(take_profit_price=Decimal(11), stop_loss_price=Decimal(9), oco=True)
    signals = [signal(series[0], "buy"), signal(series[1], "sell", oco)]
    result = simulate(series, signals, ExecutionModel(cash=100))
    refused = [o for o in result.orders if o.signal_id == signals[1].id]
    assert [(o.status, o.intent, o.reason) for o in refused] == [
        (
            "refused",
            "close",
            "an oco order is of type limit with limit_price equal to take_profit_price",
        )
    ]
    assert [t.exit_reason for t in result.trades] == ["end"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"commission_min": -1}, "--commission-min must be >= 0"),
        ({"volume_share": 0}, "--volume-share is a fraction in (0, 1]"),
        ({"volume_share": 1.5}, "--volume-share is a fraction in (0, 1]"),
    ],
)
def test_the_new_execution_settings_are_checked(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ExecutionModel(**fields)  # type: ignore[arg-type]


def _minute_bars(rows: list[Row], start: int) -> list[events.AnalyticsBar]:
    return [
        events.AnalyticsBar(
            symbol="AAA", ts=start + i * 60_000, open=Decimal(str(o)), high=Decimal(str(h)),
            low=Decimal(str(lo)), close=Decimal(str(c)), volume=1000, interval_ms=60_000,
        )
        for i, (o, h, lo, c) in enumerate(rows)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("follow", "extended", "entry_bar"),
    [(True, False, 2), (True, True, 1), (False, False, 1)],
)
def test_following_sessions_a_regular_order_meets_no_pre_market_bar(
    follow: bool, extended: bool, entry_bar: int
) -> None:
    """``--market-hours`` other than ``all`` (``follow_sessions``): a limit order without
    extended hours, placed in the pre-market, first meets the 09:30 bar."""
    start = 1_704_205_680_000  # 2024-01-02 09:28 EST (pre-market)
    series = _minute_bars([flat(100), (100, 100, 98, 99), (100, 100, 98.5, 99.5), flat(100)], start)
    spec = OrderSpec(type="limit", limit_price=Decimal(99), extended_hours=extended)
    model = ExecutionModel(cash=1000, follow_sessions=follow)
    result = simulate(series, [signal(series[0], "buy", spec)], model)
    (trade,) = result.trades
    assert (trade.entry_ts, trade.entry_price) == (start + entry_bar * 60_000, 99)
