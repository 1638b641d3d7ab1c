"""``flinktrade positions --by-strategy`` over a real order store (no broker, no Kafka: the command
only reads the store), and the store keeping each fill's strategy.

Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal as D
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from flinktrade.errors import ConfigError
from flinktrade.events import Fill, Side, Signal
from flinktrade.execution import cli as execution_cli
from flinktrade.execution.store import OrderStore

T0 = 1_704_205_800_000


def make_fill(n: int, strategy: str | None, side: str, qty: str, price: str, **kw: str) -> Fill:
    return Fill(
        ts=T0 + n,
        id=f"x-{n}",
        order_id=f"o-{n}",
        client_order_id=f"c-{n}",
        strategy=strategy,
        symbol=kw.get("symbol", "AAPL"),
        side=Side(side),
        qty=D(qty),
        price=D(price),
        commission=D(kw.get("commission", "0")),
    )


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLINKTRADE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    store = OrderStore(tmp_path / "execution" / "orders.sqlite")
    try:
        for fill in [
            make_fill(1, "trend", "buy", "10", "100", commission="1"),
            make_fill(2, "revert", "sell", "4", "102"),
            make_fill(3, "trend", "sell", "4", "105"),  # realises 4 x 5 = 20
            make_fill(4, None, "buy", "2.5", "30", symbol="MSFT"),  # by hand: (manual)
        ]:
            assert store.add_fill(fill)
        # the broker has 2 AAPL, 2.5 MSFT and 1 TSLA more than the fills say: adopted
        store.adopt_positions({"AAPL": D(4), "MSFT": D(5), "TSLA": D(1)})
    finally:
        store.close()
    return tmp_path


def run(*args: str) -> Result:
    app = typer.Typer()
    execution_cli.register(app)
    return CliRunner().invoke(app, list(args))


def test_json_books_and_total(state_dir: Path) -> None:
    result = run("positions", "--by-strategy", "--json", "--mark", "AAPL=103", "--mark", "MSFT=31")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    books = {b["strategy"]: b for b in body["strategies"]}
    assert list(books) == ["(manual)", "revert", "trend"]

    trend = books["trend"]
    [aapl] = trend["positions"]
    assert (aapl["qty"], aapl["avg_cost"]) == ("6", "100.000000")
    assert aapl["unrealized_pnl"] == "18.00"  # 6 x (103 - 100)
    assert (trend["realized_pnl"], trend["commissions"], trend["pnl"]) == ("20.00", "1.00", "37.00")
    assert trend["gross_exposure"] == "618.00"  # 6 x 103
    assert (trend["trades"], trend["win_rate"]) == (0, None)

    revert = books["revert"]
    assert revert["positions"][0]["qty"] == "-4"
    assert revert["unrealized_pnl"] == "-4.00"  # short 4 from 102 at 103
    assert revert["net_exposure"] == "-412.00"

    manual = {p["symbol"]: p for p in books["(manual)"]["positions"]}
    assert manual["MSFT"]["qty"] == "5.0"  # 2.5 bought by hand + 2.5 adopted
    assert manual["MSFT"]["unrealized_pnl"] == "2.50"  # 2.5 x (31 - 30); the adopted: no cost
    assert manual["TSLA"]["qty"] == "1" and manual["TSLA"]["avg_cost"] is None
    assert manual["AAPL"]["qty"] == "2"
    assert books["(manual)"]["unpriced"] == ["TSLA"]

    # the total is the account: 10 - 4 - 4 + 2 AAPL, 2.5 + 2.5 MSFT, 1 TSLA
    assert body["total"] == {"AAPL": "4", "MSFT": "5.0", "TSLA": "1"}
    plain = json.loads(run("positions", "--json").stdout)
    assert {s: D(q) for s, q in plain["positions"].items()} == {
        s: D(q) for s, q in body["total"].items()
    }


def rows(text: str) -> list[tuple[str, ...]]:
    """The data rows of the tables in ``text`` (Rich draws them with ``│``), as cells."""
    return [
        tuple(cell.strip() for cell in line.split("│")[1:-1])
        for line in text.splitlines()
        if line.startswith("│")
    ]


def test_tables_per_strategy_and_the_account(state_dir: Path) -> None:
    result = run("positions", "--by-strategy", "--mark", "AAPL=103")
    assert result.exit_code == 0, result.output
    text = result.stdout
    for title in ("(manual)", "revert", "trend", "total (the account's position per symbol):"):
        assert title in text
    assert (
        "trend: P&L 37.00 = realised 20.00 - commissions 1.00 + unrealised 18.00;"
        " 0 trades, win rate -"
    ) in text
    assert "(TSLA without a mark)" in text  # MSFT: at its last fill price, 30
    assert ("AAPL", "6", "100.000000", "103", "20.00", "18.00", "0", "") in rows(text)
    assert ("MSFT", "5.0", "30.000000", "30", "0.00", "0.00", "0", "") in rows(text)
    total = text[text.index("total (the account's") :]
    assert rows(total) == [("AAPL", "4"), ("MSFT", "5.0"), ("TSLA", "1")]


def test_plain_positions_are_unchanged(state_dir: Path) -> None:
    result = run("positions")
    assert result.exit_code == 0, result.output
    assert rows(result.stdout) == [("AAPL", "4"), ("MSFT", "5.0"), ("TSLA", "1")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mark", "AAPL=1"], "--mark goes with --by-strategy"),
        (["--by-strategy", "--mark", "AAPL"], "--mark takes SYMBOL=PRICE"),
        (["--by-strategy", "--mark", "AAPL=-3"], "--mark takes SYMBOL=PRICE"),
        (["--by-strategy", "--mark", "AAPL=abc"], "--mark takes SYMBOL=PRICE"),
        (["--by-strategy", "--mark", "AAPL=1e400"], "--mark takes SYMBOL=PRICE"),
        (["--by-strategy", "--mark", "=5"], "--mark takes SYMBOL=PRICE"),
    ],
)
def test_bad_marks_are_one_line(state_dir: Path, args: list[str], message: str) -> None:
    result = run("positions", *args)
    assert isinstance(result.exception, ConfigError), result.output
    assert str(result.exception).startswith(message)


def test_store_keeps_the_strategy_of_each_fill(tmp_path: Path) -> None:
    store = OrderStore(tmp_path / "orders.sqlite")
    try:
        store.add_fill(make_fill(1, "trend", "buy", "1", "10"))
        store.add_fill(make_fill(2, None, "buy", "1", "10"))
        assert [f.strategy for f in store.fills()] == ["trend", None]
    finally:
        store.close()


def test_a_store_from_before_fills_had_a_strategy(tmp_path: Path) -> None:
    """The column is added on open; old fills take their order's strategy while it is kept."""
    path = tmp_path / "orders.sqlite"
    store = OrderStore(path)
    signal = Signal(
        id="s" * 32, strategy="old_strategy", symbol="AAPL", side=Side.BUY, price=D(10),
        bar_ts=T0 - 60_000, ts=T0, ingest_ts=T0,
    )  # fmt: skip
    store.add_intent(client_order_id="c-1", signal=signal, symbol="AAPL", side=Side.BUY,
                     qty=D(1), notional=None, price=D(10))  # fmt: skip
    store.close()
    db = sqlite3.connect(path)  # the fills table as it was before the column
    db.executescript(
        "DROP TABLE fills; CREATE TABLE fills (execution_id TEXT PRIMARY KEY, client_order_id TEXT"
        " NOT NULL, order_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, qty TEXT"
        " NOT NULL, price TEXT NOT NULL, commission TEXT NOT NULL, ts INTEGER NOT NULL);"
        f"INSERT INTO fills VALUES ('x-1', 'c-1', 'o-1', 'AAPL', 'buy', '1', '10', '0', {T0});"
        f"INSERT INTO fills VALUES ('x-2', 'c-gone', 'o-2', 'AAPL', 'buy', '1', '11', '0', {T0});"
    )
    db.close()
    store = OrderStore(path)
    try:
        assert [(f.id, f.strategy) for f in store.fills()] == [
            ("x-1", "old_strategy"),
            ("x-2", None),  # its order was pruned: (manual) in the books
        ]
        assert store.add_fill(make_fill(3, "new", "sell", "1", "12"))
        assert [f.strategy for f in store.fills()][-1] == "new"
    finally:
        store.close()
