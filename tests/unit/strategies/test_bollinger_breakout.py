from __future__ import annotations

import pytest

from flinktrade.errors import ConfigError
from flinktrade.events import Side
from flinktrade.strategies import BollingerBreakout, build


def bands(make_bar, close, upper, lower, k="2"):
    return make_bar(close, {f"bb_upper_20_{k}": upper, f"bb_lower_20_{k}": lower})


def test_buys_on_the_close_crossing_above_the_upper_band_and_sells_below_the_lower(
    make_bar, run
) -> None:
    bars = [
        bands(make_bar, 100, None, None),
        bands(make_bar, 100, 102, 98),  # inside: sets the zone
        bands(make_bar, 102, 102, 98),  # touching is not crossing
        bands(make_bar, 102.5, 102, 98),  # above: buy
        bands(make_bar, 103, 102.5, 98),  # still above: nothing
        bands(make_bar, 100, 102.5, 98),  # back inside
        bands(make_bar, 97.5, 102, 98),  # below: sell
        bands(make_bar, 97, 102, 97.5),  # still below
    ]
    got = run(BollingerBreakout(), bars)
    assert [(i, x.side, x.reason) for i, x in got] == [
        (3, Side.BUY, "close crossed above the upper Bollinger band (20, 2)"),
        (6, Side.SELL, "close crossed below the lower Bollinger band (20, 2)"),
    ]


def test_first_bar_outside_the_bands_does_not_trade_and_sides_do_not_repeat(make_bar, run) -> None:
    bars = [
        bands(make_bar, 105, 102, 98),  # first: zone only
        bands(make_bar, 100, 102, 98),
        bands(make_bar, 103, 102, 98),  # buy
        bands(make_bar, 100, 102, 98),
        bands(make_bar, 103, 102, 98),  # above again: no second buy
        bands(make_bar, 97, 102, 98),  # sell
    ]
    got = run(BollingerBreakout(), bars)
    assert [(i, x.side) for i, x in got] == [(2, Side.BUY), (5, Side.SELL)]


def test_fractional_k_reads_the_matching_columns(make_bar, run) -> None:
    strategy = BollingerBreakout(period=20, k=2.5)
    assert strategy.indicators() == {"bb_upper_20_2_5", "bb_lower_20_2_5"}
    bars = [bands(make_bar, 100, 102, 98, "2_5"), bands(make_bar, 103, 102, 98, "2_5")]
    assert [i for i, _ in run(strategy, bars)] == [1]


@pytest.mark.parametrize("params", [{"period": 1}, {"k": 0}, {"k": 1e-9}, {"k": "x"}])
def test_bad_parameters(params) -> None:
    with pytest.raises(ConfigError, match="bollinger_breakout"):
        build("bollinger_breakout", params)
