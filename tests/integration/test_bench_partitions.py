"""``bench.partition_wait`` assumes where the latency driver's producer puts each symbol's
trades; this checks it against a real broker, with the driver's own producer settings."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from bench import partition_wait
from bench.run import SYMBOLS
from confluent_kafka import Producer

from flinktrade import bus
from flinktrade.config import KafkaSettings
from flinktrade.ingest.simulator import MarketSimulator

pytestmark = pytest.mark.integration


def test_the_driver_producer_puts_each_symbol_where_partition_wait_says(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic("bench.partitions", partitions=4)
    symbols = sorted({t.symbol for t in MarketSimulator(SYMBOLS, seed=1).trades(2_000)})
    assert len(symbols) == SYMBOLS
    producer = Producer({"bootstrap.servers": kafka_settings.bootstrap_servers, "linger.ms": 0})
    for symbol in symbols:
        producer.produce(topic, b"{}", symbol.encode())
    assert producer.flush(30) == 0
    placed = {
        (msg.key() or b"").decode(): msg.partition()
        for msg in bus.read_all(kafka_settings.bootstrap_servers, topic)
    }
    assert placed == {s: partition_wait.partition_of(s, 4) for s in symbols}
    assert len(set(placed.values())) == 4
