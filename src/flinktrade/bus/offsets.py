"""Offsets: where a topic ends and where a group stands, and at-least-once bookkeeping.

``end_offsets``, ``max_timestamp``, ``committed_positions`` and ``committed_to_end`` ask the broker. ``OffsetTracker``
decides which offsets may be committed: a record's offset may be committed once every destination
it was routed to has accepted it (or given up on it for good). Per partition, the commit position
is the oldest record still open, or one past the newest record seen when none is open. Thread-safe:
delivery threads call ``done``. ``SeenIds`` remembers recent event ids, to drop repeats.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

from flinktrade.bus.admin import admin
from flinktrade.bus.client import Servers
from flinktrade.bus.consumer import consuming
from flinktrade.errors import TransientError

TP = tuple[str, int]
"""A topic partition."""


@dataclass(frozen=True)
class RecordRef:
    """Where a record came from."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class OffsetTracker:
    """Open deliveries per record, and the commit positions they allow."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[TP, dict[int, int]] = {}
        self._next: dict[TP, int] = {}
        self._committed: dict[TP, int] = {}

    def add(self, ref: RecordRef, deliveries: int) -> None:
        """A record was read and handed to ``deliveries`` destinations (0: nothing to wait for)."""
        tp = (ref.topic, ref.partition)
        with self._lock:
            self._next[tp] = max(self._next.get(tp, 0), ref.offset + 1)
            if deliveries > 0:
                self._open.setdefault(tp, {})[ref.offset] = deliveries

    def done(self, ref: RecordRef) -> None:
        """One destination is finished with the record (accepted, or given up for good)."""
        with self._lock:
            offsets = self._open.get((ref.topic, ref.partition))
            if offsets is None or ref.offset not in offsets:
                return  # the partition was revoked meanwhile
            offsets[ref.offset] -= 1
            if offsets[ref.offset] <= 0:
                del offsets[ref.offset]

    @property
    def outstanding(self) -> int:
        """Records with at least one open delivery."""
        with self._lock:
            return sum(len(offsets) for offsets in self._open.values())

    def to_commit(self, only: Iterable[TP] | None = None) -> dict[TP, int]:
        """Commit positions that moved since the last ``committed`` call."""
        wanted = set(only) if only is not None else None
        positions: dict[TP, int] = {}
        with self._lock:
            for tp, after_last in self._next.items():
                if wanted is not None and tp not in wanted:
                    continue
                offsets = self._open.get(tp)
                position = min(offsets) if offsets else after_last
                if position > self._committed.get(tp, -1):
                    positions[tp] = position
        return positions

    def committed(self, positions: dict[TP, int]) -> None:
        with self._lock:
            for tp, position in positions.items():
                self._committed[tp] = max(self._committed.get(tp, -1), position)

    def forget(self, partitions: Iterable[TP]) -> None:
        """The partitions were revoked: stop tracking them (their open deliveries still run)."""
        with self._lock:
            for tp in partitions:
                self._open.pop(tp, None)
                self._next.pop(tp, None)
                self._committed.pop(tp, None)


class SeenIds:
    """The last ``capacity`` event ids, to drop repeats."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; False if it was already known (a repeat)."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


_T = TypeVar("_T")

_NO_LEADER_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def end_offsets(consumer: Consumer, topic: str, timeout_s: float = 10.0) -> list[TopicPartition]:
    """The end (high watermark) of every partition of ``topic``, asked with ``consumer``; waits
    out a new partition's missing leader for up to ``timeout_s``."""
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
    if metadata.error is not None:
        raise TransientError(f"topic {topic}: {metadata.error.str()}")
    ends = []
    deadline = time.monotonic() + timeout_s
    for partition in sorted(metadata.partitions):
        ask = functools.partial(
            consumer.get_watermark_offsets, TopicPartition(topic, partition), timeout=timeout_s
        )
        _low, high = _leader_waited(ask, deadline, f"offsets of {topic}[{partition}]")
        ends.append(TopicPartition(topic, partition, high))
    return ends


def _leader_waited(ask: Callable[[], _T], deadline: float, what: str) -> _T:
    """``ask()``, asked again every 0.2 s until ``deadline`` (monotonic) while the broker answers
    that a partition has no leader yet (a new topic has none for a moment) or with another
    retriable error; ``TransientError`` naming ``what`` after that, or at once on any other
    error."""
    while True:
        try:
            return ask()
        except KafkaException as exc:
            retry = exc.args[0].retriable() or exc.args[0].code() in _NO_LEADER_YET
            if time.monotonic() > deadline or not retry:
                raise TransientError(f"{what}: {exc}") from None
            time.sleep(0.2)


def max_timestamp(servers: Servers, topic: str, timeout_s: float = 10.0) -> int | None:
    """The largest record timestamp in ``topic`` (epoch ms; None when it holds no record), by
    one request per partition leader: Kafka's max-timestamp offset lookup (KIP-734), where
    reading the last record of each partition costs a fetch each. Waits out a new topic's
    missing leader (the broker answers "not leader" for a moment after the topic is created) for
    up to ``timeout_s``; ``TransientError`` when the broker cannot answer by then."""
    client = admin(servers)
    metadata = client.list_topics(topic, timeout=timeout_s).topics[topic]
    if metadata.error is not None:
        raise TransientError(f"topic {topic}: {metadata.error.str()}")
    latest_spec = OffsetSpec.max_timestamp()  # type: ignore[no-untyped-call]
    asked = {TopicPartition(topic, p): latest_spec for p in metadata.partitions}
    found = _leader_waited(
        lambda: [
            f.result() for f in client.list_offsets(asked, request_timeout=timeout_s).values()
        ],
        time.monotonic() + timeout_s,
        f"newest timestamp of {topic}",
    )
    stamps = [f.timestamp for f in found if f.offset >= 0]  # offset -1: an empty partition
    return max(stamps, default=None)


def committed_positions(bootstrap_servers: Servers, group_id: str, topic: str) -> dict[int, int]:
    """The group's committed position per partition of ``topic`` (-1: nothing committed); empty
    while the group's coordinator is not available yet."""
    with consuming(bootstrap_servers, group_id) as consumer:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        try:
            positions = consumer.committed(
                [TopicPartition(topic, p) for p in sorted(partitions)], timeout=10
            )
        except KafkaException:  # no coordinator for the group yet
            return {}
        return {tp.partition: max(tp.offset, -1) for tp in positions}


def committed_to_end(bootstrap_servers: Servers, group_id: str, topic: str) -> bool:
    """Whether the group has committed the current end of every non-empty partition of ``topic``."""
    done = committed_positions(bootstrap_servers, group_id, topic)
    with consuming(bootstrap_servers, group_id) as consumer:
        ends = end_offsets(consumer, topic)
    return all(done.get(tp.partition, -1) >= tp.offset for tp in ends if tp.offset > 0)
