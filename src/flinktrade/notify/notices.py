"""What the notifier tells people about: records from four topics, parsed into ``Notice`` objects.

``alerts`` and ``trading.signals`` carry the ``Alert`` and ``Signal`` events of ``flinktrade.events``.
``trading.orders`` and ``trading.fills`` are read leniently (see ``OrderUpdate`` and ``FillUpdate``)
so that any producer writing JSON objects with the documented field names renders, whatever model
it uses. Executor halts and reconciliation failures travel as alerts (see ``HALT_KINDS``).

Whatever a record holds, ``parse_record`` either returns a notice that can be rendered or raises
``DecodeError`` with the reason: times outside 1970..2100, numbers that are not finite or beyond
``MAX_MAGNITUDE``, fills without a positive quantity and price are refused here, so no worker ever
holds a notice it cannot post.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from flinktrade import events
from flinktrade.events import Alert, DecodeError, Severity, Signal

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


class EventType(StrEnum):
    """The kinds of record the notifier reads; routes select by these."""

    ALERT = "alert"
    SIGNAL = "signal"
    ORDER = "order"
    FILL = "fill"


class _Lenient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class OrderUpdate(_Lenient):
    """A record of ``trading.orders``: an order was placed or changed state.

    Expected JSON fields (unknown fields are ignored; numbers may be JSON numbers or strings):

    - ``id`` (or ``order_id``): the order id; ``client_order_id`` optional
    - ``symbol``; ``side`` (``buy``/``sell``); ``qty`` (or ``quantity``) or ``notional``
    - ``type`` (or ``order_type``): ``market``, ``limit``, ...; ``limit_price``, ``stop_price``
    - ``status``: ``new``, ``accepted``, ``partially_filled``, ``filled``, ``canceled``,
      ``rejected``, ``expired``, ... (default ``new``)
    - ``filled_qty``, ``filled_avg_price``; ``reason`` (or ``reject_reason``): why rejected/canceled
    - ``strategy``, ``signal_id``; ``ts``: event time, epoch ms UTC (default: the record timestamp)
    - ``event_id``: a unique id of this update; without it, repeats are recognised by
      id + status + filled quantity.
    """

    id: str = Field(min_length=1, validation_alias=AliasChoices("id", "order_id"))
    client_order_id: str | None = None
    event_id: str | None = None
    symbol: str = Field(min_length=1)
    side: str | None = None
    qty: Decimal | None = Field(
        None,
        validation_alias=AliasChoices("qty", "quantity"),
        allow_inf_nan=False,
        gt=-MAX_MAGNITUDE,
        lt=MAX_MAGNITUDE,
    )
    notional: Decimal | None = _AMOUNT
    type: str | None = Field(None, validation_alias=AliasChoices("type", "order_type"))
    limit_price: Decimal | None = _AMOUNT
    stop_price: Decimal | None = _AMOUNT
    status: str = "new"
    filled_qty: Decimal | None = _AMOUNT
    filled_avg_price: Decimal | None = _AMOUNT
    reason: str | None = Field(None, validation_alias=AliasChoices("reason", "reject_reason"))
    strategy: str | None = None
    signal_id: str | None = None
    ts: int | None = None


class FillUpdate(_Lenient):
    """A record of ``trading.fills``: (part of) an order was executed.

    Expected JSON fields (unknown fields are ignored; numbers may be JSON numbers or strings):

    - ``id`` (or ``execution_id``): the execution id, unique per fill
    - ``order_id``; ``symbol``; ``side`` (``buy``/``sell``); ``qty``; ``price``
    - ``position_qty``: the position after the fill; ``strategy``
    - ``ts``: event time, epoch ms UTC (default: the record timestamp)
    """

    id: str = Field(min_length=1, validation_alias=AliasChoices("id", "execution_id"))
    order_id: str | None = None
    symbol: str = Field(min_length=1)
    side: str | None = None
    qty: Decimal = Field(allow_inf_nan=False, gt=0, lt=MAX_MAGNITUDE)
    price: Decimal = Field(allow_inf_nan=False, gt=0, lt=MAX_MAGNITUDE)
    position_qty: Decimal | None = _AMOUNT
    strategy: str | None = None
    ts: int | None = None


Payload = Alert | Signal | OrderUpdate | FillUpdate
_M = TypeVar("_M", bound=_Lenient)


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


def parse_record(event_type: EventType, value: bytes, record_ts: int | None = None) -> Notice:
    """Decode one record of the topic that carries ``event_type``; raises ``DecodeError``."""
    notice = _parse(event_type, value, record_ts)
    if not 0 <= notice.ts <= MAX_TS:
        raise DecodeError(f"ts: {notice.ts} is not between 1970 and 2100 (epoch ms)")
    return notice


def _parse(event_type: EventType, value: bytes, record_ts: int | None) -> Notice:
    if event_type is EventType.ALERT:
        alert = events.decode(Alert, value)
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
        signal = events.decode(Signal, value)
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
        order = _lenient(OrderUpdate, value)
        key = order.event_id or f"{order.id}:{order.status}:{order.filled_qty or 0}"
        severity = Severity.WARNING if order.status == "rejected" else Severity.INFO
        ts = order.ts if order.ts is not None else record_ts or 0
        return Notice(f"order:{key}", event_type, order.status, severity, order.symbol, ts, order)
    fill = _lenient(FillUpdate, value)
    ts = fill.ts if fill.ts is not None else record_ts or 0
    return Notice(f"fill:{fill.id}", event_type, "fill", Severity.INFO, fill.symbol, ts, fill)


def _lenient(kind: type[_M], value: bytes) -> _M:
    try:
        return kind.model_validate_json(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "record"
        raise DecodeError(f"{where}: {first['msg']}") from None
