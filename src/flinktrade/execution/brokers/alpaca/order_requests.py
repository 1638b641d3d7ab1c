"""Our ``OrderRequest`` as alpaca-py's request classes (the wire side of placing an order).

One function, ``to_alpaca``: the spec's type picks the class (``MarketOrderRequest``,
``LimitOrderRequest``, ``StopOrderRequest``, ``StopLimitOrderRequest``,
``TrailingStopOrderRequest``); absolute-price exits on an entry become Alpaca's ``bracket`` (both
exits) or ``oto`` (one), an ``oco`` spec is the exit pair of an open position; exits are
``TakeProfitRequest`` / ``StopLossRequest``. Percentage exits are not Alpaca's: the executor places
them itself once the entry fills (``execution.exits``), so they never reach this module. A request
alpaca-py refuses raises ``ValueError`` (the broker turns it into a refusal, nothing is sent).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from alpaca.trading.enums import OrderClass as AlpacaOrderClass
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from alpaca.trading.requests import (
    OrderRequest as AlpacaOrderRequest,
)

from flinktrade.events import OrderClass, OrderType, Side
from flinktrade.execution.brokers.base import OrderRequest


def _num(value: Decimal | None) -> float | None:
    """A price or size as alpaca-py takes it (a float; ours are on the tick, so exact enough
    that its JSON prints the same digits)."""
    return None if value is None else float(value)


def broker_class(request: OrderRequest) -> OrderClass:
    """The Alpaca order class of ``request``: ``oco`` for an exit pair, ``bracket``/``oto`` for
    an entry with absolute-price exits, else ``simple`` (percentage exits are the executor's)."""
    spec = request.spec
    if spec.oco:
        return OrderClass.OCO
    take = spec.take_profit_price is not None
    stop = spec.stop_loss_price is not None
    if take and stop:
        return OrderClass.BRACKET
    if take or stop:
        return OrderClass.OTO
    return OrderClass.SIMPLE


def to_alpaca(request: OrderRequest) -> AlpacaOrderRequest:
    """The alpaca-py request for ``request``; ``ValueError`` if alpaca-py refuses it."""
    spec = request.spec
    fields: dict[str, Any] = {
        "symbol": request.symbol,
        "side": OrderSide.BUY if request.side is Side.BUY else OrderSide.SELL,
        "time_in_force": TimeInForce(spec.time_in_force.value),
        "client_order_id": request.client_order_id,
    }
    if request.notional is not None:
        fields["notional"] = _num(request.notional)
    else:
        fields["qty"] = _num(request.qty)
    if spec.extended_hours:
        fields["extended_hours"] = True
    kind = broker_class(request)
    if kind is not OrderClass.SIMPLE:
        fields["order_class"] = AlpacaOrderClass(kind.value)
        if spec.take_profit_price is not None:
            fields["take_profit"] = TakeProfitRequest(limit_price=_num(spec.take_profit_price))
        if spec.stop_loss_price is not None:
            fields["stop_loss"] = StopLossRequest(
                stop_price=_num(spec.stop_loss_price),
                limit_price=_num(spec.stop_loss_limit_price),
            )
    if spec.type is OrderType.MARKET:
        return MarketOrderRequest(**fields)
    if spec.type is OrderType.LIMIT:
        return LimitOrderRequest(limit_price=_num(spec.limit_price), **fields)
    if spec.type is OrderType.STOP:
        return StopOrderRequest(stop_price=_num(spec.stop_price), **fields)
    if spec.type is OrderType.STOP_LIMIT:
        return StopLimitOrderRequest(
            limit_price=_num(spec.limit_price), stop_price=_num(spec.stop_price), **fields
        )
    return TrailingStopOrderRequest(
        trail_percent=_num(spec.trail_percent), trail_price=_num(spec.trail_price), **fields
    )
