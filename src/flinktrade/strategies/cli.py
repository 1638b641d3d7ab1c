"""``flinktrade strategies list``: the strategies this installation can run, with parameters."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flinktrade.strategies import available

app = typer.Typer(
    help="Trading strategies: built-ins and plugins (entry point group flinktrade.strategies).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _strategies() -> None:
    """Trading strategies: built-ins and plugins."""


@app.command("list")
def list_strategies() -> None:
    """List the built-in and installed strategies with their parameters and defaults.

    A strategy in your own code needs no installation: configure it by dotted path,
    ``package.module:ClassName``."""
    table = Table(title="Strategies")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("parameters", overflow="fold")
    table.add_column("description")
    for info in available():
        params = [f"{k}={v!r}" for k, v in info.parameters.items()]
        params += [f"{k} (required)" for k in info.required]
        table.add_row(escape(info.name), info.source, escape(", ".join(params)), escape(info.doc))
    Console().print(table)


def register(root: typer.Typer) -> None:
    """Add ``flinktrade strategies`` to the main CLI."""
    root.add_typer(app, name="strategies")
