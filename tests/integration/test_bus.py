"""``bus.EventProducer`` against the real broker: a failed delivery is reported by the flush of its
batch only, never by a later one."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from flinktrade import bus
from flinktrade.config import KafkaSettings

pytestmark = pytest.mark.integration

BROKER_LIMIT = 1_048_588
"""Kafka's default ``message.max.bytes`` (and so a topic's ``max.message.bytes``)."""


def values(bootstrap_servers: str, topic: str) -> list[bytes]:
    return [msg.value() or b"" for msg in bus.read_all(bootstrap_servers, topic)]


def test_a_batch_to_a_missing_topic_fails_once_then_the_next_batch_flushes(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    servers = kafka_settings.bootstrap_servers
    good = new_topic("bus.good", partitions=1)
    missing = f"bus.missing.{uuid.uuid4().hex[:8]}"  # the broker does not auto-create topics
    producer = bus.EventProducer(servers, extra={"message.timeout.ms": 3_000})

    producer.send_raw(missing, b"lost", b"k", 1)
    producer.send_raw(good, b"one", b"k", 1)
    with pytest.raises(bus.ProduceFailed) as failed:
        producer.flush(30.0)
    assert failed.value.failed == 1
    assert failed.value.reasons[0].startswith(f"{missing}: ")

    producer.send_raw(good, b"two", b"k", 2)
    producer.flush(30.0)  # raises if the earlier failure were sticky
    producer.flush(30.0)  # an empty batch is fine too
    assert values(servers, good) == [b"one", b"two"]
    assert (producer.produced, producer.failed) == (2, 1)


def test_a_record_the_broker_refuses_as_too_large_fails_only_its_batch(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    servers = kafka_settings.bootstrap_servers
    topic = new_topic("bus.large", partitions=1)
    # The client would take 4 MB; the broker's topic limit is about 1 MB, so the broker refuses.
    producer = bus.EventProducer(
        servers, extra={"message.max.bytes": 4_000_000, "compression.type": "none"}
    )

    producer.send_raw(topic, b"x" * (BROKER_LIMIT + 1000), b"k", 1)
    with pytest.raises(bus.ProduceFailed) as failed:
        producer.flush(30.0)
    assert failed.value.failed == 1
    assert "too large" in failed.value.reasons[0].lower()

    for i in range(3):
        producer.send_raw(topic, f"after-{i}".encode(), b"k", 2)
    producer.flush(30.0)
    assert values(servers, topic) == [b"after-0", b"after-1", b"after-2"]


def test_a_record_the_client_refuses_is_reported_by_the_flush_not_raised_by_send(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    servers = kafka_settings.bootstrap_servers
    topic = new_topic("bus.refused", partitions=1)
    producer = bus.EventProducer(servers)  # client limit: message.max.bytes 1 000 000

    producer.send_raw(topic, b"before", b"k", 1)
    producer.send_raw(topic, b"y" * 2_000_000, b"k", 1)
    with pytest.raises(bus.ProduceFailed) as failed:
        producer.flush(30.0)
    assert failed.value.failed == 1

    producer.send_raw(topic, b"after", b"k", 2)
    producer.flush(30.0)
    assert values(servers, topic) == [b"before", b"after"]
