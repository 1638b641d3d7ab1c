"""The API's per-strategy books over a real order store file (``api.strategies.StrategyBooks``):
read incrementally, unreadable rows skipped, a replaced store read from the start, equity curves
bounded. Expected values are worked out by hand in the comments."""

from __future__ import annotations

import sqlite3
from decimal import Decimal as D
from pathlib import Path

from flinktrade.api.strategies import StrategyBooks
from flinktrade.events import Fill, Side
from flinktrade.execution.store import OrderStore

T0 = 1_704_205_800_000


def make_fill(n: int, strategy: str | None, side: str, qty: str, price: str) -> Fill:
    return Fill(
        ts=T0 + n * 1000,
        id=f"x-{n}",
        order_id=f"o-{n}",
        client_order_id=f"c-{n}",
        strategy=strategy,
        symbol="AAPL",
        side=Side(side),
        qty=D(qty),
        price=D(price),
    )


def add(path: Path, *fills: Fill) -> None:
    store = OrderStore(path)
    try:
        for fill in fills:
            store.add_fill(fill)
    finally:
        store.close()


def test_no_store_no_books(tmp_path: Path) -> None:
    assert StrategyBooks(tmp_path / "missing.sqlite").rows({}) == []


def test_books_read_only_new_fills_and_mark_the_curve(tmp_path: Path) -> None:
    path = tmp_path / "orders.sqlite"
    add(path, make_fill(1, "a", "buy", "10", "100"), make_fill(2, "b", "sell", "5", "100"))
    books = StrategyBooks(path)
    first = {r["strategy"]: r for r in books.rows({"AAPL": D(101)}, ts=T0 + 10_000)}
    assert first["a"]["unrealized_pnl"] == "10.00"  # 10 x (101 - 100)
    assert first["b"]["unrealized_pnl"] == "-5.00"  # short 5 from 100
    # a: 0 at its fill, 10 at the mark; b: 0 at its fill, -5 at the mark
    assert first["a"]["equity"] == [
        {"ts": T0 + 1000, "equity": "0.00"},
        {"ts": T0 + 10_000, "equity": "10.00"},
    ]
    assert [p["equity"] for p in first["b"]["equity"]] == ["0.00", "-5.00"]
    assert books.fills_read == 2

    add(path, make_fill(3, "a", "sell", "10", "104"))  # realises 10 x 4 = 40
    again = {r["strategy"]: r for r in books.rows({"AAPL": D(104)})}
    assert books.fills_read == 3  # only the new fill was read
    assert again["a"]["realized_pnl"] == "40.00" and again["a"]["trades"] == 1
    assert again["a"]["win_rate"] == 1.0
    assert again["b"]["unrealized_pnl"] == "-20.00"  # 5 x (100 - 104)


HOSTILE = [  # (side, qty, price, commission): rows no executor writes, each skipped
    ("buy", "lots", "1", "0"),
    ("buy", "NaN", "1", "0"),
    ("buy", "1e400", "1", "0"),
    ("buy", "-1", "1", "0"),
    ("buy", "1", "0.0", "0"),
    ("buy", "1", "1e400", "0"),
    ("buy", "1", "", "0"),
    ("buy", "1", "1", "Infinity"),
    ("hold", "1", "1", "0"),
]


def test_unreadable_fills_are_skipped_and_the_rest_booked(tmp_path: Path) -> None:
    path = tmp_path / "orders.sqlite"
    add(path, make_fill(1, "a", "buy", "10", "100"))
    db = sqlite3.connect(path)
    for n, (side, qty, price, commission) in enumerate(HOSTILE):
        db.execute(
            "INSERT INTO fills (execution_id, client_order_id, order_id, symbol, side, qty, price,"
            " commission, ts, strategy) VALUES (?, 'c', 'o', ?, ?, ?, ?, ?, 1, 'a')",
            (f"bad-{n}", "X" * 300 if n % 2 else "AAPL", side, qty, price, commission),
        )
    db.commit()
    db.close()
    add(path, make_fill(2, "a", "buy", "10", "110"))
    [row] = StrategyBooks(path).rows({})
    assert row["positions"][0]["qty"] == "20"
    assert row["positions"][0]["avg_cost"] == "105.000000"  # (1000 + 1100) / 20


def test_a_replaced_store_is_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "orders.sqlite"
    add(path, make_fill(1, "a", "buy", "10", "100"), make_fill(2, "a", "buy", "1", "100"))
    books = StrategyBooks(path)
    assert [r["strategy"] for r in books.rows({})] == ["a"]
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    add(path, make_fill(1, "z", "buy", "1", "100"))
    assert [r["strategy"] for r in books.rows({})] == ["z"]


def test_equity_curves_stay_bounded(tmp_path: Path) -> None:
    path = tmp_path / "orders.sqlite"
    add(
        path,
        *(make_fill(n, "a", "buy" if n % 2 else "sell", "1", str(100 + n)) for n in range(1, 60)),
    )
    books = StrategyBooks(path, max_points=8)
    for k in range(30):
        books.rows({"AAPL": D(200 + k)}, ts=T0 + 100_000 + k)
    [row] = books.rows({})
    assert 2 <= len(row["equity"]) <= 8
    assert row["equity"][-1]["ts"] == T0 + 100_029
