from decimal import Decimal

import pytest

from flinktrade.errors import ConfigError
from flinktrade.events import Side
from flinktrade.strategies import BarView, SmaCross, build


def bar(fast: float | None, slow: float | None, ts: int = 0) -> BarView:
    return BarView(
        symbol="AAPL",
        ts=ts,
        end_ts=ts + 60_000,
        open=Decimal(1),
        high=Decimal(1),
        low=Decimal(1),
        close=Decimal(1),
        volume=1,
        vwap=1.0,
        indicators={"sma_2": fast, "sma_3": slow},
    )


def run(strategy: SmaCross, pairs: list[tuple[float | None, float | None]]) -> list[str]:
    state = strategy.initial_state()
    sides = []
    for i, (f, s) in enumerate(pairs):
        intents, state = strategy.on_bar(bar(f, s, i * 60_000), state)
        sides += [i.side.value for i in intents]
    return sides


def test_signals_only_on_sign_changes_after_both_are_defined() -> None:
    s = SmaCross(fast=2, slow=3)
    pairs = [(None, None), (1.0, None), (1.0, 2.0), (1.5, 2.0), (2.5, 2.0), (3.0, 2.0), (1.0, 2.0)]
    assert run(s, pairs) == ["buy", "sell"]


def test_first_defined_bar_does_not_trade_even_if_fast_is_above() -> None:
    assert run(SmaCross(2, 3), [(5.0, 1.0), (6.0, 1.0)]) == []


def test_equal_averages_keep_the_previous_side() -> None:
    assert run(SmaCross(2, 3), [(1.0, 2.0), (2.0, 2.0), (1.0, 2.0), (3.0, 2.0)]) == ["buy"]


def test_strategy_is_pure_same_input_same_output() -> None:
    s = SmaCross(2, 3)
    state = {"sign": -1}
    first = s.on_bar(bar(3.0, 2.0), state)
    second = s.on_bar(bar(3.0, 2.0), state)
    assert first == second
    assert state == {"sign": -1}
    assert first[0][0].side is Side.BUY


def test_bad_parameters_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="fast < slow"):
        build("sma_cross", {"fast": 50, "slow": 20})
    with pytest.raises(ConfigError, match="unknown strategy"):
        build("nope", {})
