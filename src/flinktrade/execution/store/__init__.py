"""The order store: one SQLite file that makes the executor safe to kill at any instant.

What it holds, and why (one module a part):

- ``orders``: one row per ``client_order_id``. The intent is written and committed (fsync) before
  the HTTP call, so a restart finds every order that may have reached the broker and looks it up
  instead of guessing. Denied signals are rows too, so a repeated signal is never decided twice.
- ``fills``: one row per broker execution id; positions are the sum of fills (plus adoptions).
  ``late_costs``: the execution ids whose shares a fill learned over REST already holds, their
  commission added to that fill (once).
- ``outbox``: the ``trading.orders`` / ``trading.fills`` / ``alerts`` records written in the same
  transaction as the state change they describe, published to Kafka afterwards and then deleted.
  A crash in between publishes them again; consumers drop repeats by their ids.
- ``state`` (the ``kv`` table): the kill switch (survives restarts, settable from another
  process), equity marks, and the executor's heartbeat (``flinktrade status``: "executor last
  seen 0.4 s ago").
- ``cancels``: the cancel intent of an exit (stored before the cancel request) and the fill mark
  of an order waiting for exits to be cancelled first.
- ``replaces``: the replace intent of an exit (the new exit's row, naming the exit it replaces)
  and the newest exits of each entry.
- ``schema``: the tables, the file (0600, WAL, ``synchronous=FULL``) and the shared connection;
  ``records``: the values read back (``StoredOrder``, ``Phase``...), no SQL.

``OrderStore`` is those parts in one object, the only one callers use; ``open_store`` is the one
way the CLI and the API open an existing store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flinktrade.errors import ConfigError
from flinktrade.events import Alert, Fill, OrderEvent
from flinktrade.execution.store.cancels import CancelTable
from flinktrade.execution.store.fills import FillTable
from flinktrade.execution.store.records import (
    NOT_FINAL,
    Heartbeat,
    OutboxRecord,
    Phase,
    StoredOrder,
    advances,
    order_event,
)
from flinktrade.execution.store.replaces import ReplaceTable, replace_id
from flinktrade.execution.store.schema import create_private
from flinktrade.execution.store.state import StateTable

__all__ = [
    "NOT_FINAL",
    "Heartbeat",
    "OrderStore",
    "OutboxRecord",
    "Phase",
    "StoredOrder",
    "advances",
    "create_private",
    "open_store",
    "order_event",
    "replace_id",
    "require_store",
]


class OrderStore(ReplaceTable, FillTable, CancelTable, StateTable):
    """The executor's durable memory. One instance per thread (SQLite connections are not shared).

    Writes open a transaction implicitly; methods that must be durable before the caller goes on
    (``add_intent``) commit themselves, the others leave it to ``commit()`` so a burst of denials
    costs one fsync.
    """

    def __init__(self, path: Path, *, broker: str = "sim", topics: dict[str, str] | None = None):
        super().__init__(path, broker=broker)
        self.topics = topics or {
            "orders": OrderEvent.topic,
            "fills": Fill.topic,
            "alerts": Alert.topic,
        }


def require_store(path: Path) -> None:
    """A ``ConfigError`` (one line) when there is no order store at ``path``."""
    if not path.is_file():
        raise ConfigError(
            f"no order store at {path}: the executor has not run with these settings; set "
            "FLINKTRADE_STATE_DIR (or FLINKTRADE_EXECUTION__STORE_FILE) to the executor's"
        )


@contextmanager
def open_store(path: Path, *, create: bool = False) -> Iterator[OrderStore]:
    """The order store at ``path``, closed on the way out: the one way the CLI and the API open
    it. Without ``create`` a missing file is a ``ConfigError`` (``require_store``): a kill switch
    set in a new empty store would stop nothing."""
    if not create:
        require_store(path)
    store = OrderStore(path)
    try:
        yield store
    finally:
        store.close()
