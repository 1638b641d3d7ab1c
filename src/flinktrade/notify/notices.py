"""What the notifier tells people about: records from four topics, parsed into ``Notice`` objects.

Each topic's records are decoded by that topic's one decoder (``flinktrade.topics``), the same
contract the API and every other reader use: ``alerts`` holds ``Alert``, ``trading.signals``
``Signal``, ``trading.orders`` ``OrderEvent`` and ``trading.fills`` ``Fill``. Orders and fills are
then shown through display views derived from the decoded event (``OrderUpdate``, ``FillUpdate``).
Executor halts and reconciliation failures travel as alerts (see ``HALT_KINDS``).

Whatever a record holds, ``parse_record`` either returns a notice that can be rendered or raises
``DecodeError`` with the reason: a record that fails its topic's contract, times outside
1970..2100, numbers beyond ``MAX_MAGNITUDE`` are refused here, so no worker ever holds a notice it
cannot post.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flinktrade import topics
from flinktrade.events import Alert, DecodeError, Fill, OrderEvent, Severity, Signal
from flinktrade.notify.settings import EventType

MAX_TS = 4_102_444_800_000
"""2100-01-01 UTC in epoch ms: a notice's time must lie in [0, MAX_TS]."""
MAX_MAGNITUDE = Decimal("1e15")
"""The largest absolute value a price or quantity of an order or fill may have."""
_AMOUNT = Field(None, allow_inf_nan=False, gt=-MAX_MAGNITUDE, lt=MAX_MAGNITUDE)

SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}

HALT_KINDS = {
    "executor.halt": "Trading halted",
    "executor.kill_switch": "Kill switch engaged",
    "executor.reconciliation_failed": "Reconciliation failed",
}
"""Alert kinds the executor uses for halts and reconciliation failures, with their titles."""


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class OrderUpdate(_View):
    """How an order state (an ``OrderEvent`` of ``trading.orders``) is shown: its fields as text
    and bounded decimals (``from_event``)."""

    id: str
    client_order_id: str | None = None
    event_id: str | None = None
    symbol: str
    side: str | None = None
    qty: Decimal | None = _AMOUNT
    notional: Decimal | None = _AMOUNT
    type: str | None = None
    limit_price: Decimal | None = _AMOUNT
    stop_price: Decimal | None = _AMOUNT
    status: str
    filled_qty: Decimal | None = _AMOUNT
    filled_avg_price: Decimal | None = _AMOUNT
    reason: str | None = None
    strategy: str | None = None
    signal_id: str | None = None
    ts: int

    @classmethod
    def from_event(cls, order: OrderEvent) -> OrderUpdate:
        return _view(
            cls,
            id=order.id,
            client_order_id=order.client_order_id,
            event_id=order.event_id,
            symbol=order.symbol,
            side=order.side.value,
            qty=order.qty,
            notional=order.notional,
            type=order.type,
            limit_price=order.limit_price,
            status=order.status.value,
            filled_qty=order.filled_qty,
            filled_avg_price=order.filled_avg_price,
            reason=order.reason,
            strategy=order.strategy,
            signal_id=order.signal_id,
            ts=order.ts,
        )


class FillUpdate(_View):
    """How an execution (a ``Fill`` of ``trading.fills``) is shown (``from_event``)."""

    id: str
    order_id: str | None = None
    symbol: str
    side: str | None = None
    qty: Decimal = Field(allow_inf_nan=False, gt=0, lt=MAX_MAGNITUDE)
    price: Decimal = Field(allow_inf_nan=False, gt=0, lt=MAX_MAGNITUDE)
    position_qty: Decimal | None = _AMOUNT
    strategy: str | None = None
    ts: int

    @classmethod
    def from_event(cls, fill: Fill) -> FillUpdate:
        return _view(
            cls,
            id=fill.id,
            order_id=fill.order_id,
            symbol=fill.symbol,
            side=fill.side.value,
            qty=fill.qty,
            price=fill.price,
            position_qty=fill.position_qty,
            strategy=fill.strategy,
            ts=fill.ts,
        )


Payload = Alert | Signal | OrderUpdate | FillUpdate
_V = TypeVar("_V", bound=_View)


@dataclass(frozen=True)
class Notice:
    """One thing worth telling people about.

    ``id`` is the dedupe key (unique per event, stable across repeats of the same record);
    ``kind`` is the alert kind, the signal side, the order status, or ``fill``.
    """

    id: str
    type: EventType
    kind: str
    severity: Severity
    symbol: str | None
    ts: int
    event: Payload


def parse_record(event_type: EventType, value: bytes) -> Notice:
    """Decode one record of the topic that carries ``event_type``; raises ``DecodeError``."""
    notice = _parse(event_type, value)
    if not 0 <= notice.ts <= MAX_TS:
        raise DecodeError(f"ts: {notice.ts} is not between 1970 and 2100 (epoch ms)")
    return notice


def _parse(event_type: EventType, value: bytes) -> Notice:
    if event_type is EventType.ALERT:
        alert = topics.ALERTS.decode(value)
        return Notice(
            f"alert:{alert.id}",
            event_type,
            alert.kind,
            alert.severity,
            alert.symbol,
            alert.ts,
            alert,
        )
    if event_type is EventType.SIGNAL:
        signal = topics.SIGNALS.decode(value)
        return Notice(
            f"signal:{signal.id}",
            event_type,
            signal.side.value,
            Severity.INFO,
            signal.symbol,
            signal.ts,
            signal,
        )
    if event_type is EventType.ORDER:
        order = OrderUpdate.from_event(topics.ORDERS.decode(value))
        severity = Severity.WARNING if order.status == "rejected" else Severity.INFO
        return Notice(
            f"order:{order.event_id}",
            event_type,
            order.status,
            severity,
            order.symbol,
            order.ts,
            order,
        )
    fill = FillUpdate.from_event(topics.FILLS.decode(value))
    return Notice(f"fill:{fill.id}", event_type, "fill", Severity.INFO, fill.symbol, fill.ts, fill)


def _view(kind: type[_V], **fields: object) -> _V:
    """A display view of a decoded event; values it cannot show (beyond ``MAX_MAGNITUDE``) are
    refused with a one-line reason."""
    try:
        return kind.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "record"
        raise DecodeError(f"{where}: {first['msg']}") from None
