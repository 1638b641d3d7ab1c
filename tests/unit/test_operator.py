"""The analytics operator's containment (``DueItems``), called directly with the real model.

A bar the model must not see, or an exception the model raises on a bar or a story, becomes a dead
letter and an alert; the state ends as if the item had never come, and the next items go on. The
expected states are built by feeding only the good items to a fresh ``SymbolModel`` by hand.
"""

from __future__ import annotations

import copy
import pickle
from decimal import Decimal
from typing import Any

from flinktrade import events
from flinktrade.config import AnalyticsSettings
from flinktrade.pipeline.analytics import ClosedBar, ScoredNews, StrategySpec, SymbolModel
from flinktrade.pipeline.operator import PROVIDER, DueItems


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Model states hold live indicator objects (no ``__eq__``): equal when they pickle alike."""
    return pickle.dumps(a) == pickle.dumps(b)


T0 = 1_704_205_800_000
MINUTE = 60_000
SOURCES = {"trades": "market.trades", "bars": "market.bars", "news": "market.news"}
SPECS = [StrategySpec("sma_cross", {"fast": 2, "slow": 3})]


def bar_item(i: int, close: str, low: str | None = None, provider: bool = False) -> tuple[Any, ...]:
    """A buffered bar as the operator keeps it (prices as the SQL's DECIMAL strings)."""
    low = low if low is not None else close
    item = (T0 + i * MINUTE, close, close, low, close, 100, float(close), 3, MINUTE)
    return (*item, PROVIDER) if provider else item


def closed(item: tuple[Any, ...]) -> ClosedBar:
    ts, o, h, low, c, volume, vwap, trades, interval = item[:9]
    return ClosedBar("AAA", ts, Decimal(o), Decimal(h), Decimal(low), Decimal(c), volume, vwap,
                     trades, interval)  # fmt: skip


def by_kind(out: list[events.Event]) -> dict[str, list[events.Event]]:
    kinds: dict[str, list[events.Event]] = {}
    for event in out:
        kinds.setdefault(type(event).__name__, []).append(event)
    return kinds


class FailingModel(SymbolModel):
    """The real model, except that it breaks half-way through one bar or on one story."""

    fail_bar_ts: int | None = None
    fail_story: str | None = None

    def on_bar(self, state: dict[str, Any], bar: ClosedBar) -> list[events.Event]:
        if bar.ts == self.fail_bar_ts:
            state["last_close"] = "garbage"  # a half-made change the operator must undo
            state["ind"] = {}
            raise ZeroDivisionError("division by zero")
        return super().on_bar(state, bar)

    def on_news(self, state: dict[str, Any], news: ScoredNews) -> list[events.Event]:
        if news.id == self.fail_story:
            state["sent"] = {"broken": True}
            raise KeyError("s")
        return super().on_news(state, news)


def test_a_bar_with_a_zero_low_is_refused_before_the_model_and_the_rest_goes_on() -> None:
    model = SymbolModel(SPECS, AnalyticsSettings())
    due = [("bar", bar_item(i, f"{100 + i}.5")) for i in range(4)]
    due.insert(2, ("bar", bar_item(9, "101.5", low="0.000000", provider=True)))
    state = model.initial_state()
    state, out = DueItems(model, SOURCES).apply(state, "AAA", due, lambda: None)

    expected = model.initial_state()
    for i in range(4):
        model.on_bar(expected, closed(bar_item(i, f"{100 + i}.5")))
    assert same_state(state, expected)
    kinds = by_kind(out)
    assert [b.ts for b in kinds["AnalyticsBar"]] == [T0 + i * MINUTE for i in range(4)]
    (letter,) = kinds["DeadLetter"]
    assert isinstance(letter, events.DeadLetter)
    assert letter.source_topic == "market.bars"  # a provider bar
    assert "low: price 0.000000 is not positive" in letter.reason
    (alert,) = [a for a in kinds["Alert"] if isinstance(a, events.Alert) and a.kind == "bad_bar"]
    assert alert.severity is events.Severity.WARNING and alert.symbol == "AAA"
    assert alert.ts == T0 + 10 * MINUTE  # the bar's end


def test_a_model_failure_half_way_is_rolled_back_to_the_good_items() -> None:
    model = FailingModel(SPECS, AnalyticsSettings())
    model.fail_bar_ts = T0 + 2 * MINUTE
    first = [("bar", bar_item(i, f"{100 + i}.25")) for i in range(2)]
    second = [("bar", bar_item(i, f"{100 + i}.25")) for i in range(2, 6)]
    state = model.initial_state()
    state, _ = DueItems(model, SOURCES).apply(state, "AAA", first, lambda: None)
    before = copy.deepcopy(state)  # what Flink state holds when the next timer starts

    state, out = DueItems(model, SOURCES).apply(state, "AAA", second, lambda: before)

    reference = SymbolModel(SPECS, AnalyticsSettings())
    expected = reference.initial_state()
    for _kind, item in first + second:
        if item[0] != model.fail_bar_ts:
            reference.on_bar(expected, closed(item))
    assert same_state(state, expected)
    kinds = by_kind(out)
    assert [b.ts for b in kinds["AnalyticsBar"]] == [T0 + i * MINUTE for i in (3, 4, 5)]
    (letter,) = kinds["DeadLetter"]
    assert isinstance(letter, events.DeadLetter) and letter.source_topic == "market.trades"
    assert "analytics failed: ZeroDivisionError: division by zero" in letter.reason
    bad = [a for a in kinds["Alert"] if isinstance(a, events.Alert) and a.kind == "bad_bar"]
    assert [a.severity for a in bad] == [events.Severity.CRITICAL]


def test_a_failing_story_is_a_dead_letter_and_leaves_the_sentiment_as_it_was() -> None:
    model = FailingModel([], AnalyticsSettings())
    model.fail_story = "s2"
    stories = [("news", (f"s{i}", T0 + i, 0.5, f"headline {i}")) for i in range(4)]
    state, out = DueItems(model, SOURCES).apply(model.initial_state(), "AAA", stories, lambda: None)

    expected = model.initial_state()
    for story_id, ts, score, headline in (item for _k, item in stories):
        if story_id != "s2":
            SymbolModel([], AnalyticsSettings()).on_news(
                expected, ScoredNews(story_id, "AAA", ts, score, headline)
            )
    assert same_state(state, expected)
    letters = [e for e in out if isinstance(e, events.DeadLetter)]
    assert [(d.source_topic, "s2" in d.reason) for d in letters] == [("market.news", True)]
    assert [a.kind for a in out if isinstance(a, events.Alert) and a.kind.startswith("bad")] == [
        "bad_news"
    ]
