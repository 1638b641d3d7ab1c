"""The example strategy whose entries carry a bracket of exits, loaded by dotted path."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from flinktrade.errors import ConfigError
from flinktrade.events import OrderClass, OrderSpec, OrderType, Side
from flinktrade.strategies import build

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))


def test_a_breakout_is_a_day_limit_entry_at_the_close_with_its_bracket(make_bar, run) -> None:
    strategy = build(
        "examples.bracket_strategy:BracketBreakout",
        {"lookback": 3, "stop_loss_pct": 1.5, "take_profit_pct": 3, "cooldown": 2},
    )
    closes = [10, "10.5", 10, "10.4", "10.6071", "10.7", "10.8", 11]
    intents = run(strategy, [make_bar(c, ts=i * 60_000) for i, c in enumerate(closes)])
    # bar 4: 10.6071 > max(10.5, 10, 10.4); bars 5 and 6 wait (cooldown 2); bar 7: 11 > 10.8
    assert [i for i, _ in intents] == [4, 7]
    first = intents[0][1]
    assert first.side is Side.BUY
    assert first.order == OrderSpec(
        type=OrderType.LIMIT,
        limit_price=Decimal("10.60"),  # the close, down to the cent
        stop_loss_pct=Decimal("1.5"),
        take_profit_pct=Decimal("3.0"),
    )
    assert first.order.order_class is OrderClass.BRACKET


def test_a_bad_exit_is_refused_when_the_strategy_is_built() -> None:
    with pytest.raises(
        ConfigError, match=r"stop_loss_pct must be between 0 and 100 \(percent\), got 0$"
    ):
        build("examples.bracket_strategy:BracketBreakout", {"stop_loss_pct": 0})
