"""The store's ``fills``, ``late_costs`` and ``adjustments`` tables: executions and the positions
they sum to.

One row per broker execution id, so a repeated fill is recognised; positions are the sum of the
fills plus the adjustments an operator adopted from the broker after a reconciliation mismatch.
A fill learned over REST (an order looked up before the broker's update arrived) has no commission:
the REST order carries none. When the broker's update for those shares arrives later, its
commission is added to that fill and its execution id kept in ``late_costs``, so a replay of the
update adds nothing. (The ``trading.fills`` record already sent keeps the fill as first learned;
the store's books, ``fills()``, have the commission.)
Each fill keeps its order's strategy (the per-strategy books, ``flinktrade.books``); a fill stored
before the column existed takes it from its order, while that order is kept.
"""

from __future__ import annotations

from decimal import Decimal

from flinktrade.events import Fill, Side
from flinktrade.execution.store.outbox import OutboxTable


class FillTable(OutboxTable):
    """Executions (each queued as a ``trading.fills`` record) and positions."""

    def has_fill(self, execution_id: str) -> bool:
        """Whether this execution is recorded: as a fill, or as a fill's late costs."""
        row = self._db.execute(
            "SELECT 1 FROM fills WHERE execution_id = ?"
            " UNION ALL SELECT 1 FROM late_costs WHERE execution_id = ?",
            (execution_id, execution_id),
        ).fetchone()
        return row is not None

    def order_fills(self, client_order_id: str) -> list[str]:
        """The execution ids of an order's fills, in the order they were recorded."""
        rows = self._db.execute(
            "SELECT execution_id FROM fills WHERE client_order_id = ? ORDER BY rowid",
            (client_order_id,),
        )
        return [execution_id for (execution_id,) in rows]

    def add_late_costs(
        self, execution_id: str, fill_id: str, commission: Decimal, *, commit: bool = True
    ) -> bool:
        """Add the commission of execution ``execution_id`` (whose shares are already recorded, in
        fill ``fill_id``) to that fill; False if the execution is already known (a repeat)."""
        if self.has_fill(execution_id):
            return False
        row = self._db.execute(
            "SELECT commission FROM fills WHERE execution_id = ?", (fill_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no fill {fill_id!r} to add the costs of {execution_id!r} to")
        self._db.execute(
            "INSERT INTO late_costs (execution_id, fill_id, commission) VALUES (?, ?, ?)",
            (execution_id, fill_id, str(commission)),
        )
        self._db.execute(
            "UPDATE fills SET commission = ? WHERE execution_id = ?",
            (str(Decimal(row[0]) + commission), fill_id),
        )
        if commit:
            self._db.commit()
        return True

    def add_fill(self, fill: Fill, *, commit: bool = True) -> bool:
        """Record one execution; False if its execution id is already known (a repeat)."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO fills (execution_id, client_order_id, order_id, symbol, side,"
            " qty, price, commission, ts, strategy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                fill.id,
                fill.client_order_id,
                fill.order_id,
                fill.symbol,
                fill.side.value,
                str(fill.qty),
                str(fill.price),
                str(fill.commission),
                fill.ts,
                fill.strategy,
            ),
        )
        if cursor.rowcount == 0:
            return False
        self._outbox(self.topics["fills"], fill)
        if commit:
            self._db.commit()
        return True

    def fills(self) -> list[Fill]:
        """Every fill, in time order, with its strategy."""
        rows = self._db.execute(
            "SELECT f.execution_id, f.client_order_id, f.order_id, f.symbol, f.side, f.qty,"
            " f.price, f.commission, f.ts, COALESCE(f.strategy, o.strategy) FROM fills f"
            " LEFT JOIN orders o ON o.client_order_id = f.client_order_id"
            " ORDER BY f.ts, f.execution_id"
        ).fetchall()
        return [
            Fill(
                id=r[0],
                client_order_id=r[1],
                order_id=r[2],
                symbol=r[3],
                side=Side(r[4]),
                qty=Decimal(r[5]),
                price=Decimal(r[6]),
                commission=Decimal(r[7]),
                ts=r[8],
                strategy=r[9],
                broker=self.broker,
            )
            for r in rows
        ]

    def positions(self) -> dict[str, Decimal]:
        """Signed shares per symbol from the fills (plus adopted broker positions); no zeros."""
        totals: dict[str, Decimal] = {}
        for symbol, side, qty in self._db.execute("SELECT symbol, side, qty FROM fills"):
            sign = 1 if side == Side.BUY.value else -1
            totals[symbol] = totals.get(symbol, Decimal(0)) + sign * Decimal(qty)
        for symbol, qty in self._db.execute("SELECT symbol, qty FROM adjustments"):
            totals[symbol] = totals.get(symbol, Decimal(0)) + Decimal(qty)
        return {s: q for s, q in sorted(totals.items()) if q != 0}

    def adjustments(self) -> dict[str, Decimal]:
        """Shares adopted from the broker per symbol (``adopt_positions``), in all; no zeros."""
        rows = self._db.execute("SELECT symbol, qty FROM adjustments ORDER BY symbol")
        return {symbol: Decimal(qty) for symbol, qty in rows if Decimal(qty) != 0}

    def adopt_positions(self, broker_positions: dict[str, Decimal]) -> dict[str, Decimal]:
        """Make the local positions equal the broker's by recording adjustments (an operator's
        decision after a reconciliation mismatch). Returns the adjustment per symbol."""
        local = self.positions()
        changes: dict[str, Decimal] = {}
        for symbol in sorted(set(local) | set(broker_positions)):
            delta = broker_positions.get(symbol, Decimal(0)) - local.get(symbol, Decimal(0))
            if delta != 0:
                changes[symbol] = delta
                row = self._db.execute(
                    "SELECT qty FROM adjustments WHERE symbol = ?", (symbol,)
                ).fetchone()
                total = delta + (Decimal(row[0]) if row else Decimal(0))
                self._db.execute(
                    "INSERT OR REPLACE INTO adjustments (symbol, qty) VALUES (?, ?)",
                    (symbol, str(total)),
                )
        self._db.commit()
        return changes
