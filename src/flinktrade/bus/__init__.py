"""Kafka helpers over confluent-kafka: topic admin, an event producer, and bounded readers.

Producers batch (``linger.ms``) and never wait per message. Failures are per batch: a record the
client refuses (``produce`` errors such as a record over ``message.max.bytes``) or the broker does
not acknowledge (unknown topic, too large, timeout) is reported once, by the next ``flush()``
(``ProduceFailed``); the flush after it starts clean. A fatal producer error (the idempotent
producer gave up) is reported the same way and the client is replaced. Readers used for summaries and tests read a topic up to its end offsets as they were
when the read started, so they always terminate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from flinktrade import events
from flinktrade.bus.consumer import consumer_config as consumer_config
from flinktrade.bus.consumer import consuming as consuming
from flinktrade.bus.consumer import make_consumer as make_consumer
from flinktrade.bus.consumer import unique_group_id as unique_group_id
from flinktrade.config import KafkaSettings
from flinktrade.errors import TransientError

log = logging.getLogger(__name__)


def admin(bootstrap_servers: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": 10_000})


def list_topics(bootstrap_servers: str, timeout_s: float = 5.0) -> list[str]:
    try:
        metadata = admin(bootstrap_servers).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise TransientError(f"Kafka at {bootstrap_servers} is not reachable: {exc}") from None
    return sorted(t for t in metadata.topics if not t.startswith("__"))


def ensure_topics(settings: KafkaSettings, names: Iterable[str], timeout_s: float = 30.0) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    client = admin(settings.bootstrap_servers)
    existing = set(list_topics(settings.bootstrap_servers, timeout_s))
    new = [
        NewTopic(
            name,
            num_partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            config={"retention.ms": str(settings.retention_ms)},
        )
        for name in names
        if name not in existing
    ]
    if not new:
        return
    for name, future in client.create_topics(new, request_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TransientError(f"could not create topic {name}: {exc}") from None
        log.info("created topic %s (%d partitions)", name, settings.partitions)


def delete_topics(bootstrap_servers: str, names: Iterable[str], timeout_s: float = 30.0) -> None:
    client = admin(bootstrap_servers)  # keep the client alive until the futures resolve
    futures = client.delete_topics(list(names), request_timeout=timeout_s)
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


class ProduceFailed(TransientError):
    """Records of one batch (the records sent since the previous ``flush``) that were not
    delivered: ``failed`` how many, ``reasons`` the first few as ``topic: error``. Whether to send
    them again is the caller's decision; the producer has already forgotten them."""

    def __init__(self, failed: int, reasons: list[str], unacknowledged: int = 0) -> None:
        parts = []
        if failed:
            parts.append(f"{failed} records were not delivered: " + "; ".join(reasons))
        if unacknowledged:
            parts.append(f"{unacknowledged} records not acknowledged yet")
        super().__init__("; ".join(parts))
        self.failed = failed
        self.reasons = reasons
        self.unacknowledged = unacknowledged


MAX_REASONS = 5
"""How many failure reasons one ``ProduceFailed`` names (the count is always complete)."""


@dataclass
class EventProducer:
    """Produces events keyed and timestamped as the topic contract says (key = symbol,
    record timestamp = event time). ``produced``/``failed`` count over the producer's life."""

    bootstrap_servers: str
    extra: dict[str, Any] = field(default_factory=dict)
    produced: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        self._conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "enable.idempotence": True,
            "queue.buffering.max.messages": 1_000_000,
        }
        self._conf.update(self.extra)
        self._producer = Producer(self._conf)
        self._batch_failed = 0
        self._reasons: list[str] = []
        self._fatal = False

    def send(self, event: events.Event, topic: str | None = None) -> None:
        self.send_raw(topic or event.topic, events.encode(event), event.key, event.ts)

    def send_raw(self, topic: str, value: bytes, key: bytes | None, ts: int | None) -> None:
        """Queue one record; a record the client refuses is counted as failed (see ``flush``)."""
        while True:
            try:
                self._producer.produce(
                    topic, value, key=key, timestamp=ts or 0, on_delivery=self._delivered
                )
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
            except KafkaException as exc:
                self._failure(topic, exc.args[0])
                return
        self._producer.poll(0)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.produced += 1
        else:
            self._failure(msg.topic() or "?", err)

    def _failure(self, topic: str, err: KafkaError) -> None:
        self.failed += 1
        self._batch_failed += 1
        self._fatal = self._fatal or err.fatal()
        if len(self._reasons) < MAX_REASONS:
            self._reasons.append(f"{topic}: {err.str()}")

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait for every record sent since the last flush to be acknowledged; raise
        ``ProduceFailed`` once for those that were not (refused, failed, or still unacknowledged
        after ``timeout_s``: those stay queued and count in a later batch)."""
        remaining = self._producer.flush(timeout_s)
        failed, reasons = self._batch_failed, self._reasons
        self._batch_failed, self._reasons = 0, []
        if self._fatal:
            log.error("Kafka producer failed fatally (%s); starting a new one", "; ".join(reasons))
            self._producer = Producer(self._conf)
            self._fatal = False
        if failed or remaining:
            raise ProduceFailed(failed, reasons, remaining)


_NO_LEADER_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def end_offsets(consumer: Consumer, topic: str, timeout_s: float = 10.0) -> list[TopicPartition]:
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
    if metadata.error is not None:
        raise TransientError(f"topic {topic}: {metadata.error.str()}")
    ends = []
    deadline = time.monotonic() + timeout_s
    for partition in sorted(metadata.partitions):
        while True:  # a new topic has no leader for a moment
            try:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout_s
                )
                break
            except KafkaException as exc:
                retry = exc.args[0].retriable() or exc.args[0].code() in _NO_LEADER_YET
                if time.monotonic() > deadline or not retry:
                    raise TransientError(f"offsets of {topic}[{partition}]: {exc}") from None
                time.sleep(0.2)
        ends.append(TopicPartition(topic, partition, high))
    return ends


def committed_positions(bootstrap_servers: str, group_id: str, topic: str) -> dict[int, int]:
    """The group's committed position per partition of ``topic`` (-1: nothing committed); empty
    while the group's coordinator is not available yet."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        try:
            positions = consumer.committed(
                [TopicPartition(topic, p) for p in sorted(partitions)], timeout=10
            )
        except KafkaException:  # no coordinator for the group yet
            return {}
        return {tp.partition: max(tp.offset, -1) for tp in positions}
    finally:
        consumer.close()


def committed_to_end(bootstrap_servers: str, group_id: str, topic: str) -> bool:
    """Whether the group has committed the current end of every non-empty partition of ``topic``."""
    done = committed_positions(bootstrap_servers, group_id, topic)
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id})
    try:
        ends = end_offsets(consumer, topic)
    finally:
        consumer.close()
    return all(done.get(tp.partition, -1) >= tp.offset for tp in ends if tp.offset > 0)


def count_records(bootstrap_servers: str, topic: str, read_committed: bool = False) -> int:
    """How many records a topic holds (high minus low watermark, summed over partitions).

    With ``read_committed`` the count excludes aborted and transaction-marker records by reading.
    """
    if read_committed:
        return sum(1 for _ in read_all(bootstrap_servers, topic, read_committed=True))
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "flinktrade-count"})
    try:
        total = 0
        for tp in end_offsets(consumer, topic):
            low, _high = consumer.get_watermark_offsets(tp, timeout=10)
            total += tp.offset - low
        return total
    finally:
        consumer.close()


def read_all(
    bootstrap_servers: str,
    topic: str,
    read_committed: bool = False,
    timeout_s: float = 60.0,
) -> Iterator[Message]:
    """Every record currently in ``topic``, partition by partition order preserved, then stop."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"flinktrade-reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    try:
        ends = {tp.partition: tp.offset for tp in end_offsets(consumer, topic)}
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        pending = {p for p, end in ends.items() if end > 0}
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TransientError(f"reading {topic} timed out with partitions {pending} unread")
            msg = consumer.poll(0.5)
            if msg is None:
                # Under read_committed the end offset may be a marker we never receive.
                _drop_finished(consumer, topic, pending, ends)
                continue
            error = msg.error()
            if error is not None:
                raise TransientError(f"reading {topic}: {error.str()}")
            yield msg
            partition, offset = msg.partition(), msg.offset()
            if partition is not None and offset is not None and offset + 1 >= ends[partition]:
                pending.discard(partition)
    finally:
        consumer.close()


def _drop_finished(consumer: Consumer, topic: str, pending: set[int], ends: dict[int, int]) -> None:
    positions = consumer.position([TopicPartition(topic, p) for p in pending])
    for tp in positions:
        if tp.offset >= ends[tp.partition]:
            pending.discard(tp.partition)


def decode_all(
    bootstrap_servers: str, topic: str, kind: type[events.E], read_committed: bool = False
) -> list[events.E]:
    """Every record of a topic decoded as ``kind`` (undecodable records raise)."""
    return [
        events.decode(kind, msg.value() or b"")
        for msg in read_all(bootstrap_servers, topic, read_committed=read_committed)
    ]


def wait_for(
    predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.25, what: str = ""
) -> None:
    """Poll ``predicate`` until it holds; raise ``TimeoutError`` naming ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what or predicate}")
        time.sleep(interval_s)
