"""What the notifier tells people about: records from four topics, parsed into ``Notice`` objects.

Each topic's records are decoded by that topic's one decoder (``flinktrade.topics``), the same
contract the API and every other reader use: ``alerts`` holds ``Alert``, ``trading.signals``
``Signal``, ``trading.orders`` ``OrderEvent`` and ``trading.fills`` ``Fill``. The decoded event is
what gets formatted; the notifier adds only display bounds of its own (times in 1970..2100,
amounts within ``MAX_MAGNITUDE``). Executor halts and reconciliation failures travel as alerts
(see ``HALT_KINDS``); an alert of a kind this version does not know is shown by its text.

Whatever a record holds, ``parse_record`` either returns a notice that can be rendered or raises
``DecodeError`` with the reason: a record that fails its topic's contract, times outside
1970..2100, numbers beyond ``MAX_MAGNITUDE`` are refused here, so no worker ever holds a notice it
cannot post.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from flinktrade import topics
from flinktrade.events import (
    Alert,
    AlertKind,
    DecodeError,
    Fill,
    OrderEvent,
    OrderStatus,
    Severity,
    Signal,
)
from flinktrade.notify.settings import EventType

MAX_TS = 4_102_444_800_000
"""2100-01-01 UTC in epoch ms: a notice's time must lie in [0, MAX_TS]."""
MAX_MAGNITUDE = Decimal("1e15")
"""An order's or fill's amounts (quantities, prices) must lie strictly within +-MAX_MAGNITUDE."""

SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}

HALT_KINDS: dict[str, str] = {
    AlertKind.HALT: "Trading halted",
    AlertKind.KILL_SWITCH: "Kill switch engaged",
    AlertKind.RECONCILIATION_FAILED: "Reconciliation failed",
}
"""Alert kinds the executor uses for halts and reconciliation failures, with their titles."""

Payload = Alert | Signal | OrderEvent | Fill


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
        order = topics.ORDERS.decode(value)
        _check_amounts(
            ("qty", order.qty),
            ("notional", order.notional),
            ("limit_price", order.limit_price),
            ("filled_qty", order.filled_qty),
            ("filled_avg_price", order.filled_avg_price),
        )
        rejected = order.status is OrderStatus.REJECTED
        return Notice(
            f"order:{order.event_id}",
            event_type,
            order.status.value,
            Severity.WARNING if rejected else Severity.INFO,
            order.symbol,
            order.ts,
            order,
        )
    fill = topics.FILLS.decode(value)
    _check_amounts(("position_qty", fill.position_qty))  # qty and price: bounded by ``Fill``
    return Notice(f"fill:{fill.id}", event_type, "fill", Severity.INFO, fill.symbol, fill.ts, fill)


def _check_amounts(*amounts: tuple[str, Decimal | None]) -> None:
    """Refuse, with a one-line reason, an amount no message shows (beyond ``MAX_MAGNITUDE``)."""
    for name, amount in amounts:
        if amount is not None and not -MAX_MAGNITUDE < amount < MAX_MAGNITUDE:
            raise DecodeError(f"{name}: {amount} is beyond {MAX_MAGNITUDE:E}, too large to show")
