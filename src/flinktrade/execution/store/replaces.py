"""The store's part of replacing exits: the replace intent, and the exits an entry has now.

When its entry fills more, an exit the executor owns is replaced by a new order for the new qty.
The replace intent is the new exit's own row, stored and committed before the request like every
intent: the same entry (``parent``), leg and spec, the new ``qty``, a derived id (``replace_id``:
the leg's id + ``-r<n>``, n the count of replaces of that leg stored so far + 1) and ``replaces`` = the exit it replaces. A restart
finds it open and looks the new id up before anything is sent again; the old exit ends canceled
when the broker reports it ``replaced``. ``current_exits`` are an entry's newest exits (one per
leg: the last of each chain of replaces that reached the broker or may have); ``entries_with_open_exits`` are the entries to check
for exits behind their filled qty.
"""

from __future__ import annotations

from decimal import Decimal

from flinktrade.execution.store.orders import OrderTable
from flinktrade.execution.store.records import StoredOrder, order_from_row


def replace_id(leg_client_order_id: str, n: int) -> str:
    """The ``client_order_id`` of the ``n``-th replacement of the exit ``leg_client_order_id``
    (within Alpaca's 128 characters: a leg id has at most 102)."""
    return f"{leg_client_order_id}-r{n}"


def _dead(row: str) -> str:
    """SQL: the order ``row`` is a replace that never reached the broker (refused, dropped)."""
    return (
        f"({row}.replaces IS NOT NULL AND {row}.status IN ('canceled', 'rejected')"
        f" AND {row}.broker_order_id IS NULL)"
    )


class ReplaceTable(OrderTable):
    """Replace intents of exits, and the newest exits of each entry."""

    def current_exits(self, entry: str) -> list[StoredOrder]:
        """The exits of ``entry`` that no other exit replaces (the newest of each chain; a
        replace that never reached the broker, refused or dropped, does not count), by id."""
        rows = self._db.execute(
            f"SELECT * FROM orders o WHERE o.parent = ? AND NOT {_dead('o')} AND NOT EXISTS"
            f" (SELECT 1 FROM orders r WHERE r.replaces = o.client_order_id AND NOT {_dead('r')})"
            " ORDER BY o.client_order_id",
            (entry,),
        )
        return [order_from_row(row) for row in rows]

    def replaces_of(self, entry: str, leg: str) -> int:
        """How many replaces of ``entry``'s ``leg`` exit are stored (any outcome): the next
        one is number this + 1."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM orders WHERE parent = ? AND leg = ? AND replaces IS NOT NULL",
            (entry, leg),
        ).fetchone()
        return int(row[0])

    def failed_replaces(self, client_order_id: str, qty: Decimal) -> int:
        """How many replaces of the exit ``client_order_id`` for ``qty`` never reached the
        broker (refused or dropped)."""
        row = self._db.execute(
            f"SELECT COUNT(*) FROM orders o WHERE o.replaces = ? AND o.qty = ? AND {_dead('o')}",
            (client_order_id, str(qty)),
        ).fetchone()
        return int(row[0])

    def add_replace(self, old: StoredOrder, new_client_order_id: str, qty: Decimal) -> StoredOrder:
        """Store the replace of ``old`` by ``new_client_order_id`` for ``qty`` (committed):
        durable before any request."""
        return self.add_intent(
            client_order_id=new_client_order_id,
            signal=None,
            strategy=old.strategy,
            symbol=old.symbol,
            side=old.side,
            qty=qty,
            notional=None,
            price=old.price,
            spec=old.spec,
            parent=old.parent,
            leg=old.leg,
            replaces=old.client_order_id,
        )

    def entries_with_open_exits(self) -> list[StoredOrder]:
        """Entries whose own exits were placed (``exits = 'placed'``) and have an exit open."""
        rows = self._db.execute(
            "SELECT * FROM orders e WHERE e.exits = 'placed' AND EXISTS"
            " (SELECT 1 FROM orders x WHERE x.parent = e.client_order_id"
            " AND x.phase IN ('intent', 'sending', 'unknown', 'acked'))"
            " ORDER BY e.created_ms, e.client_order_id"
        )
        return [order_from_row(row) for row in rows]
