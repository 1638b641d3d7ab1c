"""The executor's own market prices: what sizing and the risk limits are priced from.

A signal carries the price its strategy saw, but the executor never trusts it for money: it
follows ``market.trades`` (the trade price) and ``analytics.bars`` (the close) itself, keeps the
newest price per symbol by event time, and judges a signal against it (no price: denied; a signal
price further than ``max_price_deviation_pct`` from it: denied).

``LastPrices`` and ``parse_price`` are pure; ``PriceFeed`` is the thin Kafka adapter that fills
``LastPrices`` from the price topics, starting ``price_lookback`` records back from their end so a
restarted executor knows recent prices at once. ``catch_up`` reads everything published so far,
for a signal whose symbol has no price yet (the price and the signal raced).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal

from flinktrade import bus
from flinktrade.bus import Consumer, KafkaException, TopicPartition
from flinktrade.config import KafkaSettings
from flinktrade.errors import TransientError
from flinktrade.execution import intake

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarketPrice:
    symbol: str
    price: Decimal
    ts: int
    """Event time of the trade or bar close, epoch ms."""


class LastPrices:
    """The newest price per symbol by event time (a late, older record never overwrites)."""

    def __init__(self) -> None:
        self._prices: dict[str, MarketPrice] = {}

    def update(self, quote: MarketPrice) -> None:
        known = self._prices.get(quote.symbol)
        if known is None or quote.ts >= known.ts:
            self._prices[quote.symbol] = quote

    def get(self, symbol: str) -> Decimal | None:
        known = self._prices.get(symbol)
        return None if known is None else known.price

    def as_dict(self) -> dict[str, Decimal]:
        return {s: p.price for s, p in self._prices.items()}

    def __len__(self) -> int:
        return len(self._prices)


def parse_price(raw: bytes) -> MarketPrice | None:
    """The price in a trade (``price``) or bar (``close``) record; None when it has none usable
    (those records are the producer's to dead-letter, not the executor's)."""
    try:
        data = json.loads(raw, parse_float=Decimal, parse_int=Decimal)
        if not isinstance(data, dict):
            return None
        symbol = data.get("symbol")
        value = data.get("close") if "close" in data else data.get("price")
        ts = data.get("ts")
        if not isinstance(symbol, str) or not isinstance(value, Decimal):
            return None
        if not isinstance(ts, Decimal) or not ts.is_finite() or ts != ts.to_integral_value():
            return None
        if not intake.SYMBOL.fullmatch(symbol) or intake.price_problem(value) is not None:
            return None
        if not intake.MIN_TS <= ts < intake.MAX_TS:
            return None
        return MarketPrice(symbol, value, int(ts))
    except (ValueError, RecursionError, ArithmeticError):
        return None


def _end_offsets(consumer: Consumer, topic: str, timeout_s: float = 15.0) -> list[TopicPartition]:
    """``bus.end_offsets``, waiting out a topic just created that the metadata does not show yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return bus.end_offsets(consumer, topic)
        except TransientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class PriceFeed:
    """Follows the price topics into a ``LastPrices``; used from the executor's one thread."""

    def __init__(self, kafka: KafkaSettings, topics: list[str], lookback: int) -> None:
        self.kafka = kafka
        self.topics = list(topics)
        self.lookback = lookback
        self.prices = LastPrices()
        self.ignored = 0
        self._consumer: Consumer | None = None
        self._assignment: list[TopicPartition] = []

    def start(self) -> None:
        if not self.topics:
            return
        bus.ensure_topics(self.kafka, self.topics)
        consumer = bus.make_consumer(
            self.kafka,
            "flinktrade-executor-prices",  # never commits: assign() only
            auto_commit=False,
            store_offsets=False,
        )
        assignment: list[TopicPartition] = []
        for topic in self.topics:
            for end in _end_offsets(consumer, topic):
                low, _high = consumer.get_watermark_offsets(end, timeout=10)
                start = max(low, end.offset - self.lookback)
                assignment.append(TopicPartition(topic, end.partition, start))
        consumer.assign(assignment)
        self._consumer = consumer
        self._assignment = assignment
        self.catch_up(10.0)
        log.info("executor: %d market prices known at start", len(self.prices))

    def poll(self, max_records: int = 1000) -> int:
        """Take what has arrived, without waiting; returns the records read."""
        if self._consumer is None:
            return 0
        messages = self._consumer.consume(max_records, timeout=0)
        for msg in messages:
            if msg.error() is None:
                self._take(msg.value() or b"")
        return len(messages)

    def catch_up(self, timeout_s: float) -> bool:
        """Read every price published before this call (or until ``timeout_s``); True if done."""
        consumer = self._consumer
        if consumer is None:
            return True
        deadline = time.monotonic() + timeout_s
        try:
            ends = {
                (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=timeout_s)[1]
                for tp in self._assignment
            }
        except KafkaException as exc:
            log.warning("executor: price topics unreachable: %s", exc)
            return False
        while time.monotonic() < deadline:
            starts = {(tp.topic, tp.partition): tp.offset for tp in self._assignment}
            behind = [
                tp
                for tp in consumer.position(self._assignment)
                # nothing read yet from a partition: its position is still the assigned start
                if (tp.offset if tp.offset >= 0 else starts[(tp.topic, tp.partition)])
                < ends[(tp.topic, tp.partition)]
            ]
            if not behind:
                return True
            for msg in consumer.consume(1000, timeout=0.1):
                if msg.error() is None:
                    self._take(msg.value() or b"")
        return False

    def _take(self, raw: bytes) -> None:
        quote = parse_price(raw)
        if quote is None:
            self.ignored += 1
        else:
            self.prices.update(quote)

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, TransientError) as exc:
                log.warning("executor: closing the price feed: %s", exc)
            self._consumer = None
