"""The job's per-symbol logic, called directly: alerts, sentiment features, strategy failures."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from flinktrade.config import AnalyticsSettings
from flinktrade.errors import ConfigError
from flinktrade.events import Alert, AnalyticsBar, Severity, Side, Signal
from flinktrade.pipeline.analytics import ClosedBar, ScoredNews, StrategySpec, SymbolModel
from flinktrade.strategies import BarView, Intent, State

T0 = 1_704_205_800_000
MINUTE = 60_000


def bar(i: int, close: str, open_: str | None = None, volume: int = 1_000) -> ClosedBar:
    c = Decimal(close)
    o = Decimal(open_) if open_ is not None else c
    return ClosedBar("AAA", T0 + i * MINUTE, o, max(o, c), min(o, c), c, volume, float(c), 10)


def feed(model: SymbolModel, state: dict[str, Any], bars: list[ClosedBar]) -> list[Any]:
    out: list[Any] = []
    for b in bars:
        out.extend(model.on_bar(state, b))
    return out


def alerts(out: list[Any], kind: str) -> list[Alert]:
    return [e for e in out if isinstance(e, Alert) and e.kind == kind]


def test_every_bar_yields_an_analytics_bar_with_the_default_indicators() -> None:
    model = SymbolModel([], AnalyticsSettings())
    state = model.initial_state()
    out = feed(model, state, [bar(i, "100") for i in range(3)])
    got = [e for e in out if isinstance(e, AnalyticsBar)]
    assert [b.ts for b in got] == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert {"sma_20", "rsi_14", "macd_12_26_9", "sentiment", "sentiment_avg"} <= set(
        got[0].indicators
    )
    assert got[0].indicators["sma_20"] is None  # warm-up


def test_price_gap_alert_when_the_open_is_far_from_the_last_close() -> None:
    model = SymbolModel([], AnalyticsSettings(gap_pct=1.0))
    state = model.initial_state()
    out = feed(model, state, [bar(0, "100"), bar(1, "100.5", "100.9"), bar(2, "99", "98.5")])
    gaps = alerts(out, "price_gap")
    assert [(a.ts, a.severity) for a in gaps] == [(T0 + 3 * MINUTE, Severity.WARNING)]
    assert gaps[0].value == pytest.approx((98.5 - 100.5) / 100.5 * 100)
    assert gaps[0].threshold == -1.0


def test_price_jump_is_a_return_z_score_against_the_window() -> None:
    settings = AnalyticsSettings(price_jump_window=4, price_jump_z=3.0)
    model = SymbolModel([], settings)
    state = model.initial_state()
    closes = ["100", "101", "100", "101", "100", "108"]
    out = feed(model, state, [bar(i, c) for i, c in enumerate(closes)])
    jumps = alerts(out, "price_jump")
    returns = [math.log(101 / 100), math.log(100 / 101)] * 2
    mean = sum(returns) / 4
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / 4)
    z = (math.log(108 / 100) - mean) / std
    assert len(jumps) == 1 and jumps[0].ts == T0 + 6 * MINUTE
    assert jumps[0].value == pytest.approx(z)
    assert jumps[0].severity is Severity.CRITICAL  # z is far beyond 1.5 x 3


def test_volume_spike_against_the_previous_bars() -> None:
    model = SymbolModel([], AnalyticsSettings(volume_spike_window=5, volume_spike_z=3.0))
    state = model.initial_state()
    volumes = [100, 110, 90, 105, 95, 400]
    out = feed(model, state, [bar(i, "100", volume=v) for i, v in enumerate(volumes)])
    spikes = alerts(out, "volume_spike")
    previous = volumes[:5]
    mean = sum(previous) / 5
    std = math.sqrt(sum((v - mean) ** 2 for v in previous) / 5)
    assert len(spikes) == 1 and spikes[0].ts == T0 + 6 * MINUTE
    assert spikes[0].value == pytest.approx((400 - mean) / std)


def test_news_shock_and_decayed_average_sentiment() -> None:
    settings = AnalyticsSettings(news_shock=0.6, sentiment_half_life_ms=MINUTE)
    model = SymbolModel([], settings)
    state = model.initial_state()
    assert model.on_news(state, ScoredNews("n1", "AAA", T0, 0.2, "calm")) == []
    shock = model.on_news(state, ScoredNews("n2", "AAA", T0 + MINUTE, -0.8, "fraud probe"))
    assert [(a.kind, a.severity, a.value) for a in shock] == [
        ("news_shock", Severity.WARNING, -0.8)
    ]
    # One half-life between the stories: weights 0.5 and 1.
    (analytics,) = feed(model, state, [bar(1, "100")])
    assert analytics.indicators["sentiment"] == -0.8
    assert analytics.indicators["sentiment_avg"] == pytest.approx((0.5 * 0.2 - 0.8) / 1.5)


def test_sentiment_expires_after_its_window() -> None:
    model = SymbolModel([], AnalyticsSettings(sentiment_window_ms=2 * MINUTE))
    state = model.initial_state()
    model.on_news(state, ScoredNews("n1", "AAA", T0, 0.3, "fine"))
    assert model.sentiment_at(state, T0 + 2 * MINUTE) == (0.3, 0.3)
    assert model.sentiment_at(state, T0 + 2 * MINUTE + 1) == (None, None)


def test_stale_feed_is_raised_once_until_the_next_bar() -> None:
    model = SymbolModel([], AnalyticsSettings(stale_after_ms=3 * MINUTE))
    state = model.initial_state()
    feed(model, state, [bar(0, "100")])
    assert model.check_stale(state, "AAA", T0 + 3 * MINUTE) == []
    (alert,) = model.check_stale(state, "AAA", T0 + 4 * MINUTE)
    assert (alert.kind, alert.ts) == ("stale_feed", T0 + 4 * MINUTE)
    assert model.check_stale(state, "AAA", T0 + 9 * MINUTE) == []
    feed(model, state, [bar(10, "100")])
    assert len(model.check_stale(state, "AAA", T0 + 14 * MINUTE)) == 1


class Boom:
    name = "boom"

    def indicators(self) -> set[str]:
        return set()

    def initial_state(self) -> State:
        return {"n": 0}

    def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]:
        if state["n"] == 1:
            raise ZeroDivisionError("bad math")
        return [Intent(Side.BUY, 0.5, "first bar")], {"n": state["n"] + 1}


def test_a_failing_strategy_is_disabled_for_the_symbol_with_an_alert() -> None:
    model = SymbolModel([StrategySpec(f"{__name__}:Boom", {})], AnalyticsSettings(alerts=False))
    state = model.initial_state()
    out = feed(model, state, [bar(i, "100") for i in range(4)])
    signals = [e for e in out if isinstance(e, Signal)]
    assert [(s.strategy, s.side, s.bar_ts) for s in signals] == [("boom", Side.BUY, T0)]
    errors = alerts(out, "strategy_error")
    assert len(errors) == 1 and "ZeroDivisionError: bad math" in errors[0].message
    assert errors[0].severity is Severity.CRITICAL
    assert state["strategies"]["boom"]["disabled"].startswith("ZeroDivisionError")


def test_two_strategies_with_one_name_are_refused() -> None:
    specs = [StrategySpec("sma_cross", {}), StrategySpec("sma_cross", {"fast": 5, "slow": 9})]
    with pytest.raises(ConfigError, match="distinct 'name'"):
        SymbolModel(specs, AnalyticsSettings())
