"""The outbox publisher: what the order store's outbox holds goes to Kafka, then is forgotten.

At least once: records are deleted only after the producer flushed them, so a crash or a broker
outage in between publishes them again later (consumers drop repeats by their ids). The sink is
anything with ``send_raw`` and ``flush`` (``bus.EventProducer``; a list in unit tests).
"""

from __future__ import annotations

import logging
from typing import Protocol

from flinktrade.errors import TransientError
from flinktrade.execution.store import OrderStore

log = logging.getLogger(__name__)

BATCH = 5000


class Sink(Protocol):
    def send_raw(self, topic: str, value: bytes, key: bytes | None, ts: int | None) -> None: ...

    def flush(self, timeout_s: float = ...) -> None: ...


class OutboxPublisher:
    def __init__(self, store: OrderStore, sink: Sink) -> None:
        self.store = store
        self.sink = sink

    def publish(self) -> None:
        """Commit the store, then send and delete the outbox, batch by batch. A flush that fails
        (``TransientError``) leaves the rest for the next call."""
        self.store.commit()
        while True:
            records = self.store.outbox(BATCH)
            if not records:
                return
            for record in records:
                self.sink.send_raw(record.topic, record.value, record.key, record.ts)
            try:
                self.sink.flush(15.0)
            except TransientError as exc:
                log.warning("executor: publishing failed, will retry: %s", exc)
                return
            self.store.delete_outbox(records[-1].seq)
