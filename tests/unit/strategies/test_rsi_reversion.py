from __future__ import annotations

import pytest

from flinktrade.errors import ConfigError
from flinktrade.events import Side
from flinktrade.strategies import RsiReversion, build


def test_buys_on_the_cross_up_through_low_and_sells_on_the_cross_down_through_high(
    make_bar, run
) -> None:
    rsis = [None, 45.0, 28.0, 25.0, 29.9, 30.0, 35.0, 65.0, 72.0, 71.0, 70.0, 60.0]
    bars = [make_bar(indicators={"rsi_14": r}) for r in rsis]
    got = run(RsiReversion(), bars)
    assert [(i, x.side, x.reason) for i, x in got] == [
        (5, Side.BUY, "RSI14 crossed above 30"),
        (10, Side.SELL, "RSI14 crossed below 70"),
    ]


def test_no_repeated_side_when_rsi_oscillates_around_a_threshold(make_bar, run) -> None:
    rsis = [25.0, 31.0, 29.0, 32.0, 28.0, 33.0, 75.0, 69.0, 71.0, 65.0]
    got = run(RsiReversion(), [make_bar(indicators={"rsi_14": r}) for r in rsis])
    assert [(i, x.side) for i, x in got] == [(1, Side.BUY), (7, Side.SELL)]


def test_first_rsi_never_trades_and_parameters_choose_the_column(make_bar, run) -> None:
    strategy = RsiReversion(period=7, low=20, high=80)
    assert strategy.indicators() == {"rsi_7"}
    rsis = [25.0, 19.0, 21.0, 79.0, 81.0, 79.5]
    got = run(strategy, [make_bar(indicators={"rsi_7": r, "rsi_14": 50.0}) for r in rsis])
    assert [(i, x.side, x.reason) for i, x in got] == [
        (2, Side.BUY, "RSI7 crossed above 20"),
        (5, Side.SELL, "RSI7 crossed below 80"),
    ]


def test_a_gap_in_the_indicator_keeps_the_previous_value(make_bar, run) -> None:
    rsis = [25.0, None, 35.0]
    got = run(RsiReversion(), [make_bar(indicators={"rsi_14": r}) for r in rsis])
    assert [(i, x.side) for i, x in got] == [(2, Side.BUY)]


@pytest.mark.parametrize(
    "params", [{"low": 70, "high": 30}, {"period": 1}, {"low": 0}, {"high": 100}]
)
def test_bad_parameters(params) -> None:
    with pytest.raises(ConfigError, match="rsi_reversion"):
        build("rsi_reversion", params)
