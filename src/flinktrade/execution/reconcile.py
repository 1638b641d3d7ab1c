"""Reconciliation: how the broker and the order store differ, as typed differences.

``differences`` is pure: it takes what the look-ups of the store's open orders found, and what
the broker reports (its open orders and positions, or that it could not be reached), and returns
one value per difference. The executor (``core``) does the I/O around it, blocks new orders while
the list is not empty (fail closed) and alerts with ``describe(differences)``. A bracket's open
legs count as open orders of their own (``with_legs``). A difference that
is ``transient`` (something could not be asked) makes the next reconciliation come sooner; while
all differences are (``only_transient``) the executor holds new signals instead of denying them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from flinktrade.events import OrderStatus, Side
from flinktrade.execution.brokers.base import BrokerOrder
from flinktrade.execution.lifecycle import Resolution


@dataclass(frozen=True)
class Unresolved:
    """An order of the store whose outcome is still unknown (the look-up failed)."""

    client_order_id: str
    transient: ClassVar[bool] = True

    def __str__(self) -> str:
        return f"could not resolve order {self.client_order_id} (outcome unknown)"


@dataclass(frozen=True)
class MissingAtBroker:
    """An order the broker acknowledged once and now has no record of."""

    client_order_id: str
    transient: ClassVar[bool] = False

    def __str__(self) -> str:
        return f"order {self.client_order_id} was acknowledged but the broker has no record"


@dataclass(frozen=True)
class BrokerUnreachable:
    """The broker's open orders or positions could not be read."""

    error: str
    transient: ClassVar[bool] = True

    def __str__(self) -> str:
        return f"could not reach the broker: {self.error}"


@dataclass(frozen=True)
class UnknownOpenOrder:
    """An order open at the broker that the store does not know."""

    order_id: str
    client_order_id: str
    side: Side
    qty: Decimal | None
    symbol: str
    transient: ClassVar[bool] = False

    def __str__(self) -> str:
        return (
            f"open order {self.order_id} ({self.client_order_id or 'no client id'}: "
            f"{self.side.value} {self.qty} {self.symbol}) at the broker is not in the store"
        )


@dataclass(frozen=True)
class FinalButOpen:
    """An order final in the store and still open at the broker."""

    client_order_id: str
    store_status: OrderStatus
    broker_status: str
    transient: ClassVar[bool] = False

    def __str__(self) -> str:
        return (
            f"order {self.client_order_id} is {self.store_status.value} in the store "
            f"but {self.broker_status} at the broker"
        )


@dataclass(frozen=True)
class PositionMismatch:
    symbol: str
    broker: Decimal
    store: Decimal
    transient: ClassVar[bool] = False

    def __str__(self) -> str:
        return f"position {self.symbol}: broker {self.broker}, store {self.store}"


Difference = (
    Unresolved
    | MissingAtBroker
    | BrokerUnreachable
    | UnknownOpenOrder
    | FinalButOpen
    | PositionMismatch
)


@dataclass(frozen=True)
class BrokerView:
    """What the broker reports: its open orders and its positions (signed shares)."""

    open_orders: list[BrokerOrder]
    positions: dict[str, Decimal]


def with_legs(orders: Iterable[BrokerOrder]) -> list[BrokerOrder]:
    """The broker's open orders with the open legs nested in them listed too (once each); a
    parent already final (a filled bracket entry listed for its open legs) is not open."""
    out: dict[str, BrokerOrder] = {}
    for order in orders:
        if not order.status.final:
            out.setdefault(order.id, order)
        for leg in order.legs:
            if not leg.status.final:
                out.setdefault(leg.id, leg)
    return list(out.values())


def differences(
    resolutions: Iterable[tuple[str, Resolution]],
    broker: BrokerView | BrokerUnreachable,
    store_status: Mapping[str, OrderStatus | None],
    store_positions: Mapping[str, Decimal],
) -> list[Difference]:
    """Every difference, in a stable order: the store's open orders that could not be settled
    (``resolutions``: client_order_id and what its look-up found), then, if the broker answered,
    its open orders the store does not know or has final (``store_status`` by client_order_id,
    None when unknown) and the positions that differ."""
    out: list[Difference] = []
    for coid, resolution in resolutions:
        if resolution == Resolution.MISSING:
            out.append(MissingAtBroker(coid))
        elif resolution == Resolution.UNREACHABLE:
            out.append(Unresolved(coid))
    if isinstance(broker, BrokerUnreachable):
        return [*out, broker]
    for bo in broker.open_orders:
        status = store_status.get(bo.client_order_id)
        if status is None:
            out.append(UnknownOpenOrder(bo.id, bo.client_order_id, bo.side, bo.qty, bo.symbol))
        elif status.final:
            out.append(FinalButOpen(bo.client_order_id, status, bo.broker_status))
    for symbol in sorted(set(store_positions) | set(broker.positions)):
        held = broker.positions.get(symbol, Decimal(0))
        local = store_positions.get(symbol, Decimal(0))
        if held != local:
            out.append(PositionMismatch(symbol, held, local))
    return out


def describe(found: list[Difference]) -> str | None:
    """One line for the block reason and the alert; None when nothing differs."""
    return "; ".join(str(d) for d in found) if found else None


def any_transient(found: list[Difference]) -> bool:
    return any(d.transient for d in found)


def only_transient(found: list[Difference]) -> bool:
    """Something differs, and all of it is what could not be read yet (an order's outcome, the
    broker): the next reconciliation may well agree."""
    return bool(found) and all(d.transient for d in found)
