"""The analytics operator's containment (``DueItems``), called directly with the real model.

A bar the model must not see, or an exception the model raises on a bar or a story, becomes a dead
letter and an alert; the state ends as if the item had never come, and the next items go on. The
expected states are built by feeding only the good items to a fresh ``SymbolModel`` by hand.
"""

from __future__ import annotations

import copy
import json
import pickle
from decimal import Decimal
from typing import Any

import pytest

from flinktrade import events
from flinktrade.config import AnalyticsSettings
from flinktrade.pipeline.analytics import ClosedBar, ScoredNews, StrategySpec, SymbolModel
from flinktrade.pipeline.operator import PROVIDER, DueItems


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Model states hold live indicator objects (no ``__eq__``): equal when they pickle alike
    (key by key: the order keys were added in does not matter)."""
    return a.keys() == b.keys() and all(pickle.dumps(a[k]) == pickle.dumps(b[k]) for k in a)


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


class FailingModel:
    """The real model, except that it breaks half-way through one bar or on one story (a wrapper:
    the model's class is compiled in the mypyc build and takes no Python subclass)."""

    fail_bar_ts: int | None = None
    fail_story: str | None = None

    def __init__(self, specs: Any, settings: AnalyticsSettings) -> None:
        self.model = SymbolModel(specs, settings)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def on_bar(self, state: dict[str, Any], bar: ClosedBar) -> list[events.Event]:
        if bar.ts == self.fail_bar_ts:
            state["last_close"] = "garbage"  # a half-made change the operator must undo
            state["ind"] = {}
            raise ZeroDivisionError("division by zero")
        return self.model.on_bar(state, bar)

    def on_news(self, state: dict[str, Any], news: ScoredNews) -> list[events.Event]:
        if news.id == self.fail_story:
            state["sent"] = {"broken": True}
            raise KeyError("s")
        return self.model.on_news(state, news)


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


def test_a_bar_that_ends_before_the_last_one_is_refused_as_late() -> None:
    """Applying it would feed the model out of time order: it is a dead letter, the rest goes on."""
    model = SymbolModel(SPECS, AnalyticsSettings())
    items = DueItems(model, SOURCES)
    state = model.initial_state()
    state, _ = items.apply(state, "AAA", [("bar", bar_item(i, f"{100 + i}.5")) for i in (0, 1, 2)],
                           lambda: None)  # fmt: skip
    late = ("bar", bar_item(1, "150.5", provider=True))  # ends before bar 2 ended
    same_end = ("bar", bar_item(2, "102.5", provider=True))  # a second bar of the same minute
    state, out = items.apply(state, "AAA", [late, same_end, ("bar", bar_item(3, "103.5"))],
                             lambda: None)  # fmt: skip

    expected = model.initial_state()
    for i, close in ((0, "100.5"), (1, "101.5"), (2, "102.5"), (2, "102.5"), (3, "103.5")):
        model.on_bar(expected, closed(bar_item(i, close)))
    assert same_state(state, expected)
    kinds = by_kind(out)
    assert [b.ts for b in kinds["AnalyticsBar"]] == [T0 + 2 * MINUTE, T0 + 3 * MINUTE]
    (letter,) = kinds["DeadLetter"]
    assert isinstance(letter, events.DeadLetter) and letter.source_topic == "market.bars"
    assert f"late: it ends at {T0 + 2 * MINUTE}, before the last bar's {T0 + 3 * MINUTE}" in (
        letter.reason
    )


class _State:
    def __init__(self) -> None:
        self._value: Any = None

    def value(self) -> Any:
        return self._value

    def update(self, value: Any) -> None:
        self._value = pickle.loads(pickle.dumps(value))  # as Flink's pickled state keeps a copy

    def clear(self) -> None:
        self._value = None


class _MapState:
    """A keyed map state as Flink's pickled one keeps it: a copy of each value put. Its keys are
    the operators' ``STRING`` or ``LONG`` ones: a pickled key would reach the heap backend as a
    Java ``byte[]``, compared by identity, so ``remove`` and ``get`` would never find it."""

    def __init__(self) -> None:
        self.values: dict[str | int, bytes] = {}

    def get(self, key: str | int) -> Any:
        raw = self.values.get(key)
        return None if raw is None else pickle.loads(raw)

    def put(self, key: str | int, value: Any) -> None:
        assert isinstance(key, str | int), f"a key Flink's heap state cannot find again: {key!r}"
        self.values[key] = pickle.dumps(value)

    def put_all(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self.put(key, value)

    def items(self) -> list[tuple[str | int, Any]]:
        return [(key, self.get(key)) for key in self.values]

    def remove(self, key: str | int) -> None:
        del self.values[key]

    def clear(self) -> None:
        self.values.clear()


class _Runtime:
    def __init__(self) -> None:
        self.states: dict[str, _State] = {}
        self.maps: dict[str, _MapState] = {}

    def get_state(self, descriptor: Any) -> _State:
        return self.states.setdefault(descriptor.get_name(), _State())

    def get_map_state(self, descriptor: Any) -> _MapState:
        return self.maps.setdefault(descriptor.get_name(), _MapState())


class _Timers:
    def __init__(self) -> None:
        self.watermark = -(2**63)
        self.timers: list[int] = []

    def current_watermark(self) -> int:
        return self.watermark

    def register_event_time_timer(self, ts: int) -> None:
        self.timers.append(ts)


class _Context:
    def __init__(self, key: str) -> None:
        self.key = key
        self.timers = _Timers()

    def get_current_key(self) -> str:
        return self.key

    def timer_service(self) -> _Timers:
        return self.timers


def _bar_row(i: int, close: str, provider: bool = False) -> tuple[Any, ...]:
    """A ``BAR_ROW_TYPE`` row by position, as the operator reads it."""
    ts, o, h, low, c, volume, vwap, trades, interval = bar_item(i, close)
    return ("bar", "AAA", ts, o, h, low, c, volume, vwap, trades, interval,
            PROVIDER if provider else "")  # fmt: skip


def test_an_item_behind_the_watermark_is_applied_at_once_not_left_for_a_timer() -> None:
    """After the end of a bounded input (watermark at its maximum) no timer fires again: a bar or a
    story that arrives then (its input was idle while the other one ended) must not wait for one."""
    from flinktrade.pipeline.operator import MAX_WATERMARK, AnalyticsOperator

    topics = {"AnalyticsBar": "bars", "Signal": "signals", "Alert": "alerts",
              "DeadLetter": "deadletter"}  # fmt: skip
    operator = AnalyticsOperator(SPECS, AnalyticsSettings(), topics, SOURCES)
    operator.open(_Runtime())
    ctx = _Context("AAA")
    assert list(operator.process_element1(_bar_row(0, "100.5"), ctx)) == []  # ahead: buffered
    assert ctx.timers.timers == [T0 + MINUTE - 1]
    ctx.timers.watermark = MAX_WATERMARK
    fired = list(operator.on_timer(T0 + MINUTE - 1, ctx))  # type: ignore[arg-type]
    assert [row[0] for row in fired] == ["bars"]

    late_bar = list(operator.process_element1(_bar_row(1, "101.5", provider=True), ctx))
    late_story = list(operator.process_element2(("news", "AAA", T0, "s1", 0.5, "h"), ctx))

    assert [row[0] for row in late_bar] == ["bars"]  # applied, not buffered
    assert late_story == [] and operator._keyed("AAA").pending == []
    expected = operator.model.initial_state()  # type: ignore[union-attr]
    reference = SymbolModel(SPECS, AnalyticsSettings())
    reference.on_bar(expected, closed(bar_item(0, "100.5")))
    reference.on_bar(expected, closed(bar_item(1, "101.5")))
    reference.on_news(expected, ScoredNews("s1", "AAA", T0, 0.5, "h"))
    stored, _stale_at = operator._read("AAA")  # what a restored task would read
    assert stored is not None and same_state(stored, expected)


def _waiting_items_run(
    operator: Any, ctx: _Context, rows: list[tuple[Any, ...]], story: tuple[Any, ...]
) -> None:
    """``rows`` (bars) and ``story`` (a news row) handed to the per-symbol operator, all ahead of
    the watermark: buffered, each with its timer."""
    for row in rows[:3]:
        assert list(operator.process_element1(row, ctx)) == []
    assert list(operator.process_element2(story, ctx)) == []
    for row in rows[3:]:
        assert list(operator.process_element1(row, ctx)) == []


def _fire(operator: Any, ctx: _Context, times: list[int]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for ts in times:
        ctx.timers.watermark = ts
        out.extend(_no_ingest_ts(tuple(row)) for row in operator.on_timer(ts, ctx))
    return out


def test_waiting_items_are_one_state_entry_each_and_a_restarted_task_applies_them_alike() -> None:
    """The per-symbol operator keeps each item waiting for the watermark as its own map entry
    (one write when it comes, one when it is applied, not the whole list each time). A task
    restarted half-way (an empty cache, the same Flink state) applies the rest as the
    uninterrupted one does, in event-time order; a story inside a bar's minute counts for that
    bar. A checkpoint from before the map (the items as one list) restores the same."""
    from flinktrade.pipeline.operator import AnalyticsOperator, _bar_item

    rows = [_bar_row(i, close) for i, close in enumerate(["100.5", "101.5", "99.5", "102", "98"])]
    story = ("news", "AAA", T0 + 2 * MINUTE + 5, "s1", 0.75, "h")
    ends = sorted({T0 + (i + 1) * MINUTE - 1 for i in range(5)} | {story[2]})

    def opened(runtime: _Runtime) -> Any:
        operator = AnalyticsOperator(SPECS, AnalyticsSettings(), TOPICS, SOURCES)
        operator.open(runtime)
        return operator

    whole = _Runtime()
    uninterrupted = opened(whole)
    ctx = _Context("AAA")
    _waiting_items_run(uninterrupted, ctx, rows, story)
    assert len(whole.maps["waiting_items"].values) == 6  # one entry per item
    expected = _fire(uninterrupted, ctx, ends)
    assert whole.maps["waiting_items"].values == {}
    assert [row[0] for row in expected].count("bars") == 5

    runtime = _Runtime()
    first = opened(runtime)
    ctx = _Context("AAA")
    _waiting_items_run(first, ctx, rows, story)
    got = _fire(first, ctx, ends[:2])
    assert len(runtime.maps["waiting_items"].values) == 4  # two bars applied, their entries gone
    restarted = opened(runtime)  # a new task on the same state: nothing cached
    ctx.timers.timers.clear()
    got += _fire(restarted, ctx, ends[2:])
    assert got == expected

    listed = _Runtime()  # a checkpoint written before the map: one list of waiting items
    items = [((end, 1, ""), "bar", bar) for end, bar in map(_bar_item, rows)]
    items.insert(3, ((story[2], 0, "s1"), "news", ("s1", story[2], 0.75, "h")))
    listed.get_state(_Named("pending_items")).update(items)
    old = opened(listed)
    assert _fire(old, _Context("AAA"), ends) == expected
    assert listed.states["pending_items"].value() is None  # moved into the map, then applied
    assert listed.maps["waiting_items"].values == {}


class _Named:
    """A state descriptor as the fakes read it: its name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def get_name(self) -> str:
        return self.name


def _stage_log_env(monkeypatch: Any, path: Any) -> None:
    """``FLINKTRADE_STAGE_LOG`` set to ``path``, or unset for None."""
    from flinktrade.pipeline.operator import STAGE_LOG_ENV

    if path is None:
        monkeypatch.delenv(STAGE_LOG_ENV, raising=False)
    else:
        monkeypatch.setenv(STAGE_LOG_ENV, str(path))


def test_the_stage_log_is_a_subclass_made_only_when_its_variable_is_set(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """``FLINKTRADE_STAGE_LOG`` set: the operator logs ``in``, ``timer``, ``emit``, ``out`` per bar,
    and gives the same rows; unset: the plain operator, with no stage code on its path."""
    from flinktrade.pipeline.operator import (
        AnalyticsOperator,
        StageLoggedAnalyticsOperator,
    )

    topics = {"AnalyticsBar": "bars", "Signal": "signals", "Alert": "alerts",
              "DeadLetter": "deadletter"}  # fmt: skip
    rows = {}
    for staged in (False, True):
        _stage_log_env(monkeypatch, tmp_path / "stages.log" if staged else None)
        operator = AnalyticsOperator(SPECS, AnalyticsSettings(), topics, SOURCES)
        assert isinstance(operator, StageLoggedAnalyticsOperator) is staged
        operator = pickle.loads(pickle.dumps(operator))  # as Flink ships it to the task
        operator.open(_Runtime())
        ctx = _Context("AAA")
        got = []
        for i in range(3):
            assert list(operator.process_element1(_bar_row(i, f"{100 + i}.5"), ctx)) == []
            ctx.timers.watermark = T0 + (i + 1) * MINUTE - 1
            got += [(r[0], r[3]) for r in operator.on_timer(ctx.timers.watermark, ctx)]
        rows[staged] = got
    assert rows[True] == rows[False] and len(rows[True]) == 3
    lines = (tmp_path / "stages.log").read_text().splitlines()
    assert [line.split()[1] for line in lines] == ["in", "timer", "emit", "out"] * 3
    assert {line.split()[2] for line in lines} == {"AAA"}


class _FiringTimers(_Timers):
    """Flink's timer service as the operator sees it: one timer per timestamp, fired in time order
    when the watermark passes it (``fire`` plays that step)."""

    def register_event_time_timer(self, ts: int) -> None:
        if ts not in self.timers:
            self.timers.append(ts)

    def fire(self, operator: Any, ctx: _Context, watermark: int) -> list[tuple[Any, ...]]:
        self.watermark = watermark
        rows: list[tuple[Any, ...]] = []
        while due := sorted(t for t in self.timers if t <= watermark):
            self.timers.remove(due[0])
            rows += _unlot(operator.on_timer(due[0], ctx))
        return rows


def _unlot(rows: Any) -> list[tuple[Any, ...]]:
    """Output rows as tuples, the lots ``BundledBarOperator`` packs (``OUTPUT_LOT_TYPE``, one
    field) unpacked into their rows, as ``OutputLots.java`` unpacks them in the job."""
    from flinktrade.pipeline.operator import unpack_outputs

    out: list[tuple[Any, ...]] = []
    for row in rows:
        out.extend(unpack_outputs(row[0]) if len(row) == 1 else [tuple(row)])
    return out


def _no_ingest_ts(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """An output row with its payload decoded, less the wall-clock ``ingest_ts``."""
    topic, key, payload, ts = row
    return topic, key, {k: v for k, v in json.loads(payload).items() if k != "ingest_ts"}, ts


TOPICS = {
    "AnalyticsBar": "bars",
    "Signal": "signals",
    "Alert": "alerts",
    "DeadLetter": "deadletter",
}


def _symbol_of(row: tuple[Any, ...]) -> str:
    """The symbol an output row is about (a dead letter's reason starts with it)."""
    payload = row[2]
    return str(payload.get("symbol") or payload["reason"].split()[0])


def _bundle_line(symbol: str, i: int, close: str) -> str:
    """One line of a bar bundle, as ``MinuteBars.java`` writes it."""
    ts, o, h, low, c, volume, vwap, trades, _interval = bar_item(i, close)
    return "\t".join([symbol, str(ts), o, h, low, c, str(volume), str(vwap), str(trades)])


def test_bundled_bars_give_per_symbol_what_a_timer_per_symbol_would_have() -> None:
    """A job whose only input is its own window's bars takes each minute's bars of a bucket in one
    bundle (``BundledBarOperator``, keyed by bucket, one map state of symbol states): per symbol the
    same rows in the same order as the per-symbol operator that buffers each bar for its timer,
    stale_feed alerts included (gaps longer than ``stale_after_ms``), a refused bar and an
    unreadable line alike, and the same stored state once a checkpoint marker came, also across a
    task restart half-way (a new operator reading the map state as of a marker, with Flink's
    timers kept)."""
    from flinktrade.pipeline.operator import (
        AnalyticsOperator,
        BarAnalyticsOperator,
        BundledBarOperator,
        stored_state,
    )

    settings = AnalyticsSettings(stale_after_ms=3 * MINUTE)
    minutes = [0, 1, 2, 3, 9, 10, 11, 16, 20, 21, 22, 23]  # quiet from 4, 11 (a refused bar), 17
    closes = ["100.5", "101.5", "99.5", "102.25", "104", "103.5", "0", "105.75", "104.5",
              "106", "107.5", "103"]  # fmt: skip
    trading = {  # which minutes each symbol trades in: different gaps, so different stale times
        "AAA": dict(zip(minutes, closes, strict=True)),
        "BBB": dict(zip([m + 1 for m in minutes], closes, strict=True)),
        "C": {m: c for m, c in zip(minutes, closes, strict=True) if m % 2 == 0},
    }
    all_minutes = sorted({m for bars in trading.values() for m in bars})
    end_of = {i: T0 + (i + 1) * MINUTE - 1 for i in range(40)}

    # the reference: one per-symbol operator each, its bars buffered for their timers
    expected: dict[str, list[tuple[Any, ...]]] = {symbol: [] for symbol in trading}
    stored_expected: dict[str, tuple[bytes, int | None]] = {}
    for symbol, bars in trading.items():
        per_symbol = BarAnalyticsOperator(AnalyticsOperator(SPECS, settings, TOPICS, SOURCES))
        per_symbol.open(_Runtime())
        ctx = _Context(symbol)
        ctx.timers = _FiringTimers()
        rows: list[tuple[Any, ...]] = []
        for i in all_minutes:
            if i in bars:
                row = list(_bar_row(i, bars[i]))
                row[1] = symbol
                if bars[i] == "0":  # a bar the model must not see
                    row[5] = "0"
                rows += [tuple(r) for r in per_symbol.process_element(tuple(row), ctx)]
            rows += ctx.timers.fire(per_symbol, ctx, end_of[i])  # the window's step
        rows += ctx.timers.fire(per_symbol, ctx, T0 + 40 * MINUTE)  # the feed stays quiet
        expected[symbol] = [_no_ingest_ts(r) for r in rows]
        model, stale_at = per_symbol.analytics._read(symbol)
        stored_expected[symbol] = (pickle.dumps(model), stale_at)

    # the bundles: one per minute, every symbol in bucket 0, and the task restarted at minute 10
    runtime = _Runtime()
    ctx = _Context(0)  # type: ignore[arg-type]
    ctx.timers = _FiringTimers()

    def started() -> BundledBarOperator:
        operator = BundledBarOperator(AnalyticsOperator(SPECS, settings, TOPICS, SOURCES))
        operator = pickle.loads(pickle.dumps(operator))  # as Flink ships it to the task
        operator.open(runtime)
        return operator

    operator = started()
    bundled: list[tuple[Any, ...]] = []
    for i in all_minutes:
        if i == 10:  # a checkpoint, then a restart from it
            assert list(operator.process_element((0, None), ctx)) == []
            operator = started()
        lines = []
        for symbol, bars in trading.items():
            if i in bars:
                lines.append(_bundle_line(symbol, i, bars[i]))  # "0": a bar refused
        if i == 20:
            lines.append("not\ta bar")  # a line it cannot read: a dead letter, the rest goes on
        bundled += _unlot(operator.process_element((0, "\n".join(lines)), ctx))
        bundled += ctx.timers.fire(operator, ctx, end_of[i])
    bundled += ctx.timers.fire(operator, ctx, T0 + 40 * MINUTE)
    assert list(operator.process_element((0, None), ctx)) == []  # the end's marker
    decoded = [_no_ingest_ts(r) for r in bundled]

    unreadable = [r for r in decoded if r[0] == "deadletter" and "bar bundle line" in
                  r[2]["reason"]]  # fmt: skip
    assert len(unreadable) == 1 and unreadable[0][2]["payload"] == "not\ta bar"
    for symbol in trading:
        got = [r for r in decoded if r not in unreadable and _symbol_of(r) == symbol]
        assert got == expected[symbol], symbol
        model, stale_at = stored_state(
            operator.model, runtime.maps["model_states"].get(symbol), symbol
        )
        assert (pickle.dumps(model), stale_at) == stored_expected[symbol], symbol
    kinds = [r[2]["kind"] for r in decoded if r[0] == "alerts"]
    assert kinds.count("bad_bar") == 2 and kinds.count("stale_feed") >= 6, kinds
    assert len(ctx.timers.timers) == 0


def test_the_bundled_stage_log_is_a_subclass_made_only_when_its_variable_is_set(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """``FLINKTRADE_STAGE_LOG`` set: the bundled operator logs ``bundle`` (its minute, the
    watermark it saw, its bar count), ``lot``, ``encoded`` and ``sent`` per ``HAND_OVER_BARS``
    bars with their bar and output counts, and ``end``, then ``mark`` (the states to write) and
    ``put`` for a checkpoint marker, and gives the same rows; unset: the plain operator."""
    from flinktrade.pipeline.operator import (
        HAND_OVER_BARS,
        AnalyticsOperator,
        BundledBarOperator,
        StageLoggedBundledBarOperator,
    )

    symbols = [f"S{k:02d}" for k in range(HAND_OVER_BARS + 4)]
    rows = {}
    for staged in (False, True):
        _stage_log_env(monkeypatch, tmp_path / "stages.log" if staged else None)
        operator = BundledBarOperator(AnalyticsOperator(SPECS, AnalyticsSettings(), TOPICS,
                                                        SOURCES))  # fmt: skip
        assert isinstance(operator, StageLoggedBundledBarOperator) is staged
        operator = pickle.loads(pickle.dumps(operator))  # as Flink ships it to the task
        operator.open(_Runtime())
        ctx = _Context(0)  # type: ignore[arg-type]
        ctx.timers.watermark = T0 + MINUTE - 1
        bundle = "\n".join(_bundle_line(symbol, 0, "100.5") for symbol in symbols)
        rows[staged] = [
            _no_ingest_ts(r) for r in _unlot(operator.process_element((0, bundle), ctx))
        ]
        assert list(operator.process_element((0, None), ctx)) == []
    assert rows[True] == rows[False] and len(rows[True]) == len(symbols)
    lines = [line.split() for line in (tmp_path / "stages.log").read_text().splitlines()]
    lot = ["lot", "encoded", "sent"]
    assert [line[1] for line in lines] == ["bundle", *lot, *lot, "end", "mark", "put"]
    assert {(line[2], line[3]) for line in lines[:-2]} == {("0", str(T0))}
    assert lines[0][4:6] == [str(T0 + MINUTE - 1), str(len(symbols))]
    assert [line[4:6] for line in lines[1:7]] == [[str(HAND_OVER_BARS)] * 2] * 3 + [["4", "4"]] * 3
    assert [line[2:6] for line in lines[-2:]] == [["0", "0", str(len(symbols)), "0"], ["0", "0",
                                                  "0", "0"]]  # fmt: skip
    for column in (0, 6):  # the wall clock and the thread's CPU time never go back
        assert [int(line[column]) for line in lines] == sorted(int(line[column]) for line in lines)


def test_packed_outputs_unpack_to_the_same_rows() -> None:
    """``pack_outputs`` (the bundled operator's lots) against its reader: no key, an empty one, a
    non-ASCII topic, an empty and a 1 MB payload, negative and large timestamps, and no rows."""
    from flinktrade.pipeline.operator import pack_outputs, unpack_outputs

    rows = [
        ("bars", b"AAPL", b'{"a":1}', T0),
        ("deadletter", None, b"", -1),
        ("tôpic.ü", b"", b"x" * 1_048_576, 2**62),
        ("alerts", b"\x00\xff", b"\n\t", 0),
    ]
    packed = pack_outputs(rows)
    assert unpack_outputs(packed) == rows
    assert len(packed) == sum(2 + len(t.encode()) + 4 + len(k or b"") + 4 + len(p) + 8
                              for t, k, p, _ in rows)  # fmt: skip
    assert pack_outputs([]) == b"" and unpack_outputs(b"") == []


def test_the_bucket_of_a_symbol_is_javas_string_hash_floor_mod_the_count() -> None:
    """``java_bucket`` must agree with ``ParseTrades.bucket`` (Java): known ``String.hashCode``
    values, a negative one included ("polygenelubricants" hashes to Integer.MIN_VALUE)."""
    from flinktrade.pipeline.operator import java_bucket

    assert java_bucket("hello", 1_000_000_007) == 99162322  # "hello".hashCode()
    assert java_bucket("polygenelubricants", 2**32) == 2**31  # floorMod(MIN_VALUE, 2^32)
    assert java_bucket("polygenelubricants", 3) == 1  # floorMod(-2147483648, 3)
    assert java_bucket("", 5) == 0 and java_bucket("AAPL", 0) == 0


def test_a_restore_with_another_bucket_count_starts_the_moved_symbols_afresh(caplog: Any) -> None:
    """State written with one bucket count and read with another: a symbol still in its bucket
    keeps its state; one that moved is not taken for this bucket's, and its value is removed (a
    warning names it)."""
    from flinktrade.pipeline.operator import AnalyticsOperator, BundledBarOperator, java_bucket

    symbols = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
    runtime = _Runtime()
    ctx = _Context(0)  # type: ignore[arg-type]
    one = BundledBarOperator(AnalyticsOperator(SPECS, AnalyticsSettings(), TOPICS, SOURCES), 1)
    one.open(runtime)
    lines = "\n".join(_bundle_line(symbol, 0, "100.5") for symbol in symbols)
    list(one.process_element((0, lines), ctx))
    list(one.process_element((0, None), ctx))  # a checkpoint's marker: the states written

    two = BundledBarOperator(AnalyticsOperator(SPECS, AnalyticsSettings(), TOPICS, SOURCES), 2)
    two.open(runtime)  # the same map state: bucket 0's, as written with one bucket
    kept = two._symbols(0)
    stay = {s for s in symbols if java_bucket(s, 2) == 0}
    assert 0 < len(stay) < len(symbols)
    assert set(kept) == stay and all(k.model is not None for k in kept.values())
    assert set(runtime.maps["model_states"].values) == stay  # the moved ones' values removed
    assert "start afresh" in caplog.text
    assert all(s in caplog.text for s in sorted(set(symbols) - stay)[:5])


def test_the_operators_open_with_a_collector_that_leaves_what_is_loaded_alone() -> None:
    """Each Python operator's ``open`` moves everything loaded so far out of the garbage
    collector's reach (``gc.freeze``) and collects the young generation every
    ``YOUNG_COLLECTION_THRESHOLD`` allocations instead of 700; a collector that is off stays off,
    and the older generations' thresholds are Python's."""
    import gc

    from flinktrade.pipeline.operator import (
        YOUNG_COLLECTION_THRESHOLD,
        AnalyticsOperator,
        BundledBarOperator,
        NewsScorer,
        collect_less,
    )

    def analytics() -> AnalyticsOperator:
        return AnalyticsOperator(SPECS, AnalyticsSettings(), TOPICS, SOURCES)

    before, enabled = gc.get_threshold(), gc.isenabled()
    try:
        for make in (
            analytics,
            lambda: BundledBarOperator(analytics()),
            lambda: NewsScorer("market.news"),
        ):
            gc.unfreeze()
            gc.set_threshold(700, 10, 10)
            make().open(_Runtime())
            assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, 10, 10)
            assert gc.get_freeze_count() > 1000  # the modules, the model: all of it
        gc.set_threshold(0, 10, 10)  # collection turned off by whoever runs us: left off
        collect_less()
        assert gc.get_threshold() == (0, 10, 10)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        if enabled:
            gc.enable()


def test_a_large_bundle_hands_its_outputs_over_as_it_goes(monkeypatch: Any) -> None:
    """A bundle's outputs leave every ``HAND_OVER_BARS`` bars, not all at the bundle's end (PyFlink
    takes them as they are yielded): the first outputs come before the last bar is applied, and
    the rows and the states written at the markers are those of the bundle handed over whole."""
    import flinktrade.pipeline.operator as operator_module
    from flinktrade.pipeline.operator import (
        HAND_OVER_BARS,
        AnalyticsOperator,
        BundledBarOperator,
    )

    symbols = [f"S{i:02d}" for i in range(3 * HAND_OVER_BARS + 5)]
    bundles = [
        "\n".join(_bundle_line(s, i, f"{100 + i + k / 8:.3f}") for k, s in enumerate(symbols))
        for i in range(4)
    ]

    def run(lazy: bool) -> tuple[list[tuple[Any, ...]], dict[str, bytes], list[int]]:
        runtime = _Runtime()
        operator = BundledBarOperator(AnalyticsOperator(SPECS, AnalyticsSettings(), TOPICS,
                                                        SOURCES))  # fmt: skip
        operator.open(runtime)
        ctx = _Context(0)  # type: ignore[arg-type]
        rows: list[tuple[Any, ...]] = []
        applied_before_row = []  # how many of the bundle's bars were applied as each lot came
        for bundle in bundles:
            for row in operator.process_element((0, bundle), ctx):  # a lot at a time
                applied_before_row.append(len(operator._changed[0]))
                rows += _unlot([row])
            assert list(operator.process_element((0, None), ctx)) == []  # a checkpoint
        if lazy:
            assert applied_before_row[0] == HAND_OVER_BARS
        decoded = [_no_ingest_ts(r) for r in rows]
        return decoded, runtime.maps["model_states"].values, applied_before_row

    rows, stored, seen = run(lazy=True)
    monkeypatch.setattr(operator_module, "HAND_OVER_BARS", 10**9)
    whole_rows, whole_stored, whole_seen = run(lazy=False)
    assert whole_seen[0] == len(symbols)  # handed over whole: every bar applied first
    assert rows == whole_rows and len(rows) >= 4 * len(symbols)
    assert stored == whole_stored and len(stored) == len(symbols)
    assert seen != whole_seen and sorted(set(seen))[:3] == [HAND_OVER_BARS, 2 * HAND_OVER_BARS,
                                                            3 * HAND_OVER_BARS]  # fmt: skip


def _bundled(settings: AnalyticsSettings, runtime: _Runtime) -> Any:
    """A ``BundledBarOperator`` as Flink ships it to a task, opened on ``runtime``."""
    from flinktrade.pipeline.operator import AnalyticsOperator, BundledBarOperator

    operator = BundledBarOperator(AnalyticsOperator(SPECS, settings, TOPICS, SOURCES))
    operator = pickle.loads(pickle.dumps(operator))
    operator.open(runtime)
    return operator


def _minute_bundle(trading: dict[str, dict[int, str]], i: int) -> str:
    return "\n".join(_bundle_line(s, i, bars[i]) for s, bars in trading.items() if i in bars)


def test_the_bundled_states_are_written_at_checkpoint_markers(monkeypatch: Any) -> None:
    """``BundledBarOperator`` keeps its states live and writes a bucket's changed ones when a
    checkpoint marker ``(bucket, None)`` comes (``MinuteBars.Marked`` sends one per bucket ahead
    of each barrier): nothing before it, nothing for another bucket's, then every changed one as
    the live state snapshots to, with its journal emptied. A task restarted from the state of a
    marker, with the timers of then (Flink replays the input after the checkpoint), gives the same
    outputs and states as the task that went on. A symbol with ``JOURNAL_LIMIT`` changes since
    its last write is written at once."""
    import flinktrade.pipeline.operator as operator_module
    from flinktrade.pipeline.operator import STATE_FORMAT

    settings = AnalyticsSettings(stale_after_ms=3 * MINUTE)
    trading = {  # AAA quiet from minute 3 to 7: stale_feed checks after the marker
        "AAA": {m: f"{100 + m}.5" for m in [0, 1, 2, 8, 9, 10]},
        "BBB": {m: f"{90 + m % 4}.25" for m in range(11)},
    }
    end_of = {i: T0 + (i + 1) * MINUTE - 1 for i in range(12)}
    runtime = _Runtime()
    operator = _bundled(settings, runtime)
    ctx = _Context(0)  # type: ignore[arg-type]
    ctx.timers = _FiringTimers()
    for i in range(3):
        list(operator.process_element((0, _minute_bundle(trading, i)), ctx))
        ctx.timers.fire(operator, ctx, end_of[i])
    stored = runtime.maps.setdefault("model_states", _MapState()).values
    assert stored == {}  # nothing written before a marker
    list(operator.process_element((1, None), _Context(1)))  # type: ignore[arg-type]
    assert stored == {}  # another bucket's marker
    assert list(operator.process_element((0, None), ctx)) == []
    live = operator._symbols(0)
    assert set(stored) == set(trading)
    for symbol, keyed in live.items():
        value = (STATE_FORMAT, operator.model.snapshot(keyed.model), keyed.stale_at)
        assert stored[symbol] == pickle.dumps(value) and keyed.journal == []
    checkpoint = dict(stored)
    timers_then = list(ctx.timers.timers)

    def go_on(operator: Any, ctx: _Context) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for i in range(3, 11):
            rows += _unlot(operator.process_element((0, _minute_bundle(trading, i)), ctx))
            rows += ctx.timers.fire(operator, ctx, end_of[i])
        assert list(operator.process_element((0, None), ctx)) == []
        return [_no_ingest_ts(r) for r in rows]

    went_on = go_on(operator, ctx)
    assert any(r[0] == "alerts" and r[2]["kind"] == "stale_feed" for r in went_on)
    restored = _Runtime()
    restored.maps["model_states"] = _MapState()
    restored.maps["model_states"].values = dict(checkpoint)
    again = _bundled(settings, restored)
    ctx_again = _Context(0)  # type: ignore[arg-type]
    ctx_again.timers = _FiringTimers()
    ctx_again.timers.timers = timers_then
    ctx_again.timers.watermark = end_of[2]
    assert go_on(again, ctx_again) == went_on
    assert restored.maps["model_states"].values == stored

    monkeypatch.setattr(operator_module, "JOURNAL_LIMIT", 2)
    limited = _Runtime()
    operator = _bundled(settings, limited)
    ctx = _Context(0)  # type: ignore[arg-type]
    list(operator.process_element((0, _minute_bundle(trading, 0)), ctx))
    assert limited.maps["model_states"].values == {}
    list(operator.process_element((0, _minute_bundle(trading, 1)), ctx))  # two bars each
    for symbol, keyed in operator._symbols(0).items():
        value = (STATE_FORMAT, operator.model.snapshot(keyed.model), keyed.stale_at)
        assert limited.maps["model_states"].values[symbol] == pickle.dumps(value)
        assert keyed.journal == []


def test_a_model_failure_in_a_bundle_rolls_the_symbol_back_past_its_journal() -> None:
    """The model fails half-way through a bar after the symbol's last write (a checkpoint
    marker) was followed by another bar and a ``stale_feed`` check: the bar is a dead letter and
    a ``bad_bar`` alert, and the symbol's state is the stored one with its journal applied again:
    every output after it, and the states written at the next marker, are those of a run that
    never had the bar (its ``stale_feed`` check made by the timer instead)."""
    settings = AnalyticsSettings(stale_after_ms=3 * MINUTE)
    failing_minute = 6
    trading = {
        "AAA": {m: f"{100 + m}.5" for m in [0, 1, 2, failing_minute, 8, 9]},
        "BBB": {m: f"{90 + m % 4}.25" for m in range(10) if m != failing_minute},
    }
    end_of = {i: T0 + (i + 1) * MINUTE - 1 for i in range(12)}

    def run(trading: dict[str, dict[int, str]], fail: bool) -> tuple[list[Any], dict[str, bytes]]:
        runtime = _Runtime()
        operator = _bundled(settings, runtime)
        if fail:
            operator.model = FailingModel(SPECS, settings)
            operator.model.fail_bar_ts = T0 + failing_minute * MINUTE
            operator.items = DueItems(operator.model, SOURCES)
        ctx = _Context(0)  # type: ignore[arg-type]
        ctx.timers = _FiringTimers()
        rows: list[tuple[Any, ...]] = []
        for i in range(10):
            rows += _unlot(operator.process_element((0, _minute_bundle(trading, i)), ctx))
            if i == 1:
                assert list(operator.process_element((0, None), ctx)) == []
            rows += ctx.timers.fire(operator, ctx, end_of[i])
        assert list(operator.process_element((0, None), ctx)) == []
        return [_no_ingest_ts(r) for r in rows], runtime.maps["model_states"].values

    failed_rows, failed_states = run(trading, fail=True)
    without = {s: {m: c for m, c in bars.items() if m != failing_minute or s != "AAA"}
               for s, bars in trading.items()}  # fmt: skip
    rows, states = run(without, fail=False)
    refused = [r for r in failed_rows if (r[0] == "deadletter" and "analytics failed" in
               r[2]["reason"]) or (r[0] == "alerts" and r[2]["kind"] == "bad_bar")]  # fmt: skip
    assert len(refused) == 2 and all("AAA" in json.dumps(r[2]) for r in refused)
    for symbol in trading:
        got = [r for r in failed_rows if r not in refused and _symbol_of(r) == symbol]
        assert got == [r for r in rows if _symbol_of(r) == symbol], symbol
    stale = [r for r in rows if r[0] == "alerts" and r[2]["kind"] == "stale_feed"]
    assert [_symbol_of(r) for r in stale] == ["AAA"]
    assert failed_states == states


def test_hostile_lines_in_a_large_bundle_are_dead_letters_and_the_lots_go_on() -> None:
    """Lines no bar can come from, between the lots a bundle hands over: a price that is not a
    number, NaN, 1e400, 0.0000001, a symbol too long or empty, a huge line, not a line at all.
    Each is one dead letter; every other symbol's bar comes out, and the operator goes on with the
    next bundle."""
    from flinktrade.pipeline.operator import HAND_OVER_BARS, AnalyticsOperator, BundledBarOperator

    good = [f"S{i:02d}" for i in range(3 * HAND_OVER_BARS)]
    hostile = [
        _bundle_line("BAD1", 0, "100").replace("\t100\t", "\tnot-a-price\t", 1),
        _bundle_line("BAD2", 0, "NaN"),
        _bundle_line("BAD3", 0, "1E+400"),
        _bundle_line("BAD4", 0, "0.0000001"),
        _bundle_line("X" * 17, 0, "100"),
        _bundle_line("", 0, "100"),
        _bundle_line("BAD7", 0, "100") + "\t" + "9" * 1_000_000,
        "{not json, not a bar}",
    ]
    lines = [_bundle_line(s, 0, "100.5") for s in good]
    for k, line in enumerate(hostile):  # spread over the lots
        lines.insert(5 + k * 6, line)
    operator = BundledBarOperator(AnalyticsOperator(SPECS, AnalyticsSettings(), TOPICS, SOURCES))
    operator.open(_Runtime())
    ctx = _Context(0)  # type: ignore[arg-type]
    rows = [_no_ingest_ts(r) for r in _unlot(operator.process_element((0, "\n".join(lines)), ctx))]
    letters = [r for r in rows if r[0] == "deadletter"]
    assert len(letters) == len(hostile)
    bars = [r[2]["symbol"] for r in rows if r[0] == "bars"]
    assert bars == good
    more = _unlot(operator.process_element(
        (0, "\n".join(_bundle_line(s, 1, "101") for s in good)), ctx))  # fmt: skip
    assert [r[0] for r in more].count("bars") == len(good)


@pytest.mark.parametrize(
    ("low", "reason"),
    [
        ("0.000000", "low: price 0.000000 is not positive"),
        ("-1.500000", "low: price -1.500000 is not positive"),
        ("1.0000001", "low: price 1.0000001 has more than 6 decimals"),
        ("1E+13", "low: price 1.000000E+13 is above 999999999999.999999"),
        ("NaN", "low: price is NaN"),
        ("1e400", "low: price 1.000000E+400 is above 999999999999.999999"),
        ("0.0000001", "low: price 1E-7 is below 0.000001"),
        ("not a price", "analytics failed: InvalidOperation"),
        # the job's text shape (the C kernel's fast path) yet refused: above the bar, 13 digits
        ("101.600000", "inconsistent bar: low 101.600000, open 101.500000"),
        ("1000000000000.000000", "low: price 1.000000E+12 is above 999999999999.999999"),
    ],
)
def test_a_bar_with_a_hostile_price_text_is_a_dead_letter_with_its_reason(
    low: str, reason: str
) -> None:
    model = SymbolModel(SPECS, AnalyticsSettings())
    due = [("bar", bar_item(0, "101.500000", low=low)), ("bar", bar_item(1, "102.500000"))]
    _state, out = DueItems(model, SOURCES).apply(model.initial_state(), "AAA", due, lambda: None)
    (letter,) = by_kind(out)["DeadLetter"]
    assert isinstance(letter, events.DeadLetter)
    assert reason in letter.reason, letter.reason
    [analytics] = by_kind(out)["AnalyticsBar"]  # and the next bar goes on
    assert isinstance(analytics, events.AnalyticsBar) and analytics.ts == T0 + MINUTE
