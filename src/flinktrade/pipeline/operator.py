"""The job's Python operators: news scoring, and the per-symbol analytics operator.

``NewsScorer`` decodes each ``market.news`` record, scores its sentiment (``flinktrade.sentiment``)
and fans it out to one row per symbol; ``BarDecoder`` decodes provider bars. A record either cannot
use, for whatever reason (any exception, not only a failed validation), becomes a dead letter.

``AnalyticsOperator`` is keyed by symbol and joins two inputs, closed bars and scored news, in
event-time order: both are buffered and applied when the watermark passes them (a bar at its end, a
story at its time), so a story is always folded in before the bars that close after it, whatever
order the two streams arrive in. An item that arrives behind the watermark already (its input was
idle while the other moved the watermark on) is applied at once rather than left for a timer. In a
job whose only input is its own window's bars (no news, no provider bars), ``BundledBarOperator``
takes them in bundles, one per minute and bucket of symbols, and applies each bar at once: there
is nothing to order it against, and one Python call serves the whole bundle.
The per-symbol logic itself is ``analytics.SymbolModel``; its state lives as Python objects and is
written to Flink keyed state as the model's ``snapshot`` (plain values, cheap to pickle),
checkpointed and restored with the job: by ``AnalyticsOperator`` after each change, by
``BundledBarOperator`` once per checkpoint (at the marker ``MinuteBars`` sends ahead of the
barrier) for the symbols changed since the last.

No bar or story can fail the job: a bar whose prices break the event bounds (``events.Price``,
low <= open, close <= high) is refused before the model sees it, and any exception the model
raises on a bar or a story is caught. Either way the item becomes a dead letter plus a ``bad_bar``
(or ``bad_news``) alert, the symbol's state is as if the item had never come, and the job goes on.

Every output (bars with indicators, signals, alerts, dead letters) leaves as one row type,
``OUTPUT_ROW_TYPE``, already encoded, with the topic it goes to; ``BundledBarOperator`` packs its
outputs in lots (``OUTPUT_LOT_TYPE``), which Java unpacks into those rows.

For latency work only: with ``FLINKTRADE_STAGE_LOG`` set to a file path, the analytics operator
appends one line per stage of each bar to it (wall-clock microseconds, the stage, the symbol, the
bar's or timer's event time, the operator's watermark): ``in`` when a bar reaches the operator,
``timer`` when its timer fires, ``emit`` when the model is done and the outputs start to leave,
``out`` when they have left. That is ``StageLoggedAnalyticsOperator``, which
``AnalyticsOperator(...)`` makes instead when the variable is set; unset (always, in production)
the operator has no per-bar check for it. ``BundledBarOperator(...)`` likewise makes a
``StageLoggedBundledBarOperator``, which logs per bundle and per lot of bars rather than per bar.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import struct
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import (
    FlatMapFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor

from flinktrade import events
from flinktrade.config import AnalyticsSettings
from flinktrade.events import DeadLetter
from flinktrade.pipeline.analytics import StrategySpec, SymbolModel
from flinktrade.pipeline.connectors import BAR_INTERVAL_MS, BUNDLE_FIELDS, MAX_AHEAD_MS
from flinktrade.pipeline.due import BAR as _BAR
from flinktrade.pipeline.due import NEWS as _NEWS
from flinktrade.pipeline.due import PROVIDER, STALE, DueItems
from flinktrade.pipeline.due import failure_reason as _reason

log = logging.getLogger(__name__)

MAX_WATERMARK = 9_223_372_036_854_775_807  # Long.MAX_VALUE: end of a bounded input
STATE_FORMAT = "snapshot-1"
"""First element of the ``model_state`` value: ``(STATE_FORMAT, SymbolModel.snapshot(...),
stale_feed time)``."""
MAX_HEADLINE_CHARS = 1_000
"""Headlines are cut to this for the operator (they only feed alert messages), so a huge story
cannot bloat keyed state."""

OUTPUT_ROW_TYPE = Types.ROW_NAMED(
    ["topic", "k", "payload", "ts"],
    [
        Types.STRING(),
        Types.PRIMITIVE_ARRAY(Types.BYTE()),
        Types.PRIMITIVE_ARRAY(Types.BYTE()),
        Types.LONG(),
    ],
)
OUTPUT_LOT_TYPE = Types.ROW_NAMED(["outputs"], [Types.PRIMITIVE_ARRAY(Types.BYTE())])
"""What ``BundledBarOperator`` hands Flink: a lot of ``OUTPUT_ROW_TYPE`` rows in one row, packed
(``pack_outputs``), which the Java ``OutputLots`` (``jvm/udf``) chained behind it unpacks. One
crossing into the JVM per lot of ``HAND_OVER_BARS`` bars instead of one per output: each row
crossing cost the task thread ~20-35 us of CPU in a live minute (docs/benchmarks.md, session 25)."""
_TOPIC = struct.Struct("<H")
_LENGTH = struct.Struct("<i")
_TS = struct.Struct("<q")


def pack_outputs(outputs: Iterable[tuple[str, bytes | None, bytes, int]]) -> bytes:
    """``(topic, key, payload, ts)`` rows as one ``bytes``, each little-endian: the topic's UTF-8
    length (u16) and bytes, the key's length (i32, -1 for none) and bytes, the payload's length
    (i32) and bytes, the timestamp (i64). ``OutputLots.java`` reads it; ``unpack_outputs`` is
    its Python twin (tests)."""
    parts: list[bytes] = []
    for topic, key, payload, ts in outputs:
        name = topic.encode()
        parts += (_TOPIC.pack(len(name)), name)
        if key is None:
            parts.append(_LENGTH.pack(-1))
        else:
            parts += (_LENGTH.pack(len(key)), key)
        parts += (_LENGTH.pack(len(payload)), payload, _TS.pack(ts))
    return b"".join(parts)


def unpack_outputs(data: bytes) -> list[tuple[str, bytes | None, bytes, int]]:
    """The rows ``pack_outputs`` packed, as ``OutputLots.java`` reads them."""
    out: list[tuple[str, bytes | None, bytes, int]] = []
    at = 0
    while at < len(data):
        (size,) = _TOPIC.unpack_from(data, at)
        topic = data[at + 2 : at + 2 + size].decode()
        at += 2 + size
        (size,) = _LENGTH.unpack_from(data, at)
        key = None if size < 0 else data[at + 4 : at + 4 + size]
        at += 4 + max(size, 0)
        (size,) = _LENGTH.unpack_from(data, at)
        payload = data[at + 4 : at + 4 + size]
        at += 4 + size
        (ts,) = _TS.unpack_from(data, at)
        at += 8
        out.append((topic, key, payload, ts))
    return out


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
"""Closed bars on their way to ``AnalyticsOperator``: ``kind`` is ``bar`` (``text`` is
``PROVIDER`` for a provider bar, else None), or ``dead`` with the encoded dead letter in ``text``.
Prices are exact decimal strings."""
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
    "BundledBarOperator",
    "DueItems",
    "NewsScorer",
    "StrategySpec",
    "output_row",
]


YOUNG_COLLECTION_THRESHOLD = 20_000
"""Container allocations between two young-generation collections in a task's interpreter
(Python's default is 700). See ``collect_less``."""


def collect_less() -> None:
    """The garbage collector's settings for the job's Python operators, applied in each ``open``.

    Per bar the operators make many short-lived containers and, for a whole bundle, the values
    they write to state; with Python's default thresholds the collector ran every ~50 bars and
    walked them, and every few minutes a full collection walked every object of the task's
    interpreter (PyFlink, Apache Beam, pydantic and the states: hundreds of thousands), all while a
    minute's bars waited. Here everything loaded when the task opens is moved out of the
    collector's reach for good (``gc.freeze``: modules, classes, the model; nothing of it becomes
    garbage), and the young generation is collected every ``YOUNG_COLLECTION_THRESHOLD``
    allocations instead of 700. Garbage is still collected, only less often; the older
    generations' thresholds are Python's. Idempotent; it changes nothing but the collector."""
    gc.freeze()
    young, *older = gc.get_threshold()
    if young and young < YOUNG_COLLECTION_THRESHOLD:  # 0: collection is off; leave it so
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *older)


def output_row(topic: str, event: events.Event) -> Row:
    return Row(topic, event.key, events.encode(event), event.ts)


def _dead_letter(value: Row, source_topic: str, exc: Exception) -> DeadLetter:
    """The dead letter of one raw Kafka row (``value``, ``partition``, ``offset``, ``ts``)."""
    return DeadLetter.of(
        source_topic,
        _reason(exc),
        bytes(value["value"] or b""),
        ts=int(value["ts"]),
        partition=int(value["partition"]),
        offset=int(value["offset"]),
    )


class BarDecoder(FlatMapFunction):  # type: ignore[misc]
    """``market.bars`` records (provider bars) -> ``BAR_ROW_TYPE`` rows, or dead letters.

    A bar must also start within ``max_ahead_ms`` of its record's timestamp (``record_ts``, when
    the input row has it): a far-future bar would otherwise hold the watermark of its topic."""

    def __init__(self, source_topic: str, max_ahead_ms: int = MAX_AHEAD_MS) -> None:
        self.source_topic = source_topic
        self.max_ahead_ms = max_ahead_ms

    def flat_map(self, value: Row) -> Iterator[Row]:
        try:
            row = self._decode(value)
        except Exception as exc:  # any record it cannot use is a dead letter
            letter = _dead_letter(value, self.source_topic, exc)
            yield Row("dead", "", letter.ts, None, None, None, None, 0, None, 0, 0,
                      events.encode(letter).decode())  # fmt: skip
            return
        yield row

    def _decode(self, value: Row) -> Row:
        bar = events.decode(events.Bar, bytes(value["value"] or b""))
        record_ts = _field(value, "record_ts")
        if record_ts is not None and bar.ts > int(record_ts) + self.max_ahead_ms:
            raise events.DecodeError(
                f"ts: {bar.ts} is more than {self.max_ahead_ms} ms ahead of the record"
                f" timestamp {int(record_ts)}"
            )
        return Row(
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
            PROVIDER,
        )


def _field(row: Row, name: str) -> Any:
    try:
        return row[name]
    except (KeyError, ValueError, IndexError):
        return None


class NewsScorer(FlatMapFunction):  # type: ignore[misc]
    """``market.news`` records -> one ``news`` row per symbol, or one ``dead`` row (a dead letter).

    Input rows: ``value`` (bytes), ``partition``, ``offset``, ``ts`` (record time, epoch ms)."""

    def __init__(self, source_topic: str) -> None:
        self.source_topic = source_topic

    def open(self, runtime_context: RuntimeContext) -> None:
        from flinktrade import sentiment

        self._score = sentiment.score
        collect_less()

    def flat_map(self, value: Row) -> Iterator[Row]:
        try:
            item = events.decode(events.NewsItem, bytes(value["value"] or b""))
            if not item.symbols:
                raise events.DecodeError("news item names no symbol")
            score = float(self._score(item.headline, item.summary))
            if not -1.0 <= score <= 1.0:  # also refuses NaN
                raise ValueError(f"sentiment score {score} outside [-1, 1]")
        except Exception as exc:  # any record it cannot use is a dead letter
            letter = _dead_letter(value, self.source_topic, exc)
            yield Row("dead", "", letter.ts, "", 0.0, events.encode(letter).decode())
            return
        headline = item.headline[:MAX_HEADLINE_CHARS]
        for symbol in dict.fromkeys(item.symbols):
            yield Row("news", symbol, item.ts, item.id, score, headline)


class AnalyticsOperator(KeyedCoProcessFunction):  # type: ignore[misc]
    """Keyed by symbol: input 1 closed bars (``BAR_ROW_TYPE``), input 2 news rows.

    Per symbol it keeps in Flink keyed state, pickled (``PICKLED_BYTE_ARRAY``), the model state as
    ``(STATE_FORMAT, SymbolModel.snapshot(state), time of the pending stale_feed timer)`` and the
    items waiting for the watermark, one map entry each (``n -> (order, kind, item)``, ``n`` its
    arrival, a ``LONG``: a pickled key would be a Java ``byte[]``, which the heap state backend
    compares by identity, so ``remove`` would not find it): an item costs one small write when it
    comes and one when it is applied, however many wait beside it (a catch-up's lagging watermark
    holds ~20 a symbol; a list rewritten per item cost the task ~200 us a bar, docs/benchmarks.md,
    session 32). Checkpoints from before that hold the items as one list (``pending_items``),
    which a symbol's first touch moves into the map. It also keeps them as live Python objects in
    a per-key cache, so a bar costs one snapshot and its pickle, and no decoding at all. The cache
    is only ever written through (every change also goes to Flink state), and a restarted or
    restored task starts with an empty one and reads Flink state (``SymbolModel.restore``), so
    checkpoints stay the truth. A stored value it cannot read is logged as an error and that
    symbol starts afresh; it is never taken for a state.

    ``stale_feed`` needs a timer at the last bar's end + ``stale_after_ms``. Rather than one timer
    per bar, one timer per symbol chases that time: when it fires early (bars came meanwhile) it is
    set again for the latest bar. Flink fires a timer set inside ``on_timer`` within the same
    watermark step, in time order, so alerts come out as with a timer per bar, for fewer calls.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> AnalyticsOperator:
        """A ``StageLoggedAnalyticsOperator`` instead when ``FLINKTRADE_STAGE_LOG`` is set."""
        made: AnalyticsOperator = _stage_logged(
            cls, AnalyticsOperator, StageLoggedAnalyticsOperator
        )
        return made

    def __init__(
        self,
        specs: Sequence[StrategySpec],
        settings: AnalyticsSettings,
        topics: Mapping[str, str],
        sources: Mapping[str, str] | None = None,
    ) -> None:
        """``topics``: event class name -> the topic it goes to; ``sources``: the input topics
        (``trades``, ``bars``, ``news``), named as the source of a refused item's dead letter."""
        self.specs = list(specs)
        self.settings = settings
        self.topics = dict(topics)  # event class name -> topic
        self.sources = dict(sources or {})
        self.model: SymbolModel | None = None
        self.items: DueItems | None = None
        self.state: Any = None
        self.pending: Any = None
        self.listed_pending: Any = None
        self._cache: dict[str, _Keyed] = {}

    def open(self, runtime_context: RuntimeContext) -> None:
        self.model = SymbolModel(self.specs, self.settings)
        self.items = DueItems(self.model, self.sources)
        pickled = Types.PICKLED_BYTE_ARRAY()
        self.state = runtime_context.get_state(ValueStateDescriptor("model_state", pickled))
        self.pending = runtime_context.get_map_state(
            MapStateDescriptor("waiting_items", Types.LONG(), pickled)
        )
        self.listed_pending = runtime_context.get_state(
            ValueStateDescriptor("pending_items", pickled)
        )
        self._cache = {}
        collect_less()

    def process_element1(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> Iterator[Row]:
        end, bar = _bar_item(value)
        if end <= ctx.timer_service().current_watermark():
            yield from self._late(ctx, _BAR, bar)
            return
        self._buffer(ctx.get_current_key(), (end, 1, ""), _BAR, bar)
        ctx.timer_service().register_event_time_timer(end)

    def process_element2(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> Iterator[Row]:
        _kind, _symbol, ts, story_id, score, headline = value  # NEWS_ROW_TYPE by position
        news = (story_id, int(ts), float(score), headline)
        if int(ts) <= ctx.timer_service().current_watermark():
            yield from self._late(ctx, _NEWS, news)
            return
        self._buffer(ctx.get_current_key(), (int(ts), 0, story_id), _NEWS, news)
        ctx.timer_service().register_event_time_timer(int(ts))

    def _late(
        self, ctx: KeyedCoProcessFunction.Context, kind: str, item: tuple[Any, ...]
    ) -> Iterator[Row]:
        """An item applied at once, being behind the watermark (its input was idle or slow while
        the other one moved the watermark on). A timer
        for a late item would fire at the next watermark only, and there is none after the end of
        a bounded input, so it would be lost. Every buffered item is later than the watermark, so
        applying it now keeps event-time order; a bar older than the symbol's last applied bar is
        refused by ``DueItems`` (a dead letter)."""
        assert self.model is not None and self.items is not None
        symbol: str = ctx.get_current_key()
        keyed = self._keyed(symbol)
        state = keyed.model
        if state is None:
            state = keyed.model = self.model.initial_state()
        state, out = self.items.apply(state, symbol, [(kind, item)], self._stored_model)
        keyed.model = state
        self._arm_stale(keyed, state, ctx.timer_service().current_watermark(), ctx)
        self._write(state, keyed.stale_at)
        for event in out:
            yield output_row(self.topics[type(event).__name__], event)

    def on_timer(self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext) -> Iterator[Row]:
        for event in self._fire(timestamp, ctx):
            yield output_row(self.topics[type(event).__name__], event)

    def _fire(
        self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext
    ) -> list[events.Event]:
        """The timer's work up to its outputs: the due items applied, the state written."""
        assert self.model is not None and self.items is not None
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
        if due:
            state, applied = self.items.apply(state, symbol, due, self._stored_model)
            keyed.model = state
            out.extend(applied)
        stale: list[events.Event] = []
        if ctx.timer_service().current_watermark() < MAX_WATERMARK:
            stale = self.model.check_stale(state, symbol, timestamp)
        self._arm_stale(keyed, state, timestamp, ctx)
        if due or stale or keyed.stale_at != stale_at:  # otherwise nothing changed
            self._write(state, keyed.stale_at)
        out.extend(stale)
        return out

    def _arm_stale(
        self, keyed: _Keyed, state: dict[str, Any], now: int, ctx: KeyedCoProcessFunction.Context
    ) -> None:
        """Set the symbol's one ``stale_feed`` timer for its last bar, unless one is set or due."""
        due = arm_stale(keyed, state, self.settings.stale_after_ms, now)
        if due is not None:
            ctx.timer_service().register_event_time_timer(due)

    def _write(self, state: dict[str, Any], stale_at: int | None) -> None:
        """The current key's model state and ``stale_feed`` time to Flink state, as the model's
        snapshot (plain values: its pickle costs a fraction of the live objects')."""
        assert self.model is not None
        self.state.update((STATE_FORMAT, self.model.snapshot(state), stale_at))

    def _read(self, symbol: str) -> tuple[dict[str, Any] | None, int | None]:
        """The current key's ``(model state, stale_feed time)`` from Flink state, a new object
        (``stored_state``)."""
        assert self.model is not None
        return stored_state(self.model, self.state.value(), symbol)

    def _stored_model(self) -> dict[str, Any] | None:
        """The current key's model state as Flink state holds it (as of this timer's start)."""
        return self._read("")[0]

    def _keyed(self, symbol: str) -> _Keyed:
        keyed = self._cache.get(symbol)
        if keyed is None:  # first touch of this key since the task (re)started
            model, stale_at = self._read(symbol)
            keyed = _Keyed(model, stale_at, self._stored_pending())
            keyed.next_item = keyed.pending[-1][1] + 1 if keyed.pending else 0  # in arrival order
            self._cache[symbol] = keyed
        return keyed

    def _stored_pending(self) -> list[_Pending]:
        """The current key's waiting items from Flink state, in arrival order; those a checkpoint
        from before the map holds as one list are moved into the map (after any already there)."""
        entries = sorted(
            ((order, n, kind, item) for n, (order, kind, item) in self.pending.items()),
            key=lambda entry: entry[1],
        )
        listed = self.listed_pending.value()
        if listed:
            n = entries[-1][1] + 1 if entries else 0
            for order, kind, item in listed:
                self.pending.put(n, (order, kind, item))
                entries.append((order, n, kind, item))
                n += 1
            self.listed_pending.clear()
        return entries

    def _buffer(
        self, symbol: str, order: tuple[int, int, str], kind: str, item: tuple[Any, ...]
    ) -> None:
        keyed = self._keyed(symbol)
        n = keyed.next_item
        keyed.next_item += 1
        keyed.pending.append((order, n, kind, item))
        self.pending.put(n, (order, kind, item))

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
            for _order, n, _kind, _item in due:
                self.pending.remove(n)
        else:
            self.pending.clear()
            keyed.next_item = 0
        due.sort(key=lambda entry: (entry[0], entry[1]))  # event time, then arrival
        return [(kind, item) for _order, _n, kind, item in due]


class BarAnalyticsOperator(KeyedProcessFunction):  # type: ignore[misc]
    """``AnalyticsOperator`` for a job without news but with provider bars: one input, closed bars
    (``BAR_ROW_TYPE``, the window's and the provider's, which it orders by event time)."""

    def __init__(self, analytics: AnalyticsOperator) -> None:
        self.analytics = analytics

    def open(self, runtime_context: RuntimeContext) -> None:
        self.analytics.open(runtime_context)

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Row]:
        return self.analytics.process_element1(value, ctx)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Row]:
        return self.analytics.on_timer(timestamp, ctx)


class BundledBarOperator(KeyedProcessFunction):  # type: ignore[misc]
    """The analytics of a job whose only input is its own window's bars, one Python call per bundle.

    The bars come in bundles (``MinuteBars.java``, bundled): every bar of one minute whose symbol falls
    in one bucket, in one row, keyed by the bucket. PyFlink costs several times our own per-bar
    Python for each record it hands over, each state access and each timer; a bundle pays that
    once for all its bars: the model states of a bucket are one ``MapState`` (symbol -> the value
    ``AnalyticsOperator`` keeps per symbol), written with one ``put_all`` per ``HAND_OVER_BARS``
    bars, each time followed by those bars' outputs, and a bucket has one ``stale_feed`` timer per
    due time, not one per symbol.

    Each bar is applied at once (the window emits a symbol's bars in time order, once the watermark
    has passed them: there is nothing to order them against): after the ``stale_feed`` checks a
    timer would have made before it (``stale_before``), through ``DueItems`` (a refused bar or a
    model failure is a dead letter and a ``bad_bar`` alert, the symbol's state as if the bar had
    never come). Per symbol the outputs are those of the per-symbol operator, in the same order.
    A line it cannot read is a dead letter; the rest of the bundle goes on. The outputs leave in
    lots of ``HAND_OVER_BARS`` bars, as the bundle goes.

    The live states of a bucket are kept as Python objects and written to the map state when a
    checkpoint marker comes (``(bucket, None)``: ``MinuteBars.Marked`` sends one per bucket ahead
    of each checkpoint's aligned barrier, and at the end of the input), those changed since the
    last marker in one ``put_all``: a checkpoint has every state as of its barrier, and a bar
    costs no state write of its own (a symbol's state written once per checkpoint, not once per
    bar). What a symbol's bars and ``stale_feed`` checks did since its last write is kept
    (``_Keyed.journal``) to rebuild its state before a bar the model fails on (``DueItems``
    applies them again to the stored state); a symbol with ``JOURNAL_LIMIT`` of them is written
    at once. A restarted or restored task reads a bucket's whole map at its first touch.

    The buckets are fixed by ``JobOptions.bar_buckets`` (``ParseTrades.bucket``: Java's
    ``String.hashCode`` modulo the count): a restore with another count finds a moved symbol's
    state in its old bucket only: that value is removed with a warning, and the symbol starts
    afresh."""

    def __new__(cls, *args: Any, **kwargs: Any) -> BundledBarOperator:
        """A ``StageLoggedBundledBarOperator`` instead when ``FLINKTRADE_STAGE_LOG`` is set."""
        made: BundledBarOperator = _stage_logged(
            cls, BundledBarOperator, StageLoggedBundledBarOperator
        )
        return made

    def __init__(self, analytics: AnalyticsOperator, buckets: int = 1) -> None:
        self.analytics = analytics
        """Whose strategies, settings, output topics and source topics it runs with."""
        self.buckets = buckets
        """The job's bucket count (``ParseTrades.bucket``), to tell a restore with another."""

    def open(self, runtime_context: RuntimeContext) -> None:
        spec = self.analytics
        self.model = SymbolModel(spec.specs, spec.settings)
        self.items = DueItems(self.model, spec.sources)
        self.topics = spec.topics
        self.source = spec.sources.get("trades", "trades")
        self.stale_after_ms = spec.settings.stale_after_ms
        self.states = runtime_context.get_map_state(
            MapStateDescriptor("model_states", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        )
        self._buckets: dict[int, dict[str, _Keyed]] = {}
        self._changed: dict[int, dict[str, _Keyed]] = {}
        """Per bucket, the symbols whose states changed since its last checkpoint marker."""
        self._timers: dict[int, set[int]] = {}
        """Per bucket, the stale timers this task has set (Flink keeps one per time anyway)."""
        collect_less()

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Row]:
        bucket: int = ctx.get_current_key()
        if value[1] is None:  # a checkpoint marker (a bundle always has lines)
            self._write(bucket)
            return
        symbols = self._symbols(bucket)
        changed = self._changed.setdefault(bucket, {})
        watermark = ctx.timer_service().current_watermark()
        out: list[events.Event] = []
        bars = 0
        for line in str(value[1]).split("\n"):
            try:
                symbol, item = _bundle_item(line)
            except Exception as exc:  # cannot happen from MinuteBars; never fails the job
                out.append(DeadLetter.of(self.source, f"bar bundle line: {_reason(exc)}", line,
                                         ts=0))  # fmt: skip
                continue
            keyed = symbols.get(symbol)
            if keyed is None:
                keyed = symbols[symbol] = _Keyed(None, None, [])
            journal = keyed.journal
            out.extend(stale_before(self.model, keyed, symbol, item[0] + item[8] - 1, journal))
            state = keyed.model
            if state is None:
                state = keyed.model = self.model.initial_state()
            state, applied = self.items.apply(
                state, symbol, [(_BAR, item)], functools.partial(self._stored, keyed, symbol),
                journal,
            )  # fmt: skip
            keyed.model = state
            out.extend(applied)
            self._arm_stale(bucket, keyed, watermark, ctx)
            changed[symbol] = keyed
            if len(journal) >= JOURNAL_LIMIT:
                self.states.put(symbol, self._record(keyed))
                journal.clear()
            bars += 1
            if bars >= HAND_OVER_BARS:  # these bars' outputs leave now, not at the end
                yield from self._handed(out, bars)
                out, bars = [], 0
        yield from self._handed(out, bars)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Row]:
        """The bucket's ``stale_feed`` checks due at ``timestamp``, with ``AnalyticsOperator._fire``'s
        chase per symbol (none at the end of a bounded input)."""
        bucket: int = ctx.get_current_key()
        self._timers.get(bucket, set()).discard(timestamp)
        final = ctx.timer_service().current_watermark() >= MAX_WATERMARK
        changed = self._changed.setdefault(bucket, {})
        out: list[events.Event] = []
        for symbol, keyed in self._symbols(bucket).items():
            if keyed.stale_at is None or keyed.stale_at > timestamp or keyed.model is None:
                continue
            at, keyed.stale_at = keyed.stale_at, None
            if not final:
                out.extend(self.model.check_stale(keyed.model, symbol, at))
                keyed.journal.append((STALE, (at,)))
            self._arm_stale(bucket, keyed, timestamp, ctx)
            changed[symbol] = keyed
        yield from self._handed(out, 0)

    def _write(self, bucket: int) -> None:
        """The bucket's states changed since its last marker to Flink state, in one call."""
        changed = self._changed.pop(bucket, None)
        if changed:
            self.states.put_all({symbol: self._record(keyed) for symbol, keyed in changed.items()})
            for keyed in changed.values():
                keyed.journal.clear()

    def _handed(self, out: list[events.Event], bars: int) -> Iterator[Row]:
        """The outputs of ``bars`` bars as one lot (``OUTPUT_LOT_TYPE``), if any."""
        if out:
            yield self._lot(out)

    def _lot(self, out: list[events.Event]) -> Row:
        """``out`` encoded and packed as one ``OUTPUT_LOT_TYPE`` row."""
        topics = self.topics
        return Row(pack_outputs(
            (topics[type(event).__name__], event.key, events.encode(event), event.ts)
            for event in out
        ))  # fmt: skip

    def _symbols(self, bucket: int) -> dict[str, _Keyed]:
        """The bucket's live symbol states, read from Flink state at its first touch since the
        task (re)started."""
        symbols = self._buckets.get(bucket)
        if symbols is None:
            symbols = {}
            moved = []
            for symbol, stored in self.states.items():
                if java_bucket(symbol, self.buckets) != bucket:
                    moved.append(symbol)  # its bars come in another bucket now
                    continue
                model, stale_at = stored_state(self.model, stored, symbol)
                symbols[symbol] = _Keyed(model, stale_at, [])
            for symbol in moved:  # never read again: its bucket's map would keep it for ever
                self.states.remove(symbol)
            if moved:
                log.warning(
                    "bucket %d holds the state of %d symbols that are no longer in it (%s): the"
                    " state was written with another bucket count than %d, and they start afresh",
                    bucket, len(moved), ", ".join(sorted(moved)[:5]), self.buckets,
                )  # fmt: skip
            self._buckets[bucket] = symbols
        return symbols

    def _stored(self, keyed: _Keyed, symbol: str) -> dict[str, Any] | None:
        """The symbol's model state before its bar now applied (the roll-back point of a failure):
        Flink state's, with what ``keyed.journal`` holds applied again."""
        stored = stored_state(self.model, self.states.get(symbol), symbol)[0]
        return self.items.rebuilt(stored, symbol, keyed.journal) if keyed.journal else stored

    def _record(self, keyed: _Keyed) -> tuple[str, dict[str, Any], int | None]:
        """The value kept for a symbol (``AnalyticsOperator``'s): pickled when it is put, before
        the symbol's state changes again (the snapshot shares its plain values)."""
        assert keyed.model is not None
        return (STATE_FORMAT, self.model.snapshot(keyed.model), keyed.stale_at)

    def _arm_stale(
        self, bucket: int, keyed: _Keyed, now: int, ctx: KeyedProcessFunction.Context
    ) -> None:
        """Set the symbol's ``stale_feed`` time for its last bar unless one is set or due; the
        bucket's timer for that time is set once."""
        assert keyed.model is not None
        due = arm_stale(keyed, keyed.model, self.stale_after_ms, now)
        timers = self._timers.setdefault(bucket, set())
        if due is not None and due not in timers:
            timers.add(due)
            ctx.timer_service().register_event_time_timer(due)


HAND_OVER_BARS = 16
"""``BundledBarOperator`` hands the outputs over after every this many bars of a bundle, not once
at its end: PyFlink takes the outputs as they are yielded and the sink sends them on at once, so a
minute's first bars no longer wait for its last (a bundle of 500 bars takes ~50 ms of Python)."""
JOURNAL_LIMIT = 256
"""``BundledBarOperator`` writes a symbol's state at once when this many bars and ``stale_feed``
checks have changed it since its last write (a bound on its journal, and on a roll-back's work,
whatever the checkpoint interval)."""


def java_bucket(symbol: str, buckets: int) -> int:
    """``ParseTrades.bucket(symbol, buckets)`` of the job's Java trade path: Java's ``String.hashCode`` of the symbol
    (UTF-16 code units), ``Math.floorMod`` the count; 0 for a count below 1."""
    if buckets < 1:
        return 0
    h = 0
    units = symbol.encode("utf-16-be")
    for i in range(0, len(units), 2):
        h = (31 * h + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    if h >= 2**31:
        h -= 2**32
    return h % buckets


def _bundle_item(line: str) -> tuple[str, tuple[Any, ...]]:
    """``(symbol, its due bar item)`` from one line of a bundle (``connectors.BUNDLE_FIELDS``)."""
    fields = line.split("\t")
    if len(fields) != BUNDLE_FIELDS:
        raise ValueError(f"{len(fields)} fields, not {BUNDLE_FIELDS}")
    symbol, ts, open_, high, low, close, volume, vwap, trades = fields
    bar = (int(ts), open_, high, low, close, int(volume), float(vwap) if vwap else None,
           int(trades), BAR_INTERVAL_MS)  # fmt: skip
    return symbol, bar


STAGE_LOG_ENV = "FLINKTRADE_STAGE_LOG"


def _stage_logged(cls: type, plain: type, logged: type) -> Any:
    """A new, uninitialised ``cls``; a ``logged`` one instead (with the log's path) when ``cls`` is
    ``plain`` and ``FLINKTRADE_STAGE_LOG`` is set, so the plain class has no check for it."""
    path = os.environ.get(STAGE_LOG_ENV)
    if cls is plain and path:
        staged: Any = object.__new__(logged)
        staged.path = path
        return staged
    return object.__new__(cls)


class _StageLogFile:
    """The file a stage-logged operator appends to: ``path`` is set where the operator is made
    (``_stage_logged``), the file opened in the task (``open``, before the operator's own)."""

    path = ""
    """The file (from the environment where the operator was made)."""
    _log: IO[str] | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)  # type: ignore[misc]
        self._log = Path(self.path).open("a", buffering=1) if self.path else None  # noqa: SIM115


class StageLoggedAnalyticsOperator(_StageLogFile, AnalyticsOperator):
    """``AnalyticsOperator`` that also appends per-stage timestamps to the file named by
    ``FLINKTRADE_STAGE_LOG`` (see the module docstring). ``AnalyticsOperator(...)`` makes one of
    these when that variable is set, so the production class has no per-bar check for it."""

    def _stage(self, stage: str, symbol: str, event_ts: int, watermark: int) -> None:
        if self._log is not None:
            self._log.write(f"{time.time_ns() // 1000} {stage} {symbol} {event_ts} {watermark}\n")

    def process_element1(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> Iterator[Row]:
        self._stage("in", value[1], value[2], ctx.timer_service().current_watermark())
        return super().process_element1(value, ctx)

    def on_timer(self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext) -> Iterator[Row]:
        symbol: str = ctx.get_current_key()
        self._stage("timer", symbol, timestamp, ctx.timer_service().current_watermark())
        out = self._fire(timestamp, ctx)
        self._stage("emit", symbol, timestamp, 0)
        for event in out:
            yield output_row(self.topics[type(event).__name__], event)
        self._stage("out", symbol, timestamp, 0)


class StageLoggedBundledBarOperator(_StageLogFile, BundledBarOperator):
    """``BundledBarOperator`` that also appends to the file named by ``FLINKTRADE_STAGE_LOG`` (see
    the module docstring), per bundle: ``bundle`` when it reaches the operator (the bucket, the
    bundle's minute, the operator's watermark, its bar count; ``timer`` for a ``stale_feed``
    timer, its time for the minute), ``lot`` when a lot of bars is done and its outputs start to
    leave (the lot's bars and outputs), ``encoded`` when they are encoded, ``sent`` when Flink
    has taken them, and ``end`` after the bundle's last; ``mark`` when a checkpoint marker comes
    (the number of states to write) and ``put`` when they are written. Each line is ``wall stage
    bucket minute a b cpu``: the wall clock and the task thread's CPU time
    (``time.thread_time_ns``; in thread mode the Python runs on the task's thread, so the JVM's
    share of each hand-over counts too), both in microseconds. ``BundledBarOperator(...)`` makes
    one of these when that variable is set."""

    _at: tuple[int, int] = (0, 0)

    def _stage(self, stage: str, a: int, b: int) -> None:
        if self._log is not None:
            bucket, minute = self._at
            wall, cpu = time.time_ns() // 1000, time.thread_time_ns() // 1000
            self._log.write(f"{wall} {stage} {bucket} {minute} {a} {b} {cpu}\n")

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Row]:
        if value[1] is None:  # a checkpoint marker: ``_write`` logs it
            yield from super().process_element(value, ctx)
            return
        lines = str(value[1])
        minute = [*lines.split("\t", 2), "", ""][1]  # the first line's ts
        self._at = (ctx.get_current_key(), int(minute) if minute.isdigit() else 0)
        self._stage("bundle", ctx.timer_service().current_watermark(), lines.count("\n") + 1)
        yield from super().process_element(value, ctx)
        self._stage("end", 0, 0)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Row]:
        self._at = (ctx.get_current_key(), timestamp)
        self._stage("timer", ctx.timer_service().current_watermark(), 0)
        yield from super().on_timer(timestamp, ctx)
        self._stage("end", 0, 0)

    def _handed(self, out: list[events.Event], bars: int) -> Iterator[Row]:
        """``BundledBarOperator._handed`` in two logged steps: the outputs encoded and packed,
        the lot handed over."""
        self._stage("lot", bars, len(out))
        lot = self._lot(out) if out else None
        self._stage("encoded", bars, len(out))
        if lot is not None:
            yield lot
        self._stage("sent", bars, len(out))

    def _write(self, bucket: int) -> None:
        """``BundledBarOperator._write``, logged: ``mark`` as the marker comes, ``put`` when the
        states are written (their number)."""
        self._at = (bucket, 0)
        self._stage("mark", len(self._changed.get(bucket, ())), 0)
        super()._write(bucket)
        self._stage("put", 0, 0)


def arm_stale(keyed: _Keyed, state: dict[str, Any], limit: int, now: int) -> int | None:
    """Set ``keyed.stale_at`` for the state's last bar unless one is set or that time is not after
    ``now``; the time it set (a timer is due for it), or None."""
    last_end = state.get("last_end")
    if keyed.stale_at is not None or last_end is None or last_end + limit <= now:
        return None
    keyed.stale_at = last_end + limit
    return keyed.stale_at


def stale_before(
    model: SymbolModel, keyed: _Keyed, symbol: str, end: int, journal: list[Any] | None = None
) -> list[events.Event]:
    """The ``stale_feed`` checks due before ``end`` (a bar's last millisecond) for one symbol
    whose one stale timer is ``keyed.stale_at``, made on its state in place, with the timer's
    chase: a check that finds a newer bar sets the next due time, which is checked in turn while
    it is before ``end``. Flink would fire those timers before the bar's own (they are earlier);
    a check at ``end`` itself or later is left for the timer, after the bar, as it fires then.
    Each check made is appended to ``journal`` (``(STALE, (time,))``) when one is given."""
    state, limit = keyed.model, model.settings.stale_after_ms
    if state is None or keyed.stale_at is None or keyed.stale_at >= end:
        return []
    out: list[events.Event] = []
    while keyed.stale_at is not None and keyed.stale_at < end:
        at, keyed.stale_at = keyed.stale_at, None
        out.extend(model.check_stale(state, symbol, at))
        if journal is not None:
            journal.append((STALE, (at,)))
        last_end = state.get("last_end")
        if last_end is not None and at < last_end + limit < end:
            keyed.stale_at = last_end + limit
    return out


def stored_state(
    model: SymbolModel, stored: Any, symbol: str
) -> tuple[dict[str, Any] | None, int | None]:
    """``(model state, stale_feed time)`` of a value the operators keep in Flink state for a
    symbol, as a new object; ``(None, None)`` for none.

    A value this operator cannot read is never taken for a state: it is logged as an error
    and the symbol starts afresh (the indicators warm up again). A value of the format before
    snapshots (the live state pickled whole) still reads."""
    if stored is None:
        return None, None
    try:
        if type(stored) is tuple and len(stored) == 3 and stored[0] == STATE_FORMAT:
            _format, snap, stale_at = stored
            return model.restore(snap), (None if stale_at is None else int(stale_at))
        if type(stored) is tuple and len(stored) == 2 and isinstance(stored[0], dict):
            legacy, stale_at = stored  # the live state pickled whole, as written before
            return legacy, (None if stale_at is None else int(stale_at))
        raise ValueError(f"unknown state format {str(stored)[:80]!r}")
    except Exception as exc:  # never a crash loop on one key's state
        log.error("cannot read the model state of %s (%s): starting it afresh",
                  symbol, _reason(exc))  # fmt: skip
        return None, None


def _bar_item(value: Row) -> tuple[int, tuple[Any, ...]]:
    """``(the bar's last millisecond, its due item)`` from a ``BAR_ROW_TYPE`` row (by position:
    rows of a Python map may arrive without field names)."""
    _kind, _symbol, ts, open_, high, low, close, volume, vwap, trades, interval_ms, text = value
    bar: tuple[Any, ...] = (
        int(ts), open_, high, low, close, int(volume), vwap, int(trades), int(interval_ms)
    )  # fmt: skip
    if text == PROVIDER:  # only then: keeps the common bar's pending entry small
        bar = (*bar, PROVIDER)
    return int(ts) + int(interval_ms) - 1, bar


_Pending = tuple[tuple[int, int, str], int, str, tuple[Any, ...]]
"""A waiting item of ``AnalyticsOperator``: ``((due_ts, news 0 / bar 1, story id), n, kind,
item)``, ``n`` its arrival (its key in the map state)."""


@dataclass
class _Keyed:
    """One symbol's live state in ``AnalyticsOperator``: the model state (None until its first
    bar or story), the time of its ``stale_feed`` timer (None: none set) and the buffered items
    (``_Pending``), with the arrival number the next one gets."""

    model: dict[str, Any] | None
    stale_at: int | None
    pending: list[_Pending]
    """Bars: ``(ts, open, high, low, close, volume, vwap, trades, interval_ms[, PROVIDER])``;
    stories: ``(id, ts, score, headline)``."""
    next_item: int = 0
    journal: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    """``BundledBarOperator``: the bars (``(BAR, item)``) and ``stale_feed`` checks (``(STALE,
    (time,))``) applied since the symbol's state was last written to Flink state, in order."""
