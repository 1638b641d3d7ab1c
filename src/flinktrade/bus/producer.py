"""The event producer: events keyed and timestamped as their topic's contract says.

Producers batch (``linger.ms``) and never wait per message. Failures are per batch: a record the
client refuses (``produce`` errors such as a record over ``message.max.bytes``) or the broker does
not acknowledge (unknown topic, too large, timeout) is reported once, by the next ``flush()``
(``ProduceFailed``); the flush after it starts clean. A fatal producer error (the idempotent
producer gave up) is reported the same way and the client is replaced.

The cluster is a ``KafkaSettings`` (with its security settings) or a PLAINTEXT ``host:port,...``
(``bus.client``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from flinktrade import events
from flinktrade.bus.client import Servers, client_config, servers_of
from flinktrade.errors import TransientError

log = logging.getLogger(__name__)


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

    servers: Servers
    extra: dict[str, Any] = field(default_factory=dict)
    produced: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        self._conf: dict[str, Any] = client_config(self.servers) | {
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

    @property
    def bootstrap_servers(self) -> str:
        return servers_of(self.servers)

    def send(self, event: events.Event, topic: str | None = None) -> None:
        self.send_raw(topic or event.topic, events.encode(event), event.key, event.ts)

    def send_raw(self, topic: str, value: bytes | None, key: bytes | None, ts: int | None) -> None:
        """Queue one record (``value`` None: one without a value, a tombstone); a record the client
        refuses is counted as failed (see ``flush``)."""
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
