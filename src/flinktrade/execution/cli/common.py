"""What the executor's commands share: their consoles, the ``--broker`` option, the order
store's path and the check of the broker options (``--live`` needs its confirmation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from flinktrade.config import Settings
from flinktrade.errors import ConfigError

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)

BrokerOption = Annotated[
    str, typer.Option("--broker", help="sim (simulated, default) or alpaca (paper by default).")
]


def store_path(settings: Settings) -> Path:
    """The executor's order store under the state folder."""
    return settings.execution.store_path(settings.state_dir)


def check_broker(broker: str, live: bool, confirmed: bool) -> None:
    """A ``ConfigError`` (one line) for a broker name or a ``--live`` combination not allowed."""
    if broker not in ("sim", "alpaca"):
        raise ConfigError(f"--broker must be sim or alpaca, not {broker!r}")
    if live and broker != "alpaca":
        raise ConfigError("--live is only for --broker alpaca")
    if live and not confirmed:
        raise ConfigError("live trading needs both --live and --i-understand-this-is-real-money")
    if confirmed and not live:
        raise ConfigError("--i-understand-this-is-real-money goes with --live")
