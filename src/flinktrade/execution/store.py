"""The order store: one SQLite file that makes the executor safe to kill at any instant.

What it holds, and why:

- ``orders``: one row per ``client_order_id``. The intent is written and committed (fsync) before
  the HTTP call, so a restart finds every order that may have reached the broker and looks it up
  instead of guessing. Denied signals are rows too, so a repeated signal is never decided twice.
- ``fills``: one row per broker execution id; positions are the sum of fills (plus adoptions).
- ``outbox``: the ``trading.orders`` / ``trading.fills`` / ``alerts`` records written in the same
  transaction as the state change they describe, published to Kafka afterwards and then deleted.
  A crash in between publishes them again; consumers drop repeats by their ids.
- ``kv``: the kill switch (survives restarts, settable from another process), equity marks, and
  the executor's heartbeat (``flinktrade status``: "executor last seen 0.4 s ago").

An intent and its ``trading.orders`` record are one transaction: the event is built (and so
validated) before the row is written, and a failure rolls both back. The file (and its WAL) is
created readable by its owner only (0600).

WAL mode with ``synchronous=FULL``: a committed transaction survives a power cut, and the CLI
(``flinktrade halt``) can write while the executor runs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from flinktrade import events
from flinktrade.errors import ConfigError
from flinktrade.events import Alert, Fill, OrderEvent, OrderStatus, Side

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    signal_id TEXT,
    strategy TEXT,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty TEXT,
    notional TEXT,
    price TEXT,
    order_type TEXT NOT NULL DEFAULT 'market',
    status TEXT NOT NULL,
    phase TEXT NOT NULL,
    broker_order_id TEXT,
    filled_qty TEXT NOT NULL DEFAULT '0',
    filled_avg_price TEXT,
    rule TEXT,
    reason TEXT,
    broker TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    sent_ms INTEGER,
    updated_ms INTEGER NOT NULL,
    signal_ts INTEGER
);
CREATE INDEX IF NOT EXISTS orders_open ON orders (phase);
CREATE INDEX IF NOT EXISTS orders_sent ON orders (sent_ms);
CREATE INDEX IF NOT EXISTS orders_rule ON orders (rule, created_ms);
CREATE TABLE IF NOT EXISTS fills (
    execution_id TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty TEXT NOT NULL,
    price TEXT NOT NULL,
    commission TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS adjustments (symbol TEXT PRIMARY KEY, qty TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    ts INTEGER NOT NULL
);
"""


class Phase(StrEnum):
    """Where an order is in its life, as far as the executor knows (the values are on disk)."""

    INTENT = "intent"  # stored, request not yet attempted
    SENDING = "sending"  # the request may have reached the broker
    UNKNOWN = "unknown"  # the request failed in a way that does not say whether it arrived
    ACKED = "acked"  # the broker knows it (we have its id)
    FINAL = "final"  # filled, canceled, expired, rejected or denied


NOT_FINAL = frozenset({Phase.INTENT, Phase.SENDING, Phase.UNKNOWN, Phase.ACKED})


@dataclass(frozen=True)
class StoredOrder:
    client_order_id: str
    signal_id: str | None
    strategy: str | None
    symbol: str
    side: Side
    qty: Decimal | None
    notional: Decimal | None
    price: Decimal | None
    status: OrderStatus
    phase: Phase
    broker_order_id: str | None
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    rule: str | None
    reason: str | None
    broker: str
    created_ms: int
    sent_ms: int | None
    updated_ms: int
    signal_ts: int | None = None
    """The oldest of the signal's ``ts`` and ``ingest_ts``: its age is re-checked before every
    (re)send. None for orders without a signal (flatten)."""

    @property
    def open(self) -> bool:
        return self.phase in NOT_FINAL

    @property
    def born_ms(self) -> int:
        """Since when this order's age counts: its signal's time, else when it was stored."""
        return self.created_ms if self.signal_ts is None else min(self.signal_ts, self.created_ms)


@dataclass(frozen=True)
class Heartbeat:
    """The executor's last sign of life, written to the store every ``heartbeat_interval_s``."""

    ts_ms: int
    pid: int

    def age_s(self, now_ms: int) -> float:
        return max(0.0, (now_ms - self.ts_ms) / 1000)


def create_private(path: Path) -> None:
    """Create ``path`` (and its folder) if missing, readable and writable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    path.chmod(0o600)  # also when it existed with looser bits


@dataclass(frozen=True)
class OutboxRecord:
    seq: int
    topic: str
    key: bytes | None
    value: bytes
    ts: int


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _ms() -> int:
    return time.time_ns() // 1_000_000


_STATUS_RANK = {
    OrderStatus.PENDING: 0,
    OrderStatus.ACCEPTED: 1,
    OrderStatus.NEW: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
}


def advances(old: OrderStatus, old_filled: Decimal, new: OrderStatus, new_filled: Decimal) -> bool:
    """Whether ``new`` is a step forward from ``old``: never back from a final state, never fewer
    shares filled, and a change of status or of the filled quantity."""
    if old.final or new_filled < old_filled:
        return False
    if new_filled > old_filled:
        return True
    if new == old:
        return False
    return new.final or _STATUS_RANK.get(new, 3) > _STATUS_RANK.get(old, 3)


class OrderStore:
    """The executor's durable memory. One instance per thread (SQLite connections are not shared).

    Writes open a transaction implicitly; methods that must be durable before the caller goes on
    (``add_intent``) commit themselves, the others leave it to ``commit()`` so a burst of denials
    costs one fsync.
    """

    def __init__(self, path: Path, *, broker: str = "sim", topics: dict[str, str] | None = None):
        create_private(path)
        self.path = path
        self.broker = broker
        self.topics = topics or {
            "orders": OrderEvent.topic,
            "fills": Fill.topic,
            "alerts": Alert.topic,
        }
        # one user at a time, but it may be built in one thread and used in another
        self._db = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(orders)")}
        if "signal_ts" not in columns:  # a store written before the column existed
            self._db.execute("ALTER TABLE orders ADD COLUMN signal_ts INTEGER")
        self._db.commit()
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.chmod(0o600)

    def close(self) -> None:
        self._db.commit()
        self._db.close()

    def commit(self) -> None:
        self._db.commit()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self._db.rollback()
            raise
        self._db.commit()

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """All or nothing, without touching writes queued before (a savepoint)."""
        self._db.execute("SAVEPOINT atomic")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO atomic")
            self._db.execute("RELEASE atomic")
            raise
        self._db.execute("RELEASE atomic")

    # ------------------------------------------------------------------ orders

    def get(self, client_order_id: str) -> StoredOrder | None:
        row = self._db.execute(
            "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return None if row is None else self._order(row)

    def exists(self, client_order_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return row is not None

    def orders(self, *, open_only: bool = False, limit: int | None = None) -> list[StoredOrder]:
        sql = "SELECT * FROM orders"
        if open_only:
            sql += " WHERE phase IN ('intent', 'sending', 'unknown', 'acked')"
        sql += " ORDER BY created_ms, client_order_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._order(row) for row in self._db.execute(sql)]

    def open_orders(self) -> list[StoredOrder]:
        return self.orders(open_only=True)

    def sent_since(self, since_ms: int) -> int:
        """Orders handed to the broker (or about to be) since ``since_ms``."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM orders WHERE sent_ms IS NOT NULL AND sent_ms >= ?", (since_ms,)
        ).fetchone()
        return int(row[0])

    def denials_since(self, rule: str, since_ms: int) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM orders WHERE rule = ? AND created_ms >= ?", (rule, since_ms)
        ).fetchone()
        return int(row[0])

    def add_intent(
        self,
        *,
        client_order_id: str,
        signal: events.Signal | None,
        symbol: str,
        side: Side,
        qty: Decimal | None,
        notional: Decimal | None,
        price: Decimal | None,
        strategy: str | None = None,
    ) -> StoredOrder:
        """Store an order before it is sent, with its ``pending`` order event, and commit: after
        this returns both are durable; if it raises, neither was written."""
        now = _ms()
        order = StoredOrder(
            client_order_id=client_order_id,
            signal_id=signal.id if signal else None,
            strategy=signal.strategy if signal else strategy,
            symbol=symbol,
            side=side,
            qty=qty,
            notional=notional,
            price=price,
            status=OrderStatus.PENDING,
            phase=Phase.INTENT,
            broker_order_id=None,
            filled_qty=Decimal(0),
            filled_avg_price=None,
            rule=None,
            reason=None,
            broker=self.broker,
            created_ms=now,
            sent_ms=None,
            updated_ms=now,
            signal_ts=min(signal.ts, signal.ingest_ts) if signal else None,
        )
        event = order_event(order, now)  # raises before anything is written
        with self._atomic():
            self._db.execute(
                "INSERT INTO orders (client_order_id, signal_id, strategy, symbol, side, qty,"
                " notional, price, status, phase, broker, created_ms, updated_ms, signal_ts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    order.client_order_id,
                    order.signal_id,
                    order.strategy,
                    symbol,
                    side.value,
                    _text(qty),
                    _text(notional),
                    _text(price),
                    order.status.value,
                    order.phase,
                    self.broker,
                    now,
                    now,
                    order.signal_ts,
                ),
            )
            self._outbox(self.topics["orders"], event)
        self._db.commit()
        return order

    def record_denial(
        self,
        *,
        client_order_id: str,
        signal: events.Signal,
        qty: Decimal | None,
        rule: str,
        reason: str,
    ) -> OrderEvent:
        """A signal refused by a risk check: stored (so a repeat is not decided again) and
        queued as a ``denied`` order event, both or neither. Not committed: call ``commit()``."""
        now = _ms()
        denied = StoredOrder(
            client_order_id=client_order_id,
            signal_id=signal.id,
            strategy=signal.strategy,
            symbol=signal.symbol,
            side=signal.side,
            qty=qty,
            notional=None,
            price=signal.price,
            status=OrderStatus.DENIED,
            phase=Phase.FINAL,
            broker_order_id=None,
            filled_qty=Decimal(0),
            filled_avg_price=None,
            rule=rule,
            reason=reason,
            broker=self.broker,
            created_ms=now,
            sent_ms=None,
            updated_ms=now,
        )
        event = order_event(denied, now)  # raises before anything is written
        with self._atomic():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO orders (client_order_id, signal_id, strategy, symbol, side,"
                " qty, price, status, phase, rule, reason, broker, created_ms, updated_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    client_order_id,
                    signal.id,
                    signal.strategy,
                    signal.symbol,
                    signal.side.value,
                    _text(qty),
                    _text(signal.price),
                    OrderStatus.DENIED.value,
                    Phase.FINAL,
                    rule,
                    reason,
                    self.broker,
                    now,
                    now,
                ),
            )
            if cursor.rowcount:
                self._outbox(self.topics["orders"], event)
        return event

    def mark_sending(self, client_order_id: str) -> None:
        """Just before the HTTP call: from here on the broker may know the order. Committed."""
        now = _ms()
        self._db.execute(
            "UPDATE orders SET phase = ?, sent_ms = COALESCE(sent_ms, ?), updated_ms = ?"
            " WHERE client_order_id = ? AND phase IN ('intent', 'unknown', 'sending')",
            (Phase.SENDING, now, now, client_order_id),
        )
        self._db.commit()

    def mark_unknown(self, client_order_id: str, reason: str) -> None:
        now = _ms()
        self._db.execute(
            "UPDATE orders SET phase = ?, reason = ?, updated_ms = ?"
            " WHERE client_order_id = ? AND phase IN ('intent', 'sending', 'unknown')",
            (Phase.UNKNOWN, reason, now, client_order_id),
        )
        self._db.commit()

    def transition(
        self,
        client_order_id: str,
        status: OrderStatus,
        *,
        broker_order_id: str | None = None,
        filled_qty: Decimal | None = None,
        filled_avg_price: Decimal | None = None,
        reason: str | None = None,
        commit: bool = True,
    ) -> OrderEvent | None:
        """Move an order forward; returns the order event queued, or None when nothing changed
        (a repeat, or a step backwards, which is ignored)."""
        order = self.get(client_order_id)
        if order is None:
            return None
        new_filled = order.filled_qty if filled_qty is None else filled_qty
        broker_id = broker_order_id or order.broker_order_id
        if not advances(order.status, order.filled_qty, status, new_filled):
            if broker_id and not order.broker_order_id:  # learn the id even without a change
                self._db.execute(
                    "UPDATE orders SET broker_order_id = ?, phase = CASE WHEN phase = 'final'"
                    " THEN phase ELSE 'acked' END WHERE client_order_id = ?",
                    (broker_id, client_order_id),
                )
                if commit:
                    self._db.commit()
            return None
        if new_filled > order.filled_qty and status in (OrderStatus.NEW, OrderStatus.ACCEPTED):
            status = OrderStatus.PARTIALLY_FILLED
        now = _ms()
        phase = Phase.FINAL if status.final else Phase.ACKED if broker_id else order.phase
        with self._atomic():  # the state and its order event, both or neither
            self._db.execute(
                "UPDATE orders SET status = ?, phase = ?, broker_order_id = ?, filled_qty = ?,"
                " filled_avg_price = COALESCE(?, filled_avg_price), reason = COALESCE(?, reason),"
                " updated_ms = ? WHERE client_order_id = ?",
                (
                    status.value,
                    phase,
                    broker_id,
                    str(new_filled),
                    _text(filled_avg_price),
                    reason,
                    now,
                    client_order_id,
                ),
            )
            updated = self.get(client_order_id)
            assert updated is not None
            event = self._emit_order(updated, now)
        if commit:
            self._db.commit()
        return event

    # ------------------------------------------------------------------ fills

    def has_fill(self, execution_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM fills WHERE execution_id = ?", (execution_id,)
        ).fetchone()
        return row is not None

    def add_fill(self, fill: Fill, *, commit: bool = True) -> bool:
        """Record one execution; False if its execution id is already known (a repeat)."""
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO fills (execution_id, client_order_id, order_id, symbol, side,"
            " qty, price, commission, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ),
        )
        if cursor.rowcount == 0:
            return False
        self._outbox(self.topics["fills"], fill)
        if commit:
            self._db.commit()
        return True

    def fills(self) -> list[Fill]:
        rows = self._db.execute(
            "SELECT execution_id, client_order_id, order_id, symbol, side, qty, price,"
            " commission, ts FROM fills ORDER BY ts, execution_id"
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

    # ------------------------------------------------------------------ kill switch, marks

    def get_value(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_value(self, key: str, value: str | None, *, commit: bool = True) -> None:
        if value is None:
            self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))
        if commit:
            self._db.commit()

    def halted(self) -> str | None:
        """The kill switch: the reason it was set, or None when trading is allowed."""
        return self.get_value("halted")

    def halt(self, reason: str) -> None:
        self.set_value("halted", reason or "halted")

    def resume(self) -> None:
        self.set_value("halted", None)

    def beat(self, now_ms: int, pid: int) -> None:
        """Record that the executor is alive (committed)."""
        self.set_value("heartbeat", json.dumps({"ts_ms": now_ms, "pid": pid}))

    def heartbeat(self) -> Heartbeat | None:
        """The executor's last heartbeat, or None if no executor ever ran on this store."""
        text = self.get_value("heartbeat")
        if text is None:
            return None
        data = json.loads(text)
        return Heartbeat(ts_ms=int(data["ts_ms"]), pid=int(data["pid"]))

    # ------------------------------------------------------------------ outbox

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

    @staticmethod
    def _order(row: tuple[object, ...]) -> StoredOrder:
        (
            coid,
            signal_id,
            strategy,
            symbol,
            side,
            qty,
            notional,
            price,
            _type,
            status,
            phase,
            broker_order_id,
            filled_qty,
            filled_avg_price,
            rule,
            reason,
            broker,
            created_ms,
            sent_ms,
            updated_ms,
            signal_ts,
        ) = row
        return StoredOrder(
            client_order_id=str(coid),
            signal_id=None if signal_id is None else str(signal_id),
            strategy=None if strategy is None else str(strategy),
            symbol=str(symbol),
            side=Side(str(side)),
            qty=_dec(None if qty is None else str(qty)),
            notional=_dec(None if notional is None else str(notional)),
            price=_dec(None if price is None else str(price)),
            status=OrderStatus(str(status)),
            phase=Phase(str(phase)),
            broker_order_id=None if broker_order_id is None else str(broker_order_id),
            filled_qty=Decimal(str(filled_qty)),
            filled_avg_price=_dec(None if filled_avg_price is None else str(filled_avg_price)),
            rule=None if rule is None else str(rule),
            reason=None if reason is None else str(reason),
            broker=str(broker),
            created_ms=int(str(created_ms)),
            sent_ms=None if sent_ms is None else int(str(sent_ms)),
            updated_ms=int(str(updated_ms)),
            signal_ts=None if signal_ts is None else int(str(signal_ts)),
        )


def order_event(order: StoredOrder, ts: int) -> OrderEvent:
    """The ``trading.orders`` record of an order's current state."""
    return OrderEvent(
        ts=ts,
        event_id=OrderEvent.make_event_id(order.client_order_id, order.status, order.filled_qty),
        id=order.broker_order_id or order.client_order_id,
        client_order_id=order.client_order_id,
        signal_id=order.signal_id,
        strategy=order.strategy,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        notional=order.notional,
        status=order.status,
        filled_qty=order.filled_qty,
        filled_avg_price=order.filled_avg_price,
        reason=order.reason,
        broker=order.broker,
    )


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
