"""The store's outbox: records queued in the same transaction as the state change they describe.

``trading.orders`` / ``trading.fills`` / ``alerts`` records (and dead letters) are written next to
the rows they describe and published to Kafka afterwards by ``execution.outbox``, then deleted
here. A crash in between publishes them again; consumers drop repeats by their ids.
"""

from __future__ import annotations

from flinktrade import events
from flinktrade.events import Alert, OrderEvent
from flinktrade.execution.store.records import OutboxRecord, StoredOrder, order_event
from flinktrade.execution.store.schema import StoreConnection


class OutboxTable(StoreConnection):
    """The ``outbox`` table; ``topics`` maps ``orders``/``fills``/``alerts`` to their topics."""

    topics: dict[str, str]

    def add_alert(self, alert: Alert) -> None:
        """Queue an alert (committed with the next commit)."""
        self._outbox(self.topics["alerts"], alert)

    def add_dead_letter(self, letter: events.DeadLetter, topic: str) -> None:
        """Queue a dead letter for ``topic`` (committed with the next commit)."""
        self._outbox(topic, letter)

    def outbox(self, limit: int = 1000) -> list[OutboxRecord]:
        rows = self._db.execute(
            "SELECT seq, topic, key, value, ts FROM outbox ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [OutboxRecord(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def delete_outbox(self, up_to_seq: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE seq <= ?", (up_to_seq,))
        self._db.commit()

    def _outbox(self, topic: str, event: events.Event) -> None:
        self._db.execute(
            "INSERT INTO outbox (topic, key, value, ts) VALUES (?, ?, ?, ?)",
            (topic, event.key, events.encode(event), event.ts),
        )

    def _emit_order(self, order: StoredOrder, now: int) -> OrderEvent:
        event = order_event(order, now)
        self._outbox(self.topics["orders"], event)
        return event
