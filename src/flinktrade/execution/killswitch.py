"""The trading state and the one kill switch that the CLI, the API and the executor share.

``TradingState`` is what the executor may do: ``running`` (new orders allowed), ``halted`` (the
kill switch is set, by an operator, by a risk breach or by ``flatten``) or ``blocked`` (the last
reconciliation found the broker and the order store differing; cleared by the next one that finds
them agreeing). The kill switch lives in the order store, so it survives restarts and another
process can set it: ``KillSwitch`` is the only code that sets or clears it from outside the
executor, and it refuses to work on a store that does not exist (a kill switch set in a new,
empty store would stop nothing). Resuming may first adopt the broker's positions (after a
reconciliation mismatch, the operator's decision), the same way from the CLI and the API.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from flinktrade.config import Settings
from flinktrade.execution.brokers.base import Broker
from flinktrade.execution.store import open_store


class TradingState(StrEnum):
    RUNNING = "running"
    HALTED = "halted"
    BLOCKED = "blocked"
    """By reconciliation: the broker and the order store differ."""

    @classmethod
    def of(cls, halted: str | None, blocked: str | None = None) -> TradingState:
        """The state for a kill-switch reason and a reconciliation block (the kill switch wins)."""
        if halted:
            return cls.HALTED
        return cls.BLOCKED if blocked else cls.RUNNING


class KillSwitch:
    """The kill switch of the order store at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def reason(self) -> str | None:
        """Why trading is halted, or None (also when no store exists: nothing ran, nothing halted)."""
        if not self.path.is_file():
            return None
        with open_store(self.path) as store:
            return store.halted()

    def state(self) -> TradingState:
        return TradingState.of(self.reason())

    def halt(self, reason: str) -> None:
        """Set it: the executor places no new order within a second. ``ConfigError`` without a
        store."""
        with open_store(self.path) as store:
            store.halt(reason)

    def resume(self, *, adopt_from: Callable[[], Broker] | None = None) -> dict[str, Decimal]:
        """Clear it; with ``adopt_from`` (a broker factory: ``broker_named``), first take that
        broker's positions as the truth. Returns the adjustment per symbol. ``ConfigError``
        without a store, raised before any broker is built or asked."""
        changes: dict[str, Decimal] = {}
        with open_store(self.path) as store:
            if adopt_from is not None:
                broker = adopt_from()
                try:
                    held = broker.positions()
                finally:
                    broker.close()
                changes = store.adopt_positions(held)
            store.resume()
        return changes


def broker_named(settings: Settings, name: str) -> Callable[[], Broker]:
    """A factory of the broker ``name`` (sim or alpaca, paper), for ``KillSwitch.resume``."""

    def make() -> Broker:
        from flinktrade.execution.brokers import make_broker

        return make_broker(settings, name)

    return make
