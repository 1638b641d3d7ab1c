"""The job's Python operators: news scoring, and the per-symbol analytics operator.

``NewsScorer`` decodes each ``market.news`` record, scores its sentiment (``flinktrade.sentiment``)
and fans it out to one row per symbol; a record that does not decode becomes a dead letter.

``AnalyticsOperator`` is keyed by symbol and joins two inputs, closed bars and scored news, in
event-time order: both are buffered and applied when the watermark passes them (a bar at its end, a
story at its time), so a story is always folded in before the bars that close after it, whatever
order the two streams arrive in. The per-symbol logic itself is ``analytics.SymbolModel``; its
state is one JSON document in Flink keyed state, checkpointed and restored with the job.

Every output (bars with indicators, signals, alerts, dead letters) leaves as one row type,
``OUTPUT_ROW_TYPE``, already encoded, with the topic it goes to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import (
    FlatMapFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import ValueStateDescriptor

from flinktrade import events
from flinktrade.config import AnalyticsSettings
from flinktrade.pipeline.analytics import ClosedBar, ScoredNews, StrategySpec, SymbolModel

log = logging.getLogger(__name__)

MAX_WATERMARK = 9_223_372_036_854_775_807  # Long.MAX_VALUE: end of a bounded input

OUTPUT_ROW_TYPE = Types.ROW_NAMED(
    ["topic", "k", "payload", "ts"],
    [
        Types.STRING(),
        Types.PRIMITIVE_ARRAY(Types.BYTE()),
        Types.PRIMITIVE_ARRAY(Types.BYTE()),
        Types.LONG(),
    ],
)
BAR_ROW_TYPE = Types.ROW_NAMED(
    [
        "kind",
        "symbol",
        "ts",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "trades",
        "interval_ms",
        "text",
    ],
    [
        Types.STRING(),
        Types.STRING(),
        Types.LONG(),
        Types.STRING(),
        Types.STRING(),
        Types.STRING(),
        Types.STRING(),
        Types.LONG(),
        Types.DOUBLE(),
        Types.LONG(),
        Types.LONG(),
        Types.STRING(),
    ],
)
"""Closed bars on their way to ``AnalyticsOperator``: ``kind`` is ``bar``, or ``dead`` with the
encoded dead letter in ``text``. Prices are exact decimal strings."""
NEWS_ROW_TYPE = Types.ROW_NAMED(
    ["kind", "symbol", "ts", "id", "sentiment", "text"],
    [Types.STRING(), Types.STRING(), Types.LONG(), Types.STRING(), Types.DOUBLE(), Types.STRING()],
)

__all__ = [
    "BAR_ROW_TYPE",
    "NEWS_ROW_TYPE",
    "OUTPUT_ROW_TYPE",
    "AnalyticsOperator",
    "BarAnalyticsOperator",
    "BarDecoder",
    "NewsScorer",
    "StrategySpec",
    "output_row",
]


def output_row(topic: str, event: events.Event) -> Row:
    return Row(topic, event.key, events.encode(event), event.ts)


class BarDecoder(FlatMapFunction):  # type: ignore[misc]
    """``market.bars`` records (provider bars) -> ``BAR_ROW_TYPE`` rows, or dead letters."""

    def __init__(self, source_topic: str) -> None:
        self.source_topic = source_topic

    def flat_map(self, value: Row) -> Iterator[Row]:
        raw: bytes = bytes(value["value"] or b"")
        try:
            bar = events.decode(events.Bar, raw)
        except events.DecodeError as exc:
            letter = events.DeadLetter(
                ts=int(value["ts"]),
                source_topic=self.source_topic,
                partition=int(value["partition"]),
                offset=int(value["offset"]),
                reason=str(exc),
                payload=raw.decode("utf-8", errors="replace"),
            )
            yield Row("dead", "", letter.ts, None, None, None, None, 0, None, 0, 0,
                      events.encode(letter).decode())  # fmt: skip
            return
        yield Row(
            "bar",
            bar.symbol,
            bar.ts,
            str(bar.open),
            str(bar.high),
            str(bar.low),
            str(bar.close),
            bar.volume,
            bar.vwap,
            bar.trades or 0,
            bar.interval_ms,
            None,
        )


class NewsScorer(FlatMapFunction):  # type: ignore[misc]
    """``market.news`` records -> one ``news`` row per symbol, or one ``dead`` row (a dead letter).

    Input rows: ``value`` (bytes), ``partition``, ``offset``, ``ts`` (record time, epoch ms)."""

    def __init__(self, source_topic: str) -> None:
        self.source_topic = source_topic

    def open(self, runtime_context: RuntimeContext) -> None:
        from flinktrade import sentiment

        self._score = sentiment.score

    def flat_map(self, value: Row) -> Iterator[Row]:
        raw: bytes = bytes(value["value"] or b"")
        try:
            item = events.decode(events.NewsItem, raw)
            if not item.symbols:
                raise events.DecodeError("news item names no symbol")
        except events.DecodeError as exc:
            letter = events.DeadLetter(
                ts=int(value["ts"]),
                source_topic=self.source_topic,
                partition=int(value["partition"]),
                offset=int(value["offset"]),
                reason=str(exc),
                payload=raw.decode("utf-8", errors="replace"),
            )
            yield Row("dead", "", letter.ts, "", 0.0, events.encode(letter).decode())
            return
        score = float(self._score(item.headline, item.summary))
        for symbol in dict.fromkeys(item.symbols):
            yield Row("news", symbol, item.ts, item.id, score, item.headline)


class AnalyticsOperator(KeyedCoProcessFunction):  # type: ignore[misc]
    """Keyed by symbol: input 1 closed bars (``BAR_ROW_TYPE``), input 2 news rows.

    Per symbol it keeps two values in Flink keyed state, pickled (``PICKLED_BYTE_ARRAY``): the
    model state (with the time of its pending ``stale_feed`` timer) and the items waiting for the
    watermark. It also keeps them as live Python objects in a per-key cache, so a bar costs one
    pickle of the model state and no decoding at all. The cache is only ever written through
    (every change also goes to Flink state), and a restarted or restored task starts with an empty
    one and reads Flink state, so checkpoints stay the truth.

    ``stale_feed`` needs a timer at the last bar's end + ``stale_after_ms``. Rather than one timer
    per bar, one timer per symbol chases that time: when it fires early (bars came meanwhile) it is
    set again for the latest bar. Flink fires a timer set inside ``on_timer`` within the same
    watermark step, in time order, so alerts come out as with a timer per bar, for fewer calls.
    """

    def __init__(
        self,
        specs: Sequence[StrategySpec],
        settings: AnalyticsSettings,
        topics: Mapping[str, str],
    ) -> None:
        self.specs = list(specs)
        self.settings = settings
        self.topics = dict(topics)  # event class name -> topic
        self.model: SymbolModel | None = None
        self.state: Any = None
        self.pending: Any = None
        self._cache: dict[str, _Keyed] = {}

    def open(self, runtime_context: RuntimeContext) -> None:
        self.model = SymbolModel(self.specs, self.settings)
        pickled = Types.PICKLED_BYTE_ARRAY()
        self.state = runtime_context.get_state(ValueStateDescriptor("model_state", pickled))
        self.pending = runtime_context.get_state(ValueStateDescriptor("pending_items", pickled))
        self._cache = {}

    def process_element1(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> None:
        # BAR_ROW_TYPE by position (rows of a Python map may arrive without field names)
        _kind, _symbol, ts, open_, high, low, close, volume, vwap, trades, interval_ms, _ = value
        end = int(ts) + int(interval_ms) - 1
        bar = (int(ts), open_, high, low, close, int(volume), vwap, int(trades), int(interval_ms))
        self._buffer(ctx.get_current_key(), (end, 1, ""), _BAR, bar)
        ctx.timer_service().register_event_time_timer(end)

    def process_element2(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> None:
        _kind, _symbol, ts, story_id, score, headline = value  # NEWS_ROW_TYPE by position
        news = (story_id, int(ts), float(score), headline)
        self._buffer(ctx.get_current_key(), (int(ts), 0, story_id), _NEWS, news)
        ctx.timer_service().register_event_time_timer(int(ts))

    def on_timer(self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext) -> Iterator[Row]:
        assert self.model is not None
        symbol: str = ctx.get_current_key()
        keyed = self._keyed(symbol)
        state = keyed.model
        if state is None:
            state = keyed.model = self.model.initial_state()
        stale_at = keyed.stale_at
        if timestamp == stale_at:
            keyed.stale_at = None
        out: list[events.Event] = []
        due = self._due(keyed, timestamp)
        for kind, item in due:
            if kind == _NEWS:
                story_id, ts, score, headline = item
                out.extend(
                    self.model.on_news(state, ScoredNews(story_id, symbol, ts, score, headline))
                )
            else:
                ts, open_, high, low, close, volume, vwap, trades, interval_ms = item
                bar = ClosedBar(
                    symbol=symbol,
                    ts=ts,
                    open=Decimal(open_),
                    high=Decimal(high),
                    low=Decimal(low),
                    close=Decimal(close),
                    volume=volume,
                    vwap=vwap,
                    trades=trades,
                    interval_ms=interval_ms,
                )
                out.extend(self.model.on_bar(state, bar))
        stale: list[events.Event] = []
        if ctx.timer_service().current_watermark() < MAX_WATERMARK:
            stale = self.model.check_stale(state, symbol, timestamp)
        last_end = state.get("last_end")
        if keyed.stale_at is None and last_end is not None:
            due_stale = last_end + self.settings.stale_after_ms
            if due_stale > timestamp:
                keyed.stale_at = due_stale
                ctx.timer_service().register_event_time_timer(due_stale)
        if due or stale or keyed.stale_at != stale_at:  # otherwise nothing changed
            self.state.update((state, keyed.stale_at))
        for event in (*out, *stale):
            yield output_row(self.topics[type(event).__name__], event)

    def _keyed(self, symbol: str) -> _Keyed:
        keyed = self._cache.get(symbol)
        if keyed is None:  # first touch of this key since the task (re)started
            model, stale_at = self.state.value() or (None, None)
            keyed = _Keyed(model, stale_at, self.pending.value() or [])
            self._cache[symbol] = keyed
        return keyed

    def _buffer(
        self, symbol: str, order: tuple[int, int, str], kind: str, item: tuple[Any, ...]
    ) -> None:
        keyed = self._keyed(symbol)
        keyed.pending.append((order, kind, item))
        self.pending.update(keyed.pending)

    def _due(self, keyed: _Keyed, timestamp: int) -> list[tuple[str, tuple[Any, ...]]]:
        """Buffered items at or before ``timestamp``, in event-time order, removed from the buffer.

        A story at time t is applied before a bar that ends after t (stories inside a bar's
        minute count for that bar)."""
        if not keyed.pending:
            return []
        due = [entry for entry in keyed.pending if entry[0][0] <= timestamp]
        if not due:
            return []
        keyed.pending = [entry for entry in keyed.pending if entry[0][0] > timestamp]
        if keyed.pending:
            self.pending.update(keyed.pending)
        else:
            self.pending.clear()
        due.sort(key=lambda entry: entry[0])
        return [(kind, item) for _order, kind, item in due]


class BarAnalyticsOperator(KeyedProcessFunction):  # type: ignore[misc]
    """``AnalyticsOperator`` for a job without news: one input, closed bars (``BAR_ROW_TYPE``)."""

    def __init__(self, analytics: AnalyticsOperator) -> None:
        self.analytics = analytics

    def open(self, runtime_context: RuntimeContext) -> None:
        self.analytics.open(runtime_context)

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> None:
        self.analytics.process_element1(value, ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Row]:
        return self.analytics.on_timer(timestamp, ctx)


_BAR, _NEWS = "bar", "news"


@dataclass
class _Keyed:
    """One symbol's live state in ``AnalyticsOperator``: the model state (None until its first
    bar or story), the time of its ``stale_feed`` timer (None: none set) and the buffered
    ``((due_ts, news 0 / bar 1, story id), kind, item)`` entries."""

    model: dict[str, Any] | None
    stale_at: int | None
    pending: list[tuple[tuple[int, int, str], str, tuple[Any, ...]]]
