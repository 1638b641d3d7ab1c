"""The store's part of cancelling exits: the cancel intent, and the fill mark of a waiting order.

Before the executor asks the broker to cancel an exit it marks the exit ``cancel = 'wanted'`` and
commits (fsync): a restart finds the cancel unfinished and finishes it, and an exit marked so is
never (re)sent. ``sent`` follows once the broker answered the cancel request. An order that must
wait for exits to be cancelled first (it closes the position they protect) keeps a ``fill_mark``:
the last fill stored when it was decided; ``exit_fills_after`` says whether exits of its symbol
filled since, i.e. whether the position changed under it.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from flinktrade.execution.store.outbox import OutboxTable
from flinktrade.execution.store.records import StoredOrder, order_from_row

WANTED = "wanted"
"""The cancel of this exit is decided (stored before any request)."""
SENT = "sent"
"""The broker answered the cancel request (the exit ends canceled, or filled if a fill came first)."""


class CancelTable(OutboxTable):
    """Cancel intents of exits, and fill marks of the orders waiting for them."""

    def open_exits(self, symbol: str) -> list[StoredOrder]:
        """The exits of ``symbol`` not final in the store (broker legs and the executor's own)."""
        rows = self._db.execute(
            "SELECT * FROM orders WHERE symbol = ? AND parent IS NOT NULL"
            " AND phase IN ('intent', 'sending', 'unknown', 'acked')"
            " ORDER BY created_ms, client_order_id",
            (symbol,),
        )
        return [order_from_row(row) for row in rows]

    def want_cancel(self, client_order_ids: Iterable[str]) -> None:
        """Mark these exits' cancel as decided, and commit: durable before any cancel request."""
        for coid in client_order_ids:
            self._db.execute(
                "UPDATE orders SET cancel = ? WHERE client_order_id = ? AND cancel IS NULL",
                (WANTED, coid),
            )
        self._db.commit()

    def cancel_sent(self, client_order_id: str) -> None:
        """The broker answered the cancel request of this exit (committed)."""
        self._db.execute(
            "UPDATE orders SET cancel = ? WHERE client_order_id = ? AND cancel IS NOT NULL",
            (SENT, client_order_id),
        )
        self._db.commit()

    def last_fill(self) -> int:
        """The row number of the newest fill stored (0 with none): a ``fill_mark``."""
        row = self._db.execute("SELECT MAX(rowid) FROM fills").fetchone()
        return int(row[0] or 0)

    def set_fill_mark(self, client_order_id: str, mark: int) -> None:
        """Keep ``mark`` on a waiting order (only the first is kept), committed."""
        self._db.execute(
            "UPDATE orders SET fill_mark = ? WHERE client_order_id = ? AND fill_mark IS NULL",
            (mark, client_order_id),
        )
        self._db.commit()

    def exit_fills_after(self, mark: int, symbol: str, side: str, strategy: str | None) -> Decimal:
        """Shares that exits of ``symbol`` on ``side`` (of ``strategy``; of any with None) filled
        after the fill ``mark``."""
        sql = (
            "SELECT f.qty FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id"
            " WHERE f.rowid > ? AND o.parent IS NOT NULL AND o.symbol = ? AND o.side = ?"
        )
        args: list[object] = [mark, symbol, side]
        if strategy is not None:
            sql += " AND o.strategy = ?"
            args.append(strategy)
        return sum((Decimal(r[0]) for r in self._db.execute(sql, args)), Decimal(0))
