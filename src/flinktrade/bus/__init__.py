"""The only code that touches confluent-kafka: flinktrade's Kafka boundary.

- ``bus.client``: ``client_config``, the brokers and security settings every client shares: the
  cluster is a ``KafkaSettings`` (SASL/TLS as configured) or a PLAINTEXT ``host:port,...``.
- ``bus.consumer``: ``make_consumer`` / ``consuming``, the one way to build a consumer.
- ``bus.producer``: ``EventProducer`` (batched, failures reported per batch by ``flush``) and
  ``ProduceFailed``.
- ``bus.admin``: list, create (idempotently) and delete topics; refused credentials are a
  ``ConfigError``.
- ``bus.offsets``: end offsets, a topic's largest timestamp and committed positions, and the
  at-least-once bookkeeping
  (``OffsetTracker``, ``SeenIds``).
- ``bus.readers``: bounded reads for summaries, tools and tests (``read_all``, ``decode_all``,
  ``count_records``; ``read_range``, their one poll loop over offset ranges) and ``wait_for``.

Every name callers use is re-exported here (``bus.EventProducer``, ``bus.ensure_topics``, ...),
and so are the client's own types a consumer loop handles (``Consumer``, ``Message``,
``TopicPartition``, ``KafkaException``, ``KafkaError``, ``OFFSET_BEGINNING``), so no other package imports confluent-kafka.
Which event a topic carries, and how its records are decoded, is ``flinktrade.topics``.
"""

from __future__ import annotations

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from flinktrade.bus.admin import admin, delete_topics, ensure_topics, list_topics
from flinktrade.bus.client import Servers, client_config, servers_of
from flinktrade.bus.consumer import consumer_config, consuming, make_consumer, unique_group_id
from flinktrade.bus.offsets import (
    TP,
    OffsetTracker,
    RecordRef,
    SeenIds,
    committed_positions,
    committed_to_end,
    end_offsets,
    max_timestamp,
)
from flinktrade.bus.producer import MAX_REASONS, EventProducer, ProduceFailed
from flinktrade.bus.readers import count_records, decode_all, read_all, read_range, wait_for

__all__ = [
    "MAX_REASONS",
    "OFFSET_BEGINNING",
    "TP",
    "Consumer",
    "EventProducer",
    "KafkaError",
    "KafkaException",
    "Message",
    "OffsetTracker",
    "ProduceFailed",
    "RecordRef",
    "SeenIds",
    "Servers",
    "TopicPartition",
    "admin",
    "client_config",
    "committed_positions",
    "committed_to_end",
    "consumer_config",
    "consuming",
    "count_records",
    "decode_all",
    "delete_topics",
    "end_offsets",
    "ensure_topics",
    "list_topics",
    "make_consumer",
    "max_timestamp",
    "read_all",
    "read_range",
    "servers_of",
    "unique_group_id",
    "wait_for",
]
