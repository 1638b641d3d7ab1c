"""Executor commands: ``execute``, ``status``, ``positions``, ``orders``, ``halt``, ``resume``,
``flatten``, and the ``calendar`` group (``refresh``: Alpaca's market calendar into the state dir,
``calendar_refresh``; ``show``: the calendar in effect, ``flinktrade.calendars``).

``positions --by-strategy`` books the store's fills per strategy (``flinktrade.books``, in time
order; positions adopted from the broker in ``(manual)``), values them at the ``--mark`` prices
(else each symbol's last fill price) and prints each book and the total, which equals the
account's position per symbol.

Registered as top-level commands by the main CLI (``register(app)``). Errors are raised as
flinktrade errors; the main CLI turns them into one ``error:`` line and an exit code. Every command
but ``execute`` works on the executor's existing order store (``store.open_store``) and refuses to
create one: a kill switch set in a new empty store would stop nothing. ``halt`` and ``resume`` go
through ``killswitch.KillSwitch``, as the API's do.
"""

from __future__ import annotations

import json
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from flinktrade import books, calendars, sessions
from flinktrade.cli.signals import stop_on_signals
from flinktrade.config import Settings, load_settings
from flinktrade.errors import ConfigError, FlinktradeError
from flinktrade.events import MAX_PRICE
from flinktrade.execution.killswitch import KillSwitch, broker_named
from flinktrade.execution.store import open_store, require_store

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)

BrokerOption = Annotated[
    str, typer.Option("--broker", help="sim (simulated, default) or alpaca (paper by default).")
]


def _store_path(settings: Settings) -> Path:
    return settings.execution.store_path(settings.state_dir)


def _check_broker(broker: str, live: bool, confirmed: bool) -> None:
    if broker not in ("sim", "alpaca"):
        raise ConfigError(f"--broker must be sim or alpaca, not {broker!r}")
    if live and broker != "alpaca":
        raise ConfigError("--live is only for --broker alpaca")
    if live and not confirmed:
        raise ConfigError("live trading needs both --live and --i-understand-this-is-real-money")
    if confirmed and not live:
        raise ConfigError("--i-understand-this-is-real-money goes with --live")


def execute(
    broker: BrokerOption = "sim",
    live: Annotated[
        bool, typer.Option("--live", help="Trade real money (Alpaca live, not paper).")
    ] = False,
    confirmed: Annotated[
        bool,
        typer.Option(
            "--i-understand-this-is-real-money", help="Required with --live.", show_default=False
        ),
    ] = False,
    from_earliest: Annotated[
        bool,
        typer.Option(
            "--from-earliest",
            help="Without committed offsets, start at the signals' beginning (default: new ones).",
        ),
    ] = False,
) -> None:
    """Turn trading.signals into orders: size, risk-check, place, follow, until Ctrl-C."""
    from flinktrade.execution.loop import run_executor

    _check_broker(broker, live, confirmed)
    settings = load_settings()
    if from_earliest:
        execution = settings.execution.model_copy(update={"start_from": "earliest"})
        settings = settings.model_copy(update={"execution": execution})
    mode = "LIVE (real money)" if live else "paper" if broker == "alpaca" else "simulated"
    console.print(f"executor: broker {broker} ({mode}); Ctrl-C to stop")
    with stop_on_signals() as stop:
        try:
            stats = run_executor(settings, stop, broker, live=live)
        except FlinktradeError:
            raise
        except Exception as exc:  # one line and a non-zero exit, never a traceback
            raise FlinktradeError(f"executor stopped: {type(exc).__name__}: {exc}") from None
    out.print(json.dumps(stats.as_dict()), soft_wrap=True)


def status() -> None:
    """Kill switch, executor heartbeat, open orders and positions of the order store."""
    with open_store(_store_path(load_settings())) as store:
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
    with open_store(_store_path(load_settings())) as store:
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
    with open_store(_store_path(load_settings())) as store:
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


def halt(
    reason: Annotated[str, typer.Option(help="Why (shown in alerts).")] = "set from the CLI",
) -> None:
    """Set the kill switch: the executor places no new order within a second (survives restarts)."""
    KillSwitch(_store_path(load_settings())).halt(reason)
    console.print(f"kill switch ON: {reason}")


def resume(
    adopt_broker_positions: Annotated[
        bool,
        typer.Option(
            "--adopt-broker-positions",
            help="After a position mismatch: take the broker's positions as the truth.",
        ),
    ] = False,
    broker: BrokerOption = "alpaca",
) -> None:
    """Clear the kill switch (and optionally adopt the broker's positions)."""
    settings = load_settings()
    adopt = None
    if adopt_broker_positions:
        _check_broker(broker, False, False)
        adopt = broker_named(settings, broker)
    for symbol, delta in KillSwitch(_store_path(settings)).resume(adopt_from=adopt).items():
        console.print(f"adopted {symbol}: {delta:+}")
    console.print("kill switch OFF")


def flatten(
    broker: BrokerOption = "sim",
    yes: Annotated[
        bool, typer.Option("--yes", help="Send the orders (without it: list them only).")
    ] = False,
    live: Annotated[bool, typer.Option("--live", help="The account is a live one.")] = False,
    confirmed: Annotated[
        bool, typer.Option("--i-understand-this-is-real-money", show_default=False)
    ] = False,
) -> None:
    """List the market orders that would close every position; with --yes, halt and send them.

    Ids are per symbol and UTC day and open orders are counted, so running it twice never sells
    more than is held."""
    from flinktrade.execution.brokers import make_broker
    from flinktrade.execution.loop import Executor

    _check_broker(broker, live, confirmed)
    settings = load_settings()
    require_store(_store_path(settings))  # refuse a missing store before touching the broker
    executor = Executor(settings, make_broker(settings, broker, live=live))
    if not yes:
        try:
            plan = executor.flatten_plan()
        finally:
            executor.broker.close()
            executor.store.close()
        for c in plan.closes:
            out.print(f"would {c.side.value} {c.qty} {c.symbol} ({c.client_order_id})")
        for note in plan.notes:
            out.print(note)
        if not plan.closes:
            out.print("nothing to close")
        console.print("dry run: nothing sent; `flinktrade flatten --yes` halts and sends these")
        return
    done = executor.flatten()
    for o in done:
        out.print(f"{o.symbol}: {o.side.value} {o.qty} -> {o.status.value}")
    console.print("kill switch stays ON; `flinktrade resume` to trade again")


def _date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} must be a date YYYY-MM-DD, not {text!r}") from None


def calendar_refresh(
    start: Annotated[
        str | None, typer.Option("--start", help="First date asked for, YYYY-MM-DD.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Last date asked for, YYYY-MM-DD.")
    ] = None,
) -> None:
    """Fetch Alpaca's market calendar (the configured keys) into <state dir>/calendar.json.

    The backtester, the simulated broker and the executor's fallback follow it over the bundled
    calendar. Default range 2015-01-01..2030-12-31, kept to the days Alpaca's answer covers; on
    any error the file already there is left as it was."""
    from flinktrade.execution.calendar_refresh import DEFAULT_END, DEFAULT_START, refresh

    first = _date(start, "--start") or DEFAULT_START
    last = _date(end, "--end") or DEFAULT_END
    done = refresh(load_settings(), first, last)
    cal = done.calendar
    count = len(cal.days(cal.first, cal.last)) if cal.first and cal.last else 0
    out.print(
        f"wrote {done.path}: {count} trading days, {cal.first}..{cal.last}",
        highlight=False,
        soft_wrap=True,
    )


def calendar_show(
    day: Annotated[
        str | None, typer.Option("--date", help="Also print this date's sessions, YYYY-MM-DD.")
    ] = None,
) -> None:
    """Print which market calendar is in effect (bundled or refreshed) and a date's sessions."""
    wanted = _date(day, "--date")
    found = calendars.in_effect(load_settings().state_dir)
    bundled = sessions.bundled()
    lines = []
    if found.refreshed is not None:
        cal = found.refreshed
        lines.append(
            f"calendar in effect: refreshed from Alpaca, {cal.first}..{cal.last} "
            f"({found.path}, written {calendars.refreshed_at(found)})"
        )
        lines.append(f"outside it: the bundled calendar, {bundled.first}..{bundled.last}")
    else:
        lines.append(f"calendar in effect: bundled, {bundled.first}..{bundled.last}")
        lines.append(
            f"{found.path} is not used: {found.problem}"
            if found.problem
            else f"no {found.path}: `flinktrade calendar refresh` writes it from Alpaca"
        )
    if wanted is not None:
        lines.append(calendars.describe_day(found, wanted))
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the executor's commands to the main CLI."""
    calendar = typer.Typer(
        help="The market calendar: refresh it from Alpaca, show the one in effect.",
        no_args_is_help=True,
    )
    calendar.command("refresh")(calendar_refresh)
    calendar.command("show")(calendar_show)
    app.add_typer(calendar, name="calendar")
    app.command("execute")(execute)
    app.command("status")(status)
    app.command("positions")(positions)
    app.command("orders")(orders)
    app.command("halt")(halt)
    app.command("resume")(resume)
    app.command("flatten")(flatten)
