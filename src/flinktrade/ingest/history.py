"""``flinktrade ingest history``: Alpaca's historical bars, trades and news into the market topics.

Each symbol is paged through on its own (bars, then trades), news for all symbols at once; every
record is validated (bad ones go to the dead-letter topic) and produced keyed by symbol with its
event time as the Kafka timestamp. Pages are produced in order, so a topic always holds a prefix
of the requested range per symbol.

Repeats: every event has a deterministic id (bars ``SYMBOL:interval_ms:ts``, trades
``SYMBOL:epoch_ns:exchange:provider_id``, news ``alpaca:<id>``), so re-running a range gives
records a consumer can drop by id. ``resume`` goes further and does not produce them at all: it
finds, per symbol, the last record already in the topic and continues right after it (records at
that same timestamp are compared by id, so none is lost or repeated).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from flinktrade import bus
from flinktrade.bus import Consumer, TopicPartition
from flinktrade.events import Bar, DeadLetter, Event, NewsItem, Quote, Trade
from flinktrade.ingest.alpaca import (
    PAGE_LIMIT,
    DataFeed,
    Kind,
    MarketDataRest,
    Page,
    TimeFrame,
    timeframe_ms,
)
from flinktrade.ingest.settings import IngestTopics
from flinktrade.ingest.validate import Validator
from flinktrade.progress import NoProgress as NoProgress  # noqa: PLC0414 (re-exported)
from flinktrade.progress import Progress as Progress  # noqa: PLC0414

log = logging.getLogger(__name__)


@dataclass
class Sink:
    """Produces validated events to their topics and counts what was produced, per kind."""

    producer: bus.EventProducer
    topics: IngestTopics = field(default_factory=IngestTopics)
    counts: dict[str, int] = field(
        default_factory=lambda: {"bars": 0, "trades": 0, "quotes": 0, "news": 0, "deadletter": 0}
    )

    def emit(self, event: Event) -> None:
        kind, topic = self._route(event)
        self.producer.send(event, topic)
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def _route(self, event: Event) -> tuple[str, str]:
        if isinstance(event, Bar):
            return "bars", self.topics.bars
        if isinstance(event, Trade):
            return "trades", self.topics.trades
        if isinstance(event, Quote):
            return "quotes", self.topics.quotes
        if isinstance(event, NewsItem):
            return "news", self.topics.news
        if isinstance(event, DeadLetter):
            return "deadletter", self.topics.deadletter
        return "alerts", self.topics.alerts

    def flush(self) -> None:
        self.producer.flush()


@dataclass(frozen=True)
class HistoryRequest:
    symbols: list[str]
    start: datetime
    end: datetime
    timeframe: TimeFrame
    bars: bool = True
    trades: bool = False
    news: bool = False
    feed: DataFeed | None = None
    resume: bool = False
    limit: int | None = None
    """Records per request (default: Alpaca's maximum, 10000; 50 for news)."""


@dataclass(frozen=True)
class ResumePoint:
    """The last event time already in a topic for a key, and the ids of the events at it."""

    ts: int
    ids: frozenset[str]

    def covers(self, event: Event) -> bool:
        """Whether ``event`` is at or before this point, i.e. already in the topic."""
        if isinstance(event, DeadLetter):
            return False
        return event.ts < self.ts or (
            event.ts == self.ts and getattr(event, "id", None) in self.ids
        )


def run_history(
    request: HistoryRequest,
    rest: MarketDataRest,
    sink: Sink,
    progress: Progress | None = None,
    validator: Validator | None = None,
) -> dict[str, int]:
    """Page through everything asked for into the topics; returns the produced counts."""
    progress = progress or NoProgress()
    validator = validator or Validator(symbols=set(request.symbols), source="alpaca-rest")
    bootstrap = sink.producer.servers
    interval = timeframe_ms(request.timeframe)
    kinds: list[tuple[Kind, str, type[Event]]] = []
    if request.bars:
        kinds.append(("bars", sink.topics.bars, Bar))
    if request.trades:
        kinds.append(("trades", sink.topics.trades, Trade))
    try:
        for kind, topic, event_type in kinds:
            points = (
                resume_points(bootstrap, topic, event_type, request.symbols)
                if request.resume
                else {}
            )
            for symbol in request.symbols:
                task = f"{symbol} {kind}"
                _one_stream(
                    request, rest, sink, progress, task, kind, [symbol], points.get(symbol),
                    partial(_validate, validator, kind, interval),
                )  # fmt: skip
        if request.news:
            point = None
            if request.resume:
                found = resume_points(bootstrap, sink.topics.news, NewsItem, request.symbols)
                point = max(found.values(), key=lambda p: p.ts, default=None)
            _one_stream(
                request, rest, sink, progress, "news", "news", request.symbols, point,
                lambda raw, _s: validator.news(raw),
            )  # fmt: skip
    finally:
        sink.flush()
    return {k: sink.counts.get(k, 0) for k in ("bars", "trades", "news", "deadletter")}


def _validate(
    validator: Validator, kind: Kind, interval: int, raw: dict[str, Any], symbol: str | None
) -> Event:
    if kind == "bars":
        return validator.bar(raw, symbol, interval)
    return validator.trade(raw, symbol)


def _one_stream(
    request: HistoryRequest,
    rest: MarketDataRest,
    sink: Sink,
    progress: Progress,
    task: str,
    kind: Kind,
    symbols: list[str],
    point: ResumePoint | None,
    validate: Callable[[dict[str, Any], str | None], Event],
) -> None:
    start_ms = _ms(request.start)
    end_ms = _ms(request.end)
    start = request.start
    if point is not None:
        if point.ts > end_ms:
            log.info("%s: already complete up to %s, nothing to resume", task, _iso(point.ts))
            return
        start = max(start, datetime.fromtimestamp(point.ts / 1000, UTC))
        log.info("%s: resuming after %s", task, _iso(point.ts))
    progress.begin(task, max(1, end_ms - start_ms))
    produced = 0
    pages: Iterable[Page] = rest.pages(
        kind,
        symbols,
        start,
        request.end,
        timeframe=request.timeframe,
        feed=request.feed,
        limit=min(request.limit, PAGE_LIMIT[kind]) if request.limit else None,
    )
    for page in pages:
        last_ts = None
        for symbol, raw in page.records:
            event = validate(raw, symbol)
            if point is not None and point.covers(event):
                continue  # already in the topic
            sink.emit(event)
            produced += 1
            if not isinstance(event, DeadLetter):
                last_ts = event.ts
        if last_ts is not None:
            progress.update(task, min(end_ms, last_ts) - start_ms, produced)
    progress.update(task, end_ms - start_ms, produced)
    log.info("%s: produced %d records", task, produced)


def resume_points(
    bootstrap_servers: bus.Servers,
    topic: str,
    event_type: type[Event],
    keys: Sequence[str],
    chunk: int = 5_000,
    timeout_s: float = 60.0,
) -> dict[str, ResumePoint]:
    """Per key, the greatest record timestamp in ``topic`` and the ids of events at it.

    Reads each partition backwards in chunks until every key has been seen there or the
    partition's start is reached (a symbol lives in one partition, appended in time order, so its
    last record is the newest).
    """
    wanted = {k.encode(): k for k in keys}
    found: dict[str, ResumePoint] = {}
    consumer = bus.make_consumer(
        bootstrap_servers, "flinktrade-ingest-resume", start_from="earliest"
    )
    try:
        for end in bus.end_offsets(consumer, topic, timeout_s):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, end.partition), timeout=timeout_s
            )
            upper = high
            seen_here: set[str] = set()
            while upper > low and len(seen_here) < len(wanted):
                lower = max(low, upper - chunk)
                batch = _read_range(consumer, topic, end.partition, lower, upper, timeout_s)
                for key, ts, value in reversed(batch):
                    name = wanted.get(key or b"")
                    if name is None:
                        continue
                    best = found.get(name)
                    if best is None or ts > best.ts:
                        found[name] = ResumePoint(ts, frozenset({_event_id(event_type, value)}))
                    elif ts == best.ts:
                        ids = best.ids | {_event_id(event_type, value)}
                        found[name] = ResumePoint(ts, frozenset(ids))
                    seen_here.add(name)
                upper = lower
    finally:
        consumer.close()
    return found


def _read_range(
    consumer: Consumer, topic: str, partition: int, lower: int, upper: int, timeout_s: float
) -> list[tuple[bytes | None, int, bytes]]:
    """Key, timestamp and value of the records at offsets ``lower`` to ``upper - 1``."""
    records = bus.read_range(
        consumer,
        topic,
        {partition: (lower, upper)},
        timeout_s,
        f"{topic}[{partition}] for --resume",
    )
    return [(msg.key(), msg.timestamp()[1], msg.value() or b"") for msg in records]


def _event_id(event_type: type[Event], value: bytes) -> str:
    try:
        data = json.loads(value)
        if event_type is Bar:
            return f"{data['symbol']}:{data.get('interval_ms', 60_000)}:{data['ts']}"
        return str(data["id"])
    except (ValueError, KeyError, TypeError):
        return ""


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()
