"""Bounded reads for summaries, tools and tests: record counts, and every record of a topic up to
its end offsets as they were when the read started, so a read always terminates; ``wait_for``
polls a condition with a deadline. The cluster is a ``KafkaSettings`` or a PLAINTEXT
``host:port,...`` (``bus.client``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from confluent_kafka import Consumer, Message, TopicPartition

from flinktrade import events
from flinktrade.bus.client import Servers
from flinktrade.bus.consumer import consuming, unique_group_id
from flinktrade.bus.offsets import end_offsets
from flinktrade.errors import TransientError


def count_records(bootstrap_servers: Servers, topic: str, read_committed: bool = False) -> int:
    """How many records a topic holds (high minus low watermark, summed over partitions).

    With ``read_committed`` the count excludes aborted and transaction-marker records by reading.
    """
    if read_committed:
        return sum(1 for _ in read_all(bootstrap_servers, topic, read_committed=True))
    with consuming(bootstrap_servers, "flinktrade-count") as consumer:
        total = 0
        for tp in end_offsets(consumer, topic):
            low, _high = consumer.get_watermark_offsets(tp, timeout=10)
            total += tp.offset - low
        return total


def read_all(
    bootstrap_servers: Servers,
    topic: str,
    read_committed: bool = False,
    timeout_s: float = 60.0,
) -> Iterator[Message]:
    """Every record currently in ``topic``, partition by partition order preserved, then stop."""
    with consuming(
        bootstrap_servers,
        unique_group_id("flinktrade-reader"),
        start_from="earliest",
        read_committed=read_committed,
    ) as consumer:
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


def _drop_finished(consumer: Consumer, topic: str, pending: set[int], ends: dict[int, int]) -> None:
    positions = consumer.position([TopicPartition(topic, p) for p in pending])
    for tp in positions:
        if tp.offset >= ends[tp.partition]:
            pending.discard(tp.partition)


def decode_all(
    bootstrap_servers: Servers, topic: str, kind: type[events.E], read_committed: bool = False
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
