"""The job's per-symbol logic, called directly: alerts, sentiment features, strategy failures,
and its fast paths pinned to what they stand for (validated models, exact alert thresholds)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import pickle
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from flinktrade import events
from flinktrade.config import AnalyticsSettings
from flinktrade.errors import ConfigError
from flinktrade.events import Alert, AnalyticsBar, Severity, Side, Signal
from flinktrade.pipeline.analytics import (
    ClosedBar,
    ScoredNews,
    StrategySpec,
    SymbolModel,
    closed_bar,
)
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


# -- the fast paths are the slow paths' results ------------------------------------------------


def test_the_analytics_bar_is_the_validated_model_with_the_same_bytes() -> None:
    model = SymbolModel([], AnalyticsSettings(alerts=False))
    state = model.initial_state()
    model.on_news(state, ScoredNews("n1", "AAA", T0, -0.25, "meh"))
    out = feed(model, state, [bar(i, str(100 + i % 7), str(100 + i % 5)) for i in range(40)])
    assert len(out) == 40 and out[-1].indicators["macd_hist_12_26_9"] is not None
    for made in out:
        assert isinstance(made, AnalyticsBar)
        fields = {**made.model_dump(), "indicators": dict(made.indicators)}
        as_on_bar_built_it = AnalyticsBar(**{k: v for k, v in fields.items() if k != "ingest_ts"})
        assert made.model_fields_set == as_on_bar_built_it.model_fields_set
        validated = AnalyticsBar(**fields)
        assert made == validated
        assert events.encode(made) == events.encode(validated)
        assert made.model_dump() == validated.model_dump()


def test_the_bar_rules_alerts_are_the_validated_model_with_the_same_bytes() -> None:
    """``SymbolModel._alert`` assembles the price gap, price jump and volume spike alerts without
    pydantic's validation: each is the model a keyword construction validates, with the same
    fields set, the same types (``kind`` a plain str, ``severity`` the enum) and the same bytes."""
    settings = AnalyticsSettings(gap_pct=1.0, price_jump_window=4, price_jump_z=2.0,
                                 volume_spike_window=5, volume_spike_z=2.0)  # fmt: skip
    model = SymbolModel([], settings)
    state = model.initial_state()
    closes = ["100", "101", "100", "101", "100", "108", "107", "107.5", "108", "95"]
    volumes = [1_000, 1_100, 900, 1_000, 1_050, 950, 1_000, 40_000, 1_000, 1_000]
    bars = [bar(i, c, volume=v) for i, (c, v) in enumerate(zip(closes, volumes, strict=True))]
    made = [e for e in feed(model, state, bars) if isinstance(e, Alert)]
    assert {a.kind for a in made} == {"price_gap", "price_jump", "volume_spike"}
    for alert in made:
        fields = alert.model_dump()
        validated = Alert(**fields)
        assert alert == validated
        assert events.encode(alert) == events.encode(validated)
        keywords = {k: v for k, v in fields.items() if k != "ingest_ts"}
        assert alert.model_fields_set == Alert(**keywords).model_fields_set
        assert {k: type(v) for k, v in alert.__dict__.items()} == {
            k: type(v) for k, v in validated.__dict__.items()
        }


def test_a_bar_rule_alert_of_unusual_values_is_validated_as_before() -> None:
    odd = ClosedBar("AAA", T0, Decimal(1), Decimal(1), Decimal(1), Decimal(1), 5, None, 1)
    made = SymbolModel._alert(events.AlertKind.PRICE_GAP, odd, True, "m", 3, 2)  # ints
    assert (made.value, made.threshold, made.severity) == (3.0, 2.0, Severity.CRITICAL)
    assert type(made.value) is float and type(made.threshold) is float
    with pytest.raises(ValidationError):
        SymbolModel._alert(events.AlertKind.PRICE_GAP, odd, False, 7, 1.0, 1.0)  # type: ignore[arg-type]


def test_an_analytics_bar_from_unusual_values_is_validated_as_before() -> None:
    model = SymbolModel([], AnalyticsSettings(alerts=False))
    odd = ClosedBar("AAA", T0, Decimal(1), Decimal(1), Decimal(1), Decimal(1), 5, 1, 1)  # int vwap
    (made,) = model.on_bar(model.initial_state(), odd)
    assert isinstance(made, AnalyticsBar) and made.vwap == 1.0 and type(made.vwap) is float
    too_long = ClosedBar("A" * 17, T0, Decimal(1), Decimal(1), Decimal(1), Decimal(1), 5, None, 1)
    with pytest.raises(ValidationError):
        model.on_bar(model.initial_state(), too_long)


def test_closed_bar_is_the_dataclass_its_constructor_builds() -> None:
    fields = ("AAA", T0, Decimal("1.5"), Decimal("2"), Decimal("1"), Decimal("1.75"), 7, None, 3)
    built = closed_bar(*fields, 30_000)
    made = ClosedBar(*fields, interval_ms=30_000)
    assert built == made
    assert vars(built) == vars(made)  # the same fields, in the same order
    assert built.end_ts == T0 + 30_000
    assert pickle.loads(pickle.dumps(built)) == made
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.ts = 0  # type: ignore[misc]


def test_the_bar_view_equals_the_dataclass_built_by_its_constructor() -> None:
    seen: list[BarView] = []

    class Spy:
        name = "spy"

        def indicators(self) -> set[str]:
            return {"sma_20"}

        def initial_state(self) -> State:
            return {}

        def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]:
            seen.append(bar)
            return [], state

    model = SymbolModel([], AnalyticsSettings(alerts=False))
    model._runs = [("spy", Spy(), frozenset(), ("sma_20",))]
    state = model.initial_state()
    model.on_news(state, ScoredNews("n1", "AAA", T0, 0.4, "good"))
    (analytics,) = model.on_bar(state, bar(0, "101.5", "100"))
    (view,) = seen
    assert view == BarView(
        symbol="AAA",
        ts=T0,
        end_ts=T0 + MINUTE,
        open=Decimal("100"),
        high=Decimal("101.5"),
        low=Decimal("100"),
        close=Decimal("101.5"),
        volume=1_000,
        vwap=101.5,
        indicators=analytics.indicators,
        sentiment=0.4,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.close = Decimal(1)  # type: ignore[misc]


def reference_z(closes: list[float], window: int) -> float:
    """The price-jump rule's z of the last close's log return against the ``window`` before."""
    returns = [math.log(b / a) for a, b in itertools.pairwise(closes)]
    before, last = returns[-window - 1 : -1], returns[-1]
    mean = sum(before) / window
    std = math.sqrt(sum((r - mean) ** 2 for r in before) / window)
    return (last - mean) / std


@pytest.mark.parametrize("window", [20, 5])  # 20: decided on volatility_20 first; 5: directly
def test_price_jump_fires_exactly_at_its_threshold(window: int) -> None:
    closes = ["100", "101", "100.5", "101.7", "100.2", "100.9", "101.4", "100.8", "101.1"] * 3
    closes = [*closes[: window + 1], "103.3"]
    z = reference_z([float(c) for c in closes], window)
    for threshold, fires in ((z, True), (math.nextafter(z, math.inf), False), (z * 0.99, True)):
        settings = AnalyticsSettings(price_jump_window=window, price_jump_z=threshold)
        model = SymbolModel([], settings)
        state = model.initial_state()
        out = feed(model, state, [bar(i, c) for i, c in enumerate(closes)])
        jumps = alerts(out, "price_jump")
        assert len(jumps) == fires, (threshold, z)
        if fires:
            assert jumps[0].value == z  # the rule's own figure, not the cheap estimate


def test_price_gap_fires_exactly_at_its_threshold() -> None:
    gap = float((Decimal("101.23") - Decimal("100.07")) / Decimal("100.07") * 100)
    for threshold, fires in ((gap, True), (math.nextafter(gap, math.inf), False)):
        model = SymbolModel([], AnalyticsSettings(gap_pct=threshold))
        state = model.initial_state()
        out = feed(model, state, [bar(0, "100.07"), bar(1, "101.5", "101.23")])
        gaps = alerts(out, "price_gap")
        assert len(gaps) == fires
        if fires:
            assert gaps[0].value == gap


def without_ingest_ts(out: list[Any]) -> list[dict[str, Any]]:
    return [{**e.model_dump(), "ingest_ts": 0, "type": type(e).__name__} for e in out]


def test_the_state_pickles_mid_stream_and_carries_on_identically() -> None:
    specs = [StrategySpec(name, {}) for name in ("sma_cross", "rsi_reversion")]
    specs += [StrategySpec("bollinger_breakout", {}), StrategySpec("sentiment_momentum", {})]
    model = SymbolModel(specs, AnalyticsSettings(price_jump_z=2.0, volume_spike_z=2.0))
    closes = [100 * math.exp(0.01 * math.sin(i / 3) + 0.002 * (i % 11)) for i in range(160)]
    bars = [
        bar(i, f"{c:.2f}", f"{closes[i - 1]:.2f}", volume=1_000 + 37 * (i % 13) + 900 * (i == 90))
        for i, c in enumerate(closes)
    ]
    straight_state = model.initial_state()
    model.on_news(straight_state, ScoredNews("n", "AAA", T0, 0.7, "up"))
    straight = feed(model, straight_state, bars)
    state = model.initial_state()
    model.on_news(state, ScoredNews("n", "AAA", T0, 0.7, "up"))
    resumed = feed(model, state, bars[:80])
    state = pickle.loads(pickle.dumps(state))
    resumed += feed(model, state, bars[80:])
    assert without_ingest_ts(resumed) == without_ingest_ts(straight)
    assert any(isinstance(e, Signal) for e in straight) and any(
        isinstance(e, Alert) for e in straight
    )


def test_a_bad_bar_raises_and_leaves_the_state_as_it_was() -> None:
    model = SymbolModel([StrategySpec("sma_cross", {"fast": 2, "slow": 3})], AnalyticsSettings())
    state = model.initial_state()
    feed(model, state, [bar(i, str(100 + i)) for i in range(5)])
    before = pickle.dumps(state)
    bad = ClosedBar(
        "AAA", T0 + 5 * MINUTE, Decimal(1), Decimal(1), Decimal(1), Decimal(0), 1, None, 1
    )
    with pytest.raises(ValueError, match="non-positive"):
        model.on_bar(state, bad)
    assert pickle.dumps(state) == before
