"""The order store's file: its tables, how it is opened, and the connection every part shares.

The file (and its WAL) is created readable by its owner only (0600). WAL mode with
``synchronous=FULL``: a committed transaction survives a power cut, and the CLI
(``flinktrade halt``) can write while the executor runs. A store written before a column existed
gets it on open (``ADDED_COLUMNS`` of ``orders``: ``signal_ts``; the order model's ``spec``,
``parent``, ``leg`` and ``exits``; the cancels' ``cancel`` and ``fill_mark``; the replaces' ``replaces``; and
``fills.strategy``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
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
    signal_ts INTEGER,
    spec TEXT,
    parent TEXT,
    leg TEXT,
    exits TEXT,
    cancel TEXT,
    fill_mark INTEGER,
    replaces TEXT
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
    ts INTEGER NOT NULL,
    strategy TEXT
);
CREATE TABLE IF NOT EXISTS late_costs (
    execution_id TEXT PRIMARY KEY,
    fill_id TEXT NOT NULL,
    commission TEXT NOT NULL
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


ADDED_COLUMNS = (
    ("signal_ts", "INTEGER"),
    ("spec", "TEXT"),
    ("parent", "TEXT"),
    ("leg", "TEXT"),
    ("exits", "TEXT"),
    ("cancel", "TEXT"),
    ("fill_mark", "INTEGER"),
    ("replaces", "TEXT"),
)
"""Columns of ``orders`` added after the first stores were written, in table order: a store
without them gets them on open (NULL: a plain market order, no parent, no leg, no exits, no
cancel asked for, no fill mark, replacing nothing)."""


def create_private(path: Path) -> None:
    """Create ``path`` (and its folder) if missing, readable and writable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    path.chmod(0o600)  # also when it existed with looser bits


def connect(path: Path) -> sqlite3.Connection:
    """The store at ``path`` (created 0600 if missing), its tables there, its WAL files 0600."""
    create_private(path)
    # one user at a time, but it may be built in one thread and used in another
    db = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=10000")
    db.executescript(SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(orders)")}
    for name, kind in ADDED_COLUMNS:  # a store written before the column existed
        if name not in columns:
            try:
                db.execute(f"ALTER TABLE orders ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:  # another process added it just now
                if "duplicate column" not in str(exc):
                    raise
    if "strategy" not in {row[1] for row in db.execute("PRAGMA table_info(fills)")}:
        db.execute("ALTER TABLE fills ADD COLUMN strategy TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS orders_parent ON orders (parent)")
    db.execute("CREATE INDEX IF NOT EXISTS orders_exits ON orders (exits)")
    db.commit()
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.chmod(0o600)
    return db


class StoreConnection:
    """The connection the parts of ``OrderStore`` share, and its transactions.

    Writes open a transaction implicitly; methods that must be durable before the caller goes on
    commit themselves, the others leave it to ``commit()`` so a burst of writes costs one fsync.
    """

    def __init__(self, path: Path, *, broker: str) -> None:
        self.path = path
        self.broker = broker
        self._db = connect(path)

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
