"""The documented example user strategy, loaded by dotted path as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from flinktrade.events import Side
from flinktrade.strategies import build

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def momentum(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    return build(
        "examples.momentum_strategy:Momentum",
        {"lookback": 3, "threshold_pct": 2.0, "trend": 5, "name": "momentum_3"},
    )


def test_example_loads_by_dotted_path_with_its_parameters(momentum) -> None:
    assert momentum.name == "momentum_3"
    assert momentum.indicators() == {"sma_5"}


def test_example_buys_on_a_strong_rise_above_trend_and_sells_when_it_fades(
    momentum, make_bar, run
) -> None:
    # close, sma_5; lookback 3 compares each close with the close 3 bars earlier
    series = [
        (100, None),
        (100, None),
        (101, 100.0),
        (101.5, 100.5),  # +1.5% vs 100: below the 2% threshold
        (102.5, 101.0),  # +2.5% vs 100, above SMA: buy, strength 2.5 / 6
        (104, 102.0),  # still rising: no repeat
        (103, 102.5),  # +1.5% vs 101.5: nothing
        (102, 102.6),  # -0.49% vs 102.5: sell
        (101, 102.0),  # still falling: no repeat
    ]
    bars = [make_bar(c, {"sma_5": s}, ts=i * 60_000) for i, (c, s) in enumerate(series)]
    got = run(momentum, bars)
    assert [(i, x.side, x.reason) for i, x in got] == [
        (4, Side.BUY, "up 2.5% in 3 bars, above SMA5"),
        (7, Side.SELL, "momentum faded: -0.5% in 3 bars"),
    ]
    assert got[0][1].strength == pytest.approx(2.5 / 6)


def test_example_does_not_buy_below_the_trend(momentum, make_bar, run) -> None:
    series = [(100, 110.0), (100, 110.0), (101, 110.0), (105, 110.0), (106, 110.0)]
    assert run(momentum, [make_bar(c, {"sma_5": s}) for c, s in series]) == []
