"""Topic administration: list, create (idempotently) and delete topics."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

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
