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

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import FlatMapFunction, KeyedCoProcessFunction, RuntimeContext
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
    "BarDecoder",
    "NewsScorer",
    "StrategySpec",
    "bar_row",
    "output_row",
]


def output_row(topic: str, event: events.Event) -> Row:
    return Row(topic, event.key, events.encode(event), event.ts)


def bar_row(value: Row) -> Row:
    """A row of the job's own ``analytics`` view (bars built from trades) as a ``BAR_ROW_TYPE``."""
    return Row(
        "bar",
        value["symbol"],
        value["ts"],
        value["open"],
        value["high"],
        value["low"],
        value["close"],
        value["volume"],
        value["vwap"],
        value["trades"],
        value["interval_ms"],
        None,
    )


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
    """Keyed by symbol: input 1 closed bars (rows of the ``analytics`` view), input 2 news rows."""

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

    def open(self, runtime_context: RuntimeContext) -> None:
        self.model = SymbolModel(self.specs, self.settings)
        self.state = runtime_context.get_state(ValueStateDescriptor("model", Types.STRING()))
        self.pending = runtime_context.get_state(ValueStateDescriptor("pending", Types.STRING()))

    def process_element1(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> None:
        # BAR_ROW_TYPE by position (rows of a Python map may arrive without field names)
        _kind, _symbol, ts, open_, high, low, close, volume, vwap, trades, interval_ms, _ = value
        bar = {
            "ts": int(ts),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": int(volume),
            "vwap": vwap,
            "trades": int(trades),
            "interval_ms": int(interval_ms),
        }
        self._buffer("bars", bar)
        ctx.timer_service().register_event_time_timer(bar["ts"] + bar["interval_ms"] - 1)

    def process_element2(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> None:
        _kind, _symbol, ts, story_id, score, headline = value  # NEWS_ROW_TYPE by position
        news = {"id": story_id, "ts": int(ts), "sentiment": float(score), "headline": headline}
        self._buffer("news", news)
        ctx.timer_service().register_event_time_timer(news["ts"])

    def on_timer(self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext) -> Iterator[Row]:
        assert self.model is not None
        symbol: str = ctx.get_current_key()
        raw = self.state.value()
        state: dict[str, Any] = json.loads(raw) if raw else self.model.initial_state()
        out: list[events.Event] = []
        for kind, item in self._due(timestamp):
            if kind == "news":
                news = ScoredNews(
                    item["id"], symbol, item["ts"], item["sentiment"], item["headline"]
                )
                out.extend(self.model.on_news(state, news))
            else:
                bar = ClosedBar(
                    symbol=symbol,
                    ts=item["ts"],
                    open=Decimal(item["open"]),
                    high=Decimal(item["high"]),
                    low=Decimal(item["low"]),
                    close=Decimal(item["close"]),
                    volume=item["volume"],
                    vwap=item["vwap"],
                    trades=item["trades"],
                    interval_ms=item["interval_ms"],
                )
                out.extend(self.model.on_bar(state, bar))
                ctx.timer_service().register_event_time_timer(
                    bar.end_ts + self.settings.stale_after_ms
                )
        if ctx.timer_service().current_watermark() < MAX_WATERMARK:
            out.extend(self.model.check_stale(state, symbol, timestamp))
        self.state.update(json.dumps(state, separators=(",", ":")))
        for event in out:
            yield output_row(self.topics[type(event).__name__], event)

    def _buffer(self, kind: str, item: dict[str, Any]) -> None:
        raw = self.pending.value()
        pending: dict[str, list[dict[str, Any]]] = json.loads(raw) if raw else {}
        pending.setdefault(kind, []).append(item)
        self.pending.update(json.dumps(pending, separators=(",", ":")))

    def _due(self, timestamp: int) -> list[tuple[str, dict[str, Any]]]:
        """Buffered items at or before ``timestamp``, in event-time order, removed from the buffer.

        A story at time t is applied before a bar that ends after t (stories inside a bar's
        minute count for that bar)."""
        raw = self.pending.value()
        if not raw:
            return []
        pending: dict[str, list[dict[str, Any]]] = json.loads(raw)
        due: list[tuple[tuple[int, int, str], str, dict[str, Any]]] = []
        keep: dict[str, list[dict[str, Any]]] = {}
        for item in pending.get("news", []):
            if item["ts"] <= timestamp:
                due.append(((item["ts"], 0, item["id"]), "news", item))
            else:
                keep.setdefault("news", []).append(item)
        for item in pending.get("bars", []):
            end = item["ts"] + item["interval_ms"] - 1
            if end <= timestamp:
                due.append(((end, 1, ""), "bar", item))
            else:
                keep.setdefault("bars", []).append(item)
        if keep:
            self.pending.update(json.dumps(keep, separators=(",", ":")))
        else:
            self.pending.clear()
        due.sort(key=lambda entry: entry[0])
        return [(kind, item) for _key, kind, item in due]
