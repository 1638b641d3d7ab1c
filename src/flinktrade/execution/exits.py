"""Which exits of an entry are the broker's and which the executor's, and the orders it places.

Pure. Absolute-price exits travel with the entry as the broker's ``bracket`` (both) or ``oto``
(one) order class, and an ``oco`` spec is itself an exit pair: the broker makes and cancels those
legs. Percentage exits (``take_profit_pct``, ``stop_loss_pct``, ``trail_pct``) are measured from
the entry's fill price, which only exists once it fills, so the executor owns every exit of such an
entry (``owns_exits``): the entry goes to the broker without exits (``broker_spec``) and, once it
has filled, ``exit_orders`` says what to place: an ``oco`` pair (take profit + stop loss), one
limit or stop (stop-limit) leg, or a trailing stop, each with a ``client_order_id`` derived from
the entry's (``orders.leg_client_order_id``), so a restart re-creates the same ids and the broker
refuses a second order with one.

Exits are ``gtc`` orders, as the matching model places them (``flinktrade.matching``): they
protect the position until one fills; for a fractional quantity they are ``day`` orders (Alpaca
takes fractional shares on day orders only).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from flinktrade.events import OrderSpec, OrderType, Side, TimeInForce
from flinktrade.orders import ExitLeg, Leg, exit_legs, leg_client_order_id

_OWN_EXITS = {
    "take_profit_price": None,
    "stop_loss_price": None,
    "stop_loss_limit_price": None,
    "take_profit_pct": None,
    "stop_loss_pct": None,
    "trail_pct": None,
}


def owns_exits(spec: OrderSpec) -> bool:
    """Whether the executor places this entry's exits itself (any exit is a percentage)."""
    if spec.oco:
        return False
    return any(p is not None for p in (spec.take_profit_pct, spec.stop_loss_pct, spec.trail_pct))


def broker_spec(spec: OrderSpec) -> OrderSpec:
    """The spec the broker is sent for ``spec``: without the exits the executor places itself
    and without a size (the request carries the size)."""
    update: dict[str, object] = {"qty": None, "notional": None}
    if owns_exits(spec):
        update.update(_OWN_EXITS)
    return spec.model_copy(update=update)


@dataclass(frozen=True)
class ExitOrder:
    """One order that exits a filled entry: its id, which leg it is, its side and its spec."""

    client_order_id: str
    leg: Leg
    side: Side
    spec: OrderSpec


def exit_orders(
    entry_client_order_id: str,
    spec: OrderSpec,
    entry_side: Side,
    fill_price: Decimal,
    qty: Decimal = Decimal(1),
) -> list[ExitOrder]:
    """The orders that place the exits of an entry of ``spec`` filled at ``fill_price`` for
    ``qty`` shares: a take profit and a stop loss together are one ``oco`` order (under the take
    profit's id), a single exit is a simple order, a trailing stop is a ``trailing_stop`` order."""
    legs = {leg.leg: leg for leg in exit_legs(spec, entry_side, fill_price)}
    whole = qty == qty.to_integral_value()
    tif = TimeInForce.GTC if whole else TimeInForce.DAY
    take, stop = legs.get(Leg.TAKE_PROFIT), legs.get(Leg.STOP_LOSS)
    out: list[ExitOrder] = []

    def order(leg: ExitLeg, order_spec: OrderSpec) -> ExitOrder:
        coid = leg_client_order_id(entry_client_order_id, leg.leg)
        return ExitOrder(coid, leg.leg, leg.side, order_spec)

    if take is not None and stop is not None:
        out.append(
            order(
                take,
                OrderSpec(
                    type=OrderType.LIMIT,
                    limit_price=take.limit_price,
                    time_in_force=tif,
                    oco=True,
                    take_profit_price=take.limit_price,
                    stop_loss_price=stop.stop_price,
                    stop_loss_limit_price=stop.limit_price,
                ),
            )
        )
    else:
        for leg in (take, stop):
            if leg is not None:
                out.append(
                    order(
                        leg,
                        OrderSpec(
                            type=leg.type,
                            limit_price=leg.limit_price,
                            stop_price=leg.stop_price,
                            time_in_force=tif,
                        ),
                    )
                )
    trailing = legs.get(Leg.TRAILING_STOP)
    if trailing is not None:
        out.append(
            order(
                trailing,
                OrderSpec(
                    type=OrderType.TRAILING_STOP,
                    trail_percent=trailing.trail_percent,
                    time_in_force=tif,
                ),
            )
        )
    return out
