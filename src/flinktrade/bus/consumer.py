"""The one way flinktrade builds a Kafka consumer.

``make_consumer(servers, group_id, ...)`` returns a plain ``confluent_kafka.Consumer`` configured
from named choices instead of a hand-written librdkafka dict; ``consuming(...)`` is the same as a
context manager that closes it. Each choice maps to one librdkafka setting and is always set
explicitly, so what a service reads never depends on a library default:

- ``servers`` -> ``bootstrap.servers``: a ``KafkaSettings`` (with its security settings, see
  ``bus.client``) or the ``host:port,...`` string of a PLAINTEXT cluster.
- ``group_id`` -> ``group.id``: required; ``unique_group_id(prefix)`` makes a throwaway group for
  a reader that never resumes.
- ``start_from`` -> ``auto.offset.reset`` (default ``"latest"``): where a group with no committed
  offset starts.
- ``read_committed`` -> ``isolation.level`` (default ``True``, as librdkafka's): skip records of
  aborted transactions.
- ``auto_commit`` -> ``enable.auto.commit`` (default ``False``: the caller calls ``commit()``).
- ``store_offsets`` -> ``enable.auto.offset.store`` (default ``True``); ``False`` when the caller
  marks each record done itself (``consumer.store_offsets(msg)``), so that auto commit commits
  only records that were finished.
- ``commit_interval_ms`` -> ``auto.commit.interval.ms`` (librdkafka's 5 s unless given).
- ``instance_id`` -> ``group.instance.id`` (none unless given): static membership, so a restarted
  member takes its partitions back at once.
- ``extra``: any other setting (``session.timeout.ms``, ``fetch.wait.max.ms``, ...); it wins over
  the named ones.

Where it reads: ``topics`` subscribes (group-managed partitions; ``on_assign``/``on_revoke``/
``on_lost`` are passed to ``subscribe``), ``assignment`` assigns fixed partitions and offsets;
with neither the caller assigns later (e.g. after reading end offsets with the consumer itself).
Giving both is refused.

Typical uses::

    # at-least-once service: store each offset when its record is done, commit in the background
    c = make_consumer(kafka, "flinktrade-executor", topics=["trading.signals"],
                      start_from="earliest", auto_commit=True, store_offsets=False,
                      commit_interval_ms=1000, instance_id="flinktrade-executor-executor")
    # reader of fixed partitions that never commits
    with consuming(servers, unique_group_id("flinktrade-reader")) as c:
        c.assign([...])
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from confluent_kafka import Consumer, TopicPartition

from flinktrade.bus.client import Servers, client_config

StartFrom = Literal["earliest", "latest"]
"""Where a group without a committed offset starts reading."""

Rebalance = Callable[[Consumer, list[TopicPartition]], None]
"""A rebalance callback as ``Consumer.subscribe`` takes it."""


def unique_group_id(prefix: str) -> str:
    """A group id no other consumer uses (for readers that assign partitions and never resume)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def consumer_config(
    servers: Servers,
    group_id: str,
    *,
    start_from: StartFrom = "latest",
    read_committed: bool = True,
    auto_commit: bool = False,
    store_offsets: bool = True,
    commit_interval_ms: int | None = None,
    instance_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The librdkafka configuration ``make_consumer`` uses (see the module docstring)."""
    conf: dict[str, Any] = client_config(servers) | {
        "group.id": group_id,
        "auto.offset.reset": start_from,
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "enable.auto.commit": auto_commit,
        "enable.auto.offset.store": store_offsets,
    }
    if commit_interval_ms is not None:
        conf["auto.commit.interval.ms"] = commit_interval_ms
    if instance_id is not None:
        conf["group.instance.id"] = instance_id
    if extra:
        conf.update(extra)
    return conf


def make_consumer(
    servers: Servers,
    group_id: str,
    *,
    topics: Sequence[str] = (),
    assignment: Sequence[TopicPartition] = (),
    start_from: StartFrom = "latest",
    read_committed: bool = True,
    auto_commit: bool = False,
    store_offsets: bool = True,
    commit_interval_ms: int | None = None,
    instance_id: str | None = None,
    on_assign: Rebalance | None = None,
    on_revoke: Rebalance | None = None,
    on_lost: Rebalance | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Consumer:
    """A consumer configured as the module docstring says, subscribed to ``topics`` or assigned
    ``assignment`` (or neither). The caller owns it and closes it (or uses ``consuming``)."""
    if topics and assignment:
        raise ValueError("a consumer subscribes to topics or is assigned partitions, not both")
    consumer = Consumer(
        consumer_config(
            servers,
            group_id,
            start_from=start_from,
            read_committed=read_committed,
            auto_commit=auto_commit,
            store_offsets=store_offsets,
            commit_interval_ms=commit_interval_ms,
            instance_id=instance_id,
            extra=extra,
        )
    )
    try:
        if topics:
            callbacks: dict[str, Rebalance] = {}
            if on_assign is not None:
                callbacks["on_assign"] = on_assign
            if on_revoke is not None:
                callbacks["on_revoke"] = on_revoke
            if on_lost is not None:
                callbacks["on_lost"] = on_lost
            consumer.subscribe(list(topics), **callbacks)
        elif assignment:
            consumer.assign(list(assignment))
    except BaseException:
        consumer.close()
        raise
    return consumer


@contextmanager
def consuming(
    servers: Servers,
    group_id: str,
    **options: Any,
) -> Iterator[Consumer]:
    """``make_consumer`` (same arguments) as a context manager that closes the consumer."""
    consumer = make_consumer(servers, group_id, **options)
    try:
        yield consumer
    finally:
        consumer.close()
