"""Executor commands: ``execute``, ``status``, ``positions``, ``orders``, ``halt``, ``resume``,
``flatten``, and the ``calendar`` group (``refresh``, ``show``).

Registered as top-level commands by the main CLI (``register(app)``). Errors are raised as
flinktrade errors; the main CLI turns them into one ``error:`` line and an exit code. Every command
but ``execute`` works on the executor's existing order store (``store.open_store``) and refuses to
create one: a kill switch set in a new empty store would stop nothing. The commands live in
``trading`` (``execute``, ``halt``, ``resume``, ``flatten``) and ``views`` (``status``,
``positions``, ``orders``) and ``calendar``, on what ``common`` shares; each is importable from here.
"""

from __future__ import annotations

import typer

from flinktrade.execution.cli.calendar import calendar_app
from flinktrade.execution.cli.trading import execute, flatten, halt, resume
from flinktrade.execution.cli.views import orders, positions, status

__all__ = ["execute", "flatten", "halt", "orders", "positions", "register", "resume", "status"]


def register(app: typer.Typer) -> None:
    """Add the executor's commands to the main CLI."""
    app.add_typer(calendar_app(), name="calendar")
    app.command("execute")(execute)
    app.command("status")(status)
    app.command("positions")(positions)
    app.command("orders")(orders)
    app.command("halt")(halt)
    app.command("resume")(resume)
    app.command("flatten")(flatten)
