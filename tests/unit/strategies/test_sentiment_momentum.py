from __future__ import annotations

import pytest

from flinktrade.errors import ConfigError
from flinktrade.events import Side
from flinktrade.strategies import SentimentMomentum, build


def bar(make_bar, close, ema, hist, sentiment):
    return make_bar(close, {"ema_20": ema, "macd_hist_12_26_9": hist}, sentiment)


def test_buy_needs_momentum_and_positive_news_then_exits_when_momentum_turns(make_bar, run) -> None:
    bars = [
        bar(make_bar, 101, None, None, 0.9),  # warming up
        bar(make_bar, 101, 100, 0.2, None),  # momentum, no news: nothing
        bar(make_bar, 101, 100, 0.2, 0.1),  # momentum, lukewarm news: nothing
        bar(make_bar, 101, 100, -0.1, 0.8),  # good news, histogram negative: nothing
        bar(make_bar, 102, 100, 0.3, 0.5),  # both: buy, strength 0.5
        bar(make_bar, 103, 100, 0.4, 0.6),  # still both: no repeat
        bar(make_bar, 99, 100, 0.1, 0.6),  # close below EMA: sell (exit)
        bar(make_bar, 98, 100, -0.2, 0.6),  # still down: no repeat
    ]
    got = run(SentimentMomentum(), bars)
    assert [(i, x.side, x.strength, x.reason) for i, x in got] == [
        (4, Side.BUY, 0.5, "close above EMA20, MACD histogram > 0, sentiment +0.50"),
        (6, Side.SELL, 1.0, "momentum turned down: close below EMA20 (sentiment +0.60)"),
    ]


def test_strongly_negative_news_sells_even_without_a_position(make_bar, run) -> None:
    bars = [
        bar(make_bar, 101, 100, 0.2, -0.1),
        bar(make_bar, 101, 100, 0.2, -0.7),  # sell on news
        bar(make_bar, 101, 100, 0.2, -0.9),  # no repeat
        bar(make_bar, 102, 100, 0.2, 0.4),  # buy again
    ]
    got = run(SentimentMomentum(threshold=0.3), bars)
    assert [(i, x.side, x.strength) for i, x in got] == [(1, Side.SELL, 0.7), (3, Side.BUY, 0.4)]
    assert got[0][1].reason == "news sentiment -0.70 <= -0.3"


def test_a_down_bar_without_a_position_is_not_a_sell(make_bar, run) -> None:
    bars = [bar(make_bar, 99, 100, -0.2, 0.0), bar(make_bar, 98, 100, -0.3, None)]
    assert run(SentimentMomentum(), bars) == []


def test_parameters_choose_the_columns() -> None:
    strategy = SentimentMomentum(period=50, fast=5, slow=35, signal=5)
    assert strategy.indicators() == {"ema_50", "macd_hist_5_35_5", "sentiment_avg"}


@pytest.mark.parametrize(
    "params", [{"threshold": 0}, {"threshold": 1.5}, {"fast": 30, "slow": 26}, {"period": 1}]
)
def test_bad_parameters(params) -> None:
    with pytest.raises(ConfigError, match="sentiment_momentum"):
        build("sentiment_momentum", params)
