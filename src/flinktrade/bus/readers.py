"""Bounded reads for summaries, tools and tests: record counts, and every record of a topic up to
its end offsets as they were when the read started, so a read always terminates; ``read_range``,
the one poll loop of such reads (offset ranges of a topic's partitions, used by ``read_all`` and by
``ingest history --resume``); ``wait_for`` polls a condition with a deadline. The cluster is a
``KafkaSettings`` or a PLAINTEXT ``host:port,...`` (``bus.client``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

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
        ranges = {tp.partition: (0, tp.offset) for tp in end_offsets(consumer, topic)}
        yield from read_range(consumer, topic, ranges, timeout_s)


def read_range(
    consumer: Consumer,
    topic: str,
    ranges: Mapping[int, tuple[int, int]],
    timeout_s: float = 60.0,
    what: str = "",
) -> Iterator[Message]:
    """The records of ``topic`` at offsets ``lower <= offset < upper`` of each partition
    (``ranges``: partition -> ``(lower, upper)``), each partition's in order, then stop.

    The poll loop every bounded read shares: ``consumer`` is assigned the ranges here (its earlier
    assignment is replaced) and never commits. A partition is done once its record at ``upper - 1``
    came, or once the consumer's position is at ``upper`` without it (under read_committed the last
    offsets may be transaction markers, which are never delivered). Records beyond a range (written
    since it was taken) are not yielded. A record with an error, or ranges not read within
    ``timeout_s`` (``what`` names the read, default the topic), raise ``TransientError``.
    """
    uppers = {p: upper for p, (lower, upper) in ranges.items() if lower < upper}
    consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in sorted(uppers)])
    pending = set(uppers)
    deadline = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > deadline:
            unread = sorted(pending)
            raise TransientError(
                f"reading {what or topic} timed out with partitions {unread} unread"
            )
        msg = consumer.poll(0.5)
        if msg is None:
            _drop_finished(consumer, topic, pending, uppers)
            continue
        error = msg.error()
        if error is not None:
            raise TransientError(f"reading {topic}: {error.str()}")
        partition, offset = msg.partition(), msg.offset()
        if partition is None or offset is None or partition not in pending:
            continue  # a partition already read to its end
        if offset < uppers[partition]:
            yield msg
        if offset + 1 >= uppers[partition]:
            pending.discard(partition)


def _drop_finished(
    consumer: Consumer, topic: str, pending: set[int], uppers: Mapping[int, int]
) -> None:
    positions = consumer.position([TopicPartition(topic, p) for p in pending])
    for tp in positions:
        if tp.offset >= uppers[tp.partition]:
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
