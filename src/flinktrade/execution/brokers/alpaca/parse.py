"""Alpaca's trading JSON as our types: orders, trade updates, positions, account, clock, calendar.

Responses are read raw and parsed here with ``Decimal``, so no quantity or price passes through
a binary float. Anything that is not the expected shape raises ``TypeError``, ``KeyError``,
``ValueError`` or ``ArithmeticError``; the broker turns that into an outcome.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flinktrade import sessions
from flinktrade.events import OrderStatus, Side
from flinktrade.execution.brokers.base import Account, BrokerOrder, TradeUpdate

_STATUS = {
    "new": OrderStatus.NEW,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "replaced": OrderStatus.CANCELED,  # this order is over; its replacement is another order
    "pending_new": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED,
    "done_for_day": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED,
    "pending_review": OrderStatus.ACCEPTED,
}


def map_status(status: str, filled_qty: Decimal = Decimal(0)) -> OrderStatus:
    """Our status for an Alpaca status word; unknown words count as open (keep following)."""
    mapped = _STATUS.get(status, OrderStatus.ACCEPTED)
    if mapped == OrderStatus.ACCEPTED and filled_qty > 0:
        return OrderStatus.PARTIALLY_FILLED
    return mapped


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def parse_order(data: Any) -> BrokerOrder:
    """An Alpaca order (JSON) as a ``BrokerOrder``; ``TypeError``/``KeyError``/``ValueError``
    /``ArithmeticError`` if it is not one."""
    if not isinstance(data, dict):
        raise TypeError(f"an order must be an object, not {type(data).__name__}")
    filled = _dec(data.get("filled_qty")) or Decimal(0)
    status = str(data.get("status") or "")
    return BrokerOrder(
        id=str(data["id"]),
        client_order_id=str(data.get("client_order_id") or ""),
        symbol=str(data.get("symbol") or ""),
        side=Side(str(data.get("side") or "buy")),
        qty=_dec(data.get("qty")),
        status=map_status(status, filled),
        filled_qty=filled,
        filled_avg_price=_dec(data.get("filled_avg_price")),
        broker_status=status,
    )


def parse_trade_update(data: dict[str, Any]) -> TradeUpdate:
    """The ``data`` of a ``trade_updates`` message as a ``TradeUpdate``."""
    stamp = data.get("timestamp")
    ts = 0
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            ts = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    execution = data.get("execution_id")
    return TradeUpdate(
        event=str(data.get("event") or ""),
        order=parse_order(data["order"]),
        execution_id=None if execution is None else str(execution),
        price=_dec(data.get("price")),
        qty=_dec(data.get("qty")),
        position_qty=_dec(data.get("position_qty")),
        ts=ts,
    )


def as_list(raw: Any) -> list[Any]:
    """``raw`` if it is a JSON array."""
    if not isinstance(raw, list):  # an empty body too: "nothing" is [] in Alpaca's JSON
        raise TypeError(f"expected a list, got {type(raw).__name__}")
    return raw


def as_object(raw: Any) -> dict[str, Any]:
    """``raw`` if it is a JSON object."""
    if not isinstance(raw, dict):
        raise TypeError(f"expected an object, got {type(raw).__name__}")
    return raw


def parse_orders(raw: Any) -> list[BrokerOrder]:
    return [parse_order(as_object(o)) for o in as_list(raw)]


def parse_positions(raw: Any) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for item in as_list(raw):
        p = as_object(item)
        qty = Decimal(str(p["qty"]))
        if p.get("side") == "short" and qty > 0:
            qty = -qty
        if qty:
            out[str(p["symbol"])] = qty
    return out


def parse_account(raw: Any) -> Account:
    data = as_object(raw)
    return Account(
        equity=_required(data, "equity"),
        last_equity=_dec(data.get("last_equity")) or Decimal(0),
        cash=_dec(data.get("cash")) or Decimal(0),
        trading_blocked=bool(data.get("trading_blocked") or data.get("account_blocked")),
    )


def parse_clock(raw: Any) -> bool:
    is_open = as_object(raw)["is_open"]
    if not isinstance(is_open, bool):
        raise TypeError("is_open is not a boolean")
    return is_open


def parse_market_clock(raw: Any) -> sessions.MarketClock:
    return sessions.MarketClock.from_json(as_object(raw))


def parse_calendar(raw: Any, start: date, end: date) -> sessions.Calendar:
    """``GET /v2/calendar?start=&end=`` as a calendar covering ``start``..``end``."""
    return sessions.Calendar.from_json([as_object(day) for day in as_list(raw)], start, end)


def _required(data: dict[str, Any], name: str) -> Decimal:
    value = _dec(data.get(name))
    if value is None:
        raise KeyError(name)
    return value
