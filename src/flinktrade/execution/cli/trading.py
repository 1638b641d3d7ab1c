"""The executor's commands that trade or stop trading: ``execute`` (run the executor until
Ctrl-C), ``halt`` and ``resume`` (the kill switch, through ``killswitch.KillSwitch`` as the API's
do), ``flatten`` (list, or with ``--yes`` send, the orders that close every position)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from flinktrade.cli.signals import stop_on_signals
from flinktrade.config import load_settings
from flinktrade.errors import FlinktradeError
from flinktrade.execution.cli.common import BrokerOption, check_broker, console, out, store_path
from flinktrade.execution.killswitch import KillSwitch, broker_named
from flinktrade.execution.store import require_store


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

    check_broker(broker, live, confirmed)
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


def halt(
    reason: Annotated[str, typer.Option(help="Why (shown in alerts).")] = "set from the CLI",
) -> None:
    """Set the kill switch: the executor places no new order within a second (survives restarts)."""
    KillSwitch(store_path(load_settings())).halt(reason)
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
        check_broker(broker, False, False)
        adopt = broker_named(settings, broker)
    for symbol, delta in KillSwitch(store_path(settings)).resume(adopt_from=adopt).items():
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

    check_broker(broker, live, confirmed)
    settings = load_settings()
    require_store(store_path(settings))  # refuse a missing store before touching the broker
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
