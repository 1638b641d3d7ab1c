"""Flatten planning: which market orders close every position, and under which ids.

Pure. A flatten order's ``client_order_id`` is derived from the symbol and the UTC day
(``<prefix>flat-<SYMBOL>-<YYYYMMDD>-<n>``, the first ``n`` not used yet), and orders already open
at the broker that close (part of) a position are counted: so running ``flatten`` twice, or again
after a crash, never sells more than is held. Open orders that would *add* to a position are not
canceled; the plan lists them so the operator sees them. (The executor's open exits are cancelled
before the plan and are not among ``open_orders``: ``flattener``.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from flinktrade.events import Side
from flinktrade.execution.brokers.base import BrokerOrder

STRATEGY = "flatten"
"""The ``strategy`` of flatten orders in the store and on ``trading.orders``."""


@dataclass(frozen=True)
class Close:
    """One market order that closes (the rest of) a position."""

    symbol: str
    side: Side
    qty: Decimal
    client_order_id: str
    position: Decimal
    already_closing: Decimal


@dataclass(frozen=True)
class FlattenPlan:
    closes: list[Close] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What is left as it is, and why (already being closed; open orders adding to a position)."""


def utc_day(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y%m%d")


def flatten_id(prefix: str, symbol: str, day: str, n: int) -> str:
    return f"{prefix}flat-{symbol}-{day}-{n}"


def _remaining(order: BrokerOrder) -> Decimal:
    return max(Decimal(0), (order.qty or Decimal(0)) - order.filled_qty)


def plan(
    positions: dict[str, Decimal],
    open_orders: Iterable[BrokerOrder],
    *,
    prefix: str,
    day: str,
    taken: Callable[[str], bool],
) -> FlattenPlan:
    """The orders that bring every position in ``positions`` (signed shares, as the broker
    reports them) to zero, net of ``open_orders`` already closing them. ``taken(id)`` says whether
    a ``client_order_id`` is already used (in the order store)."""
    open_list = list(open_orders)
    out = FlattenPlan()
    for symbol, position in sorted(positions.items()):
        if position == 0:
            continue
        closing_side = Side.SELL if position > 0 else Side.BUY
        closing = sum(
            (_remaining(o) for o in open_list if o.symbol == symbol and o.side == closing_side),
            Decimal(0),
        )
        for o in open_list:
            if o.symbol == symbol and o.side != closing_side and _remaining(o) > 0:
                out.notes.append(
                    f"{symbol}: open {o.side.value} order {o.client_order_id or o.id} for "
                    f"{_remaining(o)} adds to the position and is not canceled"
                )
        need = abs(position) - closing
        if need <= 0:
            out.notes.append(
                f"{symbol}: position {position} is already being closed by open orders "
                f"({closing} {closing_side.value})"
            )
            continue
        n = 1
        while taken(flatten_id(prefix, symbol, day, n)):
            n += 1
        out.closes.append(
            Close(
                symbol=symbol,
                side=closing_side,
                qty=need,
                client_order_id=flatten_id(prefix, symbol, day, n),
                position=position,
                already_closing=closing,
            )
        )
    return out
