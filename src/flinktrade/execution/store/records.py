"""What the order store holds, as values: phases, stored orders, heartbeats, outbox records.

No SQL here: ``StoredOrder`` and its ``trading.orders`` record (``order_event``), the rule that
an order only moves forward (``advances``), and the reading of an ``orders`` row
(``order_from_row``; the column order is the table's in ``schema``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from flinktrade.events import PLAIN_ORDER, OrderEvent, OrderSpec, OrderStatus, Side


class Phase(StrEnum):
    """Where an order is in its life, as far as the executor knows (the values are on disk)."""

    INTENT = "intent"  # stored, request not yet attempted
    SENDING = "sending"  # the request may have reached the broker
    UNKNOWN = "unknown"  # the request failed in a way that does not say whether it arrived
    ACKED = "acked"  # the broker knows it (we have its id)
    FINAL = "final"  # filled, canceled, expired, rejected or denied


NOT_FINAL = frozenset({Phase.INTENT, Phase.SENDING, Phase.UNKNOWN, Phase.ACKED})


@dataclass(frozen=True)
class StoredOrder:
    client_order_id: str
    signal_id: str | None
    strategy: str | None
    symbol: str
    side: Side
    qty: Decimal | None
    notional: Decimal | None
    price: Decimal | None
    status: OrderStatus
    phase: Phase
    broker_order_id: str | None
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    rule: str | None
    reason: str | None
    broker: str
    created_ms: int
    sent_ms: int | None
    updated_ms: int
    signal_ts: int | None = None
    """The oldest of the signal's ``ts`` and ``ingest_ts``: its age is re-checked before every
    (re)send. None for orders without a signal (flatten)."""
    spec: OrderSpec | None = None
    """The order asked for (type, prices, time in force, exits); None is a plain market order."""
    parent: str | None = None
    """For an exit: the ``client_order_id`` of its entry."""
    leg: str | None = None
    """For an exit: which one (``orders.Leg``: take_profit, stop_loss, trailing_stop)."""
    exits: str | None = None
    """For an entry whose exits the executor places itself: ``pending`` until they are stored,
    then ``placed`` (``none`` when it ended without a fill)."""
    cancel: str | None = None
    """For an exit the executor cancels: ``wanted`` (stored before the cancel request) then
    ``sent`` (the broker answered it); None while nobody asked."""
    fill_mark: int | None = None
    """For an order that waits for exits to be cancelled first: the last fill stored (its row
    number) when it was decided; an exit's fill after it means the position changed under it."""

    @property
    def open(self) -> bool:
        return self.phase in NOT_FINAL

    @property
    def order(self) -> OrderSpec:
        """The order's spec (a plain market order when none was asked for)."""
        return PLAIN_ORDER if self.spec is None else self.spec

    @property
    def born_ms(self) -> int:
        """Since when this order's age counts: its signal's time, else when it was stored."""
        return self.created_ms if self.signal_ts is None else min(self.signal_ts, self.created_ms)


@dataclass(frozen=True)
class Heartbeat:
    """The executor's last sign of life, written to the store every ``heartbeat_interval_s``."""

    ts_ms: int
    pid: int

    def age_s(self, now_ms: int) -> float:
        return max(0.0, (now_ms - self.ts_ms) / 1000)


@dataclass(frozen=True)
class OutboxRecord:
    seq: int
    topic: str
    key: bytes | None
    value: bytes
    ts: int


def text(value: Decimal | None) -> str | None:
    """A decimal as the store writes it (exact text), None as NULL."""
    return None if value is None else str(value)


_STATUS_RANK = {
    OrderStatus.PENDING: 0,
    OrderStatus.ACCEPTED: 1,
    OrderStatus.NEW: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
}


def advances(old: OrderStatus, old_filled: Decimal, new: OrderStatus, new_filled: Decimal) -> bool:
    """Whether ``new`` is a step forward from ``old``: never back from a final state, never fewer
    shares filled, and a change of status or of the filled quantity."""
    if old.final or new_filled < old_filled:
        return False
    if new_filled > old_filled:
        return True
    if new == old:
        return False
    return new.final or _STATUS_RANK.get(new, 3) > _STATUS_RANK.get(old, 3)


def order_event(order: StoredOrder, ts: int) -> OrderEvent:
    """The ``trading.orders`` record of an order's current state."""
    return OrderEvent(
        ts=ts,
        event_id=OrderEvent.make_event_id(order.client_order_id, order.status, order.filled_qty),
        id=order.broker_order_id or order.client_order_id,
        client_order_id=order.client_order_id,
        signal_id=order.signal_id,
        strategy=order.strategy,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        notional=order.notional,
        **_shape(order),
        status=order.status,
        filled_qty=order.filled_qty,
        filled_avg_price=order.filled_avg_price,
        reason=order.reason,
        broker=order.broker,
    )


def _shape(order: StoredOrder) -> dict[str, Any]:
    """The order's type, prices and ties, as ``OrderEvent`` fields (none for a plain order)."""
    spec = order.order
    shape: dict[str, Any] = {
        "type": spec.type.value,
        "limit_price": spec.limit_price,
        "stop_price": spec.stop_price,
        "trail_percent": spec.trail_percent,
        "trail_price": spec.trail_price,
        "parent_client_order_id": order.parent,
        "leg": order.leg,
    }
    if order.spec is not None and not spec.is_plain:
        shape["time_in_force"] = spec.time_in_force.value
        shape["order_class"] = spec.order_class.value
        shape["extended_hours"] = spec.extended_hours
    return shape


def spec_text(spec: OrderSpec | None) -> str | None:
    """A spec as the store writes it: JSON with exact decimals (as strings)."""
    if spec is None:
        return None
    return json.dumps(spec.model_dump(mode="python", exclude_defaults=True), default=str)


def spec_from_text(value: object) -> OrderSpec | None:
    if value is None:
        return None
    return OrderSpec.model_validate(json.loads(str(value), parse_float=Decimal))


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _dec(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def order_from_row(row: tuple[object, ...]) -> StoredOrder:
    """A ``SELECT * FROM orders`` row as a ``StoredOrder``."""
    (
        coid,
        signal_id,
        strategy,
        symbol,
        side,
        qty,
        notional,
        price,
        _type,
        status,
        phase,
        broker_order_id,
        filled_qty,
        filled_avg_price,
        rule,
        reason,
        broker,
        created_ms,
        sent_ms,
        updated_ms,
        signal_ts,
        spec,
        parent,
        leg,
        exits,
        cancel,
        fill_mark,
    ) = row
    return StoredOrder(
        client_order_id=str(coid),
        signal_id=_str(signal_id),
        strategy=_str(strategy),
        symbol=str(symbol),
        side=Side(str(side)),
        qty=_dec(qty),
        notional=_dec(notional),
        price=_dec(price),
        status=OrderStatus(str(status)),
        phase=Phase(str(phase)),
        broker_order_id=_str(broker_order_id),
        filled_qty=Decimal(str(filled_qty)),
        filled_avg_price=_dec(filled_avg_price),
        rule=_str(rule),
        reason=_str(reason),
        broker=str(broker),
        created_ms=int(str(created_ms)),
        sent_ms=_int(sent_ms),
        updated_ms=int(str(updated_ms)),
        signal_ts=_int(signal_ts),
        spec=spec_from_text(spec),
        parent=_str(parent),
        leg=_str(leg),
        exits=_str(exits),
        cancel=_str(cancel),
        fill_mark=_int(fill_mark),
    )
