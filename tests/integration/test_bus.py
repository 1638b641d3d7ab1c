"""The Kafka boundary against the real broker: a failed delivery of ``bus.EventProducer`` is reported
by the flush of its batch only, never by a later one; a consumer built by ``bus.make_consumer`` with
manual offset storing commits only what was stored, so a restart resumes right after it;
``bus.read_range`` yields exactly the offsets asked for and ends at a commit marker it never gets."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Message, Producer

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


def take(consumer: Consumer, count: int, timeout_s: float = 30.0) -> list[Message]:
    """The next ``count`` records, waiting at most ``timeout_s`` for them."""
    taken: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while len(taken) < count:
        assert time.monotonic() < deadline, f"only {len(taken)} of {count} records arrived"
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            taken.append(msg)
    return taken


@pytest.mark.parametrize("auto_commit", [False, True])
def test_a_consumer_that_stores_offsets_itself_commits_only_what_it_stored(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str], auto_commit: bool
) -> None:
    servers = kafka_settings.bootstrap_servers
    topic = new_topic("bus.store", partitions=1)
    group = f"bus-store-{uuid.uuid4().hex[:8]}"
    producer = bus.EventProducer(servers)
    for value in (b"one", b"two", b"three"):
        producer.send_raw(topic, value, b"k", 1)
    producer.flush(30.0)

    consumer = bus.make_consumer(
        kafka_settings,
        group,
        topics=[topic],
        start_from="earliest",
        auto_commit=auto_commit,
        store_offsets=False,
        commit_interval_ms=100,
    )
    try:
        first, *_rest = take(consumer, 3)  # all three read, only the first one done
        consumer.store_offsets(first)
        if not auto_commit:
            consumer.commit(asynchronous=False)
        bus.wait_for(
            lambda: bus.committed_positions(servers, group, topic) == {0: 1},
            timeout_s=30,
            what="the stored offset to be committed",
        )
    finally:
        consumer.close()  # with auto commit, closing commits what is stored: still offset 1

    assert bus.committed_positions(servers, group, topic) == {0: 1}
    with bus.consuming(servers, group, topics=[topic]) as again:
        assert [m.value() for m in take(again, 2)] == [b"two", b"three"]


def test_read_range_yields_exactly_the_offsets_asked_for_in_each_partition(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    """Records past a partition's range are in the log already (the consumer prefetches them
    while another partition is still being read): they are not yielded."""
    servers = kafka_settings.bootstrap_servers
    topic = new_topic("bus.range", partitions=2)
    producer = Producer(bus.client_config(servers))
    for partition in (0, 1):
        for i in range(5):
            producer.produce(topic, f"{partition}-{i}".encode(), partition=partition)
    assert producer.flush(30.0) == 0

    with bus.consuming(servers, bus.unique_group_id("bus-range"), read_committed=False) as consumer:
        ranges = {0: (1, 3), 1: (2, 5), 2: (0, 0)}  # an empty range is not read (nor assigned)
        got = [
            (m.partition(), m.offset(), m.value())
            for m in bus.read_range(consumer, topic, ranges, timeout_s=60)
        ]
    assert [g for g in got if g[0] == 0] == [(0, 1, b"0-1"), (0, 2, b"0-2")]
    assert [g for g in got if g[0] == 1] == [(1, 2, b"1-2"), (1, 3, b"1-3"), (1, 4, b"1-4")]
    assert len(got) == 5


def test_read_range_ends_at_a_transaction_marker_it_never_receives(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    """Under read_committed the last offset of a transactional topic is the commit marker, which
    is never delivered: the read ends there instead of waiting for it until its timeout."""
    servers = kafka_settings.bootstrap_servers
    topic = new_topic("bus.txn", partitions=1)
    producer = Producer(
        bus.client_config(servers) | {"transactional.id": f"bus-txn-{uuid.uuid4().hex[:8]}"}
    )
    producer.init_transactions(30.0)
    producer.begin_transaction()
    for value in (b"t0", b"t1", b"t2"):
        producer.produce(topic, value, partition=0)
    producer.commit_transaction(30.0)

    with bus.consuming(servers, bus.unique_group_id("bus-txn"), start_from="earliest") as consumer:
        bus.wait_for(  # three records, then the commit marker (written after the commit returns)
            lambda: [tp.offset for tp in bus.end_offsets(consumer, topic)] == [4],
            timeout_s=30,
            what="the commit marker",
        )
        read = bus.read_range(consumer, topic, {0: (0, 4)}, timeout_s=30)
        assert [m.value() for m in read] == [b"t0", b"t1", b"t2"]


def test_max_timestamp_is_the_largest_record_timestamp_in_any_partition(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    """Not the last record's: a partition's newest record may carry an older timestamp."""
    servers = kafka_settings.bootstrap_servers
    topic = new_topic("bus.maxts", partitions=2)
    assert bus.max_timestamp(servers, topic) is None  # empty
    producer = Producer({"bootstrap.servers": servers})
    for partition, ts in [(0, 5_000), (0, 9_000), (0, 3_000), (1, 7_000)]:
        producer.produce(topic, b"x", partition=partition, timestamp=ts)
    assert producer.flush(30) == 0
    assert bus.max_timestamp(servers, topic) == 9_000
