"""The executor's commands that read its order store: ``status``, ``positions`` and ``orders``.

``positions --by-strategy`` books the store's fills per strategy (``flinktrade.books``, in time
order; positions adopted from the broker in ``(manual)``), values them at the ``--mark`` prices
(else each symbol's last fill price) and prints each book and the total, which equals the
account's position per symbol.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from flinktrade import books
from flinktrade.config import load_settings
from flinktrade.errors import ConfigError
from flinktrade.events import MAX_PRICE
from flinktrade.execution.cli.common import console, out, store_path
from flinktrade.execution.store import open_store


def status() -> None:
    """Kill switch, executor heartbeat, open orders and positions of the order store."""
    with open_store(store_path(load_settings())) as store:
        beat = store.heartbeat()
        halted = store.halted()
        open_orders = len(store.open_orders())
        held = store.positions()
    if beat is None:
        out.print("executor never ran on this store")
    else:
        age = beat.age_s(time.time_ns() // 1_000_000)
        out.print(f"executor last seen {age:.1f} s ago (pid {beat.pid})")
    out.print(f"kill switch {'ON: ' + halted if halted else 'off'}")
    out.print(f"open orders {open_orders}, positions {len(held)}")


def positions(
    by_strategy: Annotated[
        bool,
        typer.Option(
            "--by-strategy",
            help="One table per strategy (qty, average cost, P&L, trades, win rate) and the total.",
        ),
    ] = False,
    mark: Annotated[
        list[str] | None,
        typer.Option(
            "--mark",
            metavar="SYMBOL=PRICE",
            help=(
                "With --by-strategy: value open positions at this price (repeatable; default:"
                " the symbol's last fill price)."
            ),
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Positions in the order store (from fills), as the executor sees them; with --by-strategy,
    each strategy's book (``flinktrade.books``) and the total, which is the account's position."""
    marks = _parse_marks(mark or [])
    if marks and not by_strategy:
        raise ConfigError("--mark goes with --by-strategy")
    with open_store(store_path(load_settings())) as store:
        held = store.positions()
        ledger = books.ledger_of(store.fills()) if by_strategy else None
        adopted = store.adjustments() if by_strategy else {}
        halted = store.halted()
    if ledger is None:
        if as_json:
            body = {"positions": {s: str(q) for s, q in held.items()}}
            out.print(json.dumps(body), soft_wrap=True)
        else:
            table = Table("symbol", "qty")
            for symbol, qty in held.items():
                table.add_row(symbol, str(qty))
            out.print(table)
    else:
        ledger.set_adopted(adopted)
        _print_books(ledger.views(marks), ledger.positions(), as_json)
    if halted:
        console.print(f"kill switch ON: {halted}")


def _parse_marks(items: list[str]) -> dict[str, Decimal]:
    marks: dict[str, Decimal] = {}
    for item in items:
        symbol, _, price = item.partition("=")
        try:
            value = Decimal(price)
        except ArithmeticError:
            value = Decimal("NaN")
        if not symbol.strip() or not value.is_finite() or not 0 < value <= MAX_PRICE:
            raise ConfigError(f"--mark takes SYMBOL=PRICE with a positive price, not {item!r}")
        marks[symbol.strip()] = value
    return marks


def _print_books(views: list[books.StrategyView], total: dict[str, Decimal], as_json: bool) -> None:
    if as_json:
        body = {
            "strategies": [view.as_json() for view in views],
            "total": {symbol: str(qty) for symbol, qty in total.items()},
        }
        out.print(json.dumps(body), soft_wrap=True)
        return
    for view in views:
        data = view.as_json()
        table = Table(
            "symbol", "qty", "avg cost", "mark", "realised", "unrealised", "trades", "win rate",
            title=Text(view.strategy),
        )  # fmt: skip
        for p in data["positions"]:
            table.add_row(
                Text(p["symbol"]),
                p["qty"],
                p["avg_cost"] or "",
                p["mark"] or "",
                p["realized_pnl"],
                "" if p["unrealized_pnl"] is None else p["unrealized_pnl"],
                str(p["trades"]),
                _percent(p["win_rate"]),
            )
        out.print(table)
        unpriced = f" ({', '.join(view.unpriced)} without a mark)" if view.unpriced else ""
        out.print(
            f"{view.strategy}: P&L {data['pnl']} = realised {data['realized_pnl']} - commissions"
            f" {data['commissions']} + unrealised {data['unrealized_pnl']}{unpriced};"
            f" {data['trades']} trades, win rate {_percent(data['win_rate']) or '-'}",
            markup=False,
            soft_wrap=True,
        )
    out.print("total (the account's position per symbol):")
    table = Table("symbol", "qty")
    for symbol, qty in total.items():
        table.add_row(Text(symbol), str(qty))
    out.print(table)


def _percent(rate: float | None) -> str:
    return "" if rate is None else f"{rate:.0%}"


def orders(
    open_only: Annotated[bool, typer.Option("--open", help="Only orders not yet final.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Show at most the last N.")] = 50,
) -> None:
    """Orders in the order store, oldest first (denied signals included)."""
    with open_store(store_path(load_settings())) as store:
        rows = store.orders(open_only=open_only)[-limit:]
        table = Table(
            "client_order_id", "symbol", "side", "qty", "status", "filled", "avg price", "reason"
        )
        for o in rows:
            table.add_row(
                o.client_order_id,
                o.symbol,
                o.side.value,
                str(o.qty or ""),
                o.status.value,
                str(o.filled_qty),
                str(o.filled_avg_price or ""),
                (o.reason or "")[:60],
            )
        out.print(table)
