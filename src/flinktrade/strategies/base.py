"""The Strategy contract.

A strategy is a pure object: given one closed bar with the indicators known at its close (and the
latest news sentiment) plus its own previous state, it returns the signals it wants and its new
state. It never reads the clock, the network or a global, so the Flink operator, the backtester and
the tests can all call it the same way, and its state can live in Flink keyed state.

A bar knows its market session (``bar.session``: ``pre``, ``regular``, ``post`` or ``closed``, from
the US equity calendar bundled with the package: data, not a clock), worked out only when asked.

State is a JSON-compatible ``dict`` (it is stored as JSON in Flink state and checkpoints).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from flinktrade import sessions
from flinktrade.events import OrderSpec, Side

State = dict[str, Any]


@dataclass(frozen=True)
class BarView:
    """What a strategy sees of one closed bar. Nothing from a later bar is ever in it."""

    symbol: str
    ts: int  # bar start, epoch ms UTC
    end_ts: int  # bar end (exclusive), epoch ms UTC
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    vwap: float | None
    indicators: Mapping[str, float | None] = field(default_factory=dict)
    sentiment: float | None = None

    @property
    def session(self) -> sessions.Session:
        """The market session the bar starts in (``pre``, ``regular``, ``post``, ``closed``), by
        the bundled US equity calendar in ET; worked out only when asked for."""
        return sessions.session_at(self.ts)


@dataclass(frozen=True)
class Intent:
    """A strategy's wish to trade; the operator turns it into a ``Signal`` with a stable id.

    ``order`` is the order it asks for (``events.OrderSpec``: type, prices, time in force, size,
    exits); None is a plain market order the executor sizes. ``orders.with_exits`` builds the
    common case, a market entry with a take profit, a stop loss or a trailing stop."""

    side: Side
    strength: float = 1.0
    reason: str = ""
    order: OrderSpec | None = None


@runtime_checkable
class Strategy(Protocol):
    """Implement ``name``, ``indicators``, ``initial_state`` and ``on_bar``."""

    name: str

    def indicators(self) -> set[str]:
        """Indicator columns this strategy reads, e.g. ``{"sma_20", "sma_50"}``."""
        ...

    def initial_state(self) -> State: ...

    def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]: ...
