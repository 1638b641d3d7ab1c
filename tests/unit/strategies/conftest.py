"""Strategy unit tests: a factory of hand-built bars."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal

import pytest

from flinktrade.strategies import BarView, Intent, State, Strategy

MakeBar = Callable[..., BarView]


def _make_bar(
    close: float | str = 100,
    indicators: Mapping[str, float | None] | None = None,
    sentiment: float | None = None,
    ts: int = 0,
    symbol: str = "AAPL",
) -> BarView:
    price = Decimal(str(close))
    return BarView(
        symbol=symbol,
        ts=ts,
        end_ts=ts + 60_000,
        open=price,
        high=price,
        low=price,
        close=price,
        volume=1_000,
        vwap=float(price),
        indicators=dict(indicators or {}),
        sentiment=sentiment,
    )


@pytest.fixture
def make_bar() -> MakeBar:
    return _make_bar


def play(strategy: Strategy, bars: list[BarView]) -> list[tuple[int, Intent]]:
    """Feed ``bars`` in order; return (bar index, intent) for every intent, checking purity."""
    state: State = strategy.initial_state()
    out: list[tuple[int, Intent]] = []
    for i, bar in enumerate(bars):
        before = json.dumps(state, sort_keys=True)
        intents, new_state = strategy.on_bar(bar, state)
        assert json.dumps(state, sort_keys=True) == before, "on_bar mutated its input state"
        assert len(intents) <= 1, "at most one intent per bar"
        state = json.loads(json.dumps(new_state))  # the job stores it as JSON
        out += [(i, intent) for intent in intents]
    return out


@pytest.fixture
def run() -> Callable[[Strategy, list[BarView]], list[tuple[int, Intent]]]:
    return play
