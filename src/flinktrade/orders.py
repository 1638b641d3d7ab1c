"""The order model's rules, shared by the executor, the simulated broker and the backtester.

``events.OrderSpec`` is what a signal asks for; this module says whether that is a valid order
(``order_problem``: Alpaca's rules, applied before anything is sent, so a bad intent is denied with
its reason and never rejected later), what its exits are once the entry has filled (``exit_legs``)
and which ``client_order_id`` each order created for it carries (``leg_client_order_id``), so a
retry or a restart re-creates the same ids and never a second order.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from flinktrade.events import (
    PLAIN_ORDER,
    OrderClass,
    OrderSpec,
    OrderType,
    Side,
    TimeInForce,
    stable_id,
)

_HUNDRED = Decimal(100)
_CENT = Decimal("0.01")
_SUB_DOLLAR_STEP = Decimal("0.0001")


class Leg(StrEnum):
    """The orders one intent may create: its entry and its exits."""

    ENTRY = "entry"
    TAKE_PROFIT = "take_profit"
    STOP_LOSS = "stop_loss"
    TRAILING_STOP = "trailing_stop"


def spec_of(order: OrderSpec | None) -> OrderSpec:
    """The spec a signal asks for: its ``order``, or the plain market order."""
    return PLAIN_ORDER if order is None else order


def order_problem(spec: OrderSpec, *, fractional: bool = True) -> str | None:
    """Why ``spec`` is not an order any broker of flinktrade takes (None if it is one).

    The rules are Alpaca's (``/work/shared/EXTERNAL_APIS.md``, Alpaca's order docs): each type
    carries exactly the prices it needs; a quantity or a notional, not both; notional only on a
    market day order; fractional shares only on a day order (and only where the broker allows them:
    ``fractional``); extended hours only for a limit order, day or GTC; a bracket has both exits;
    exits only on entries that can fill completely (not IOC/FOK/OPG/CLS); prices on the tick (a cent
    from $1, else 0.0001); an OCO pair is an exit of
    an open position with both a take-profit and a stop-loss price, of type limit; a trailing-stop
    exit stands alone.
    """
    kind = spec.type
    needs_limit = kind in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
    if needs_limit and spec.limit_price is None:
        return f"a {kind} order needs limit_price"
    if not needs_limit and spec.limit_price is not None:
        return f"a {kind} order takes no limit_price"
    if needs_stop and spec.stop_price is None:
        return f"a {kind} order needs stop_price"
    if not needs_stop and spec.stop_price is not None:
        return f"a {kind} order takes no stop_price"
    trails = (spec.trail_percent is not None) + (spec.trail_price is not None)
    if kind is OrderType.TRAILING_STOP and trails != 1:
        return "a trailing_stop order needs exactly one of trail_percent and trail_price"
    if kind is not OrderType.TRAILING_STOP and trails:
        return f"a {kind} order takes no trail_percent or trail_price"
    if spec.qty is not None and spec.notional is not None:
        return "an order has a qty or a notional, not both"
    if spec.notional is not None and (
        kind is not OrderType.MARKET or spec.time_in_force is not TimeInForce.DAY
    ):
        return "notional orders must be market orders with time_in_force day"
    if spec.qty is not None and spec.qty != spec.qty.to_integral_value():
        if not fractional:
            return f"qty {spec.qty}: this broker takes whole shares only"
        if spec.time_in_force is not TimeInForce.DAY:
            return "fractional orders must have time_in_force day"
    if spec.extended_hours and (
        kind is not OrderType.LIMIT or spec.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC)
    ):
        return "extended hours orders must be limit orders with time_in_force day or gtc"
    return _tick_problem(spec) or _exit_problem(spec)


def _exit_problem(spec: OrderSpec) -> str | None:
    if spec.take_profit_price is not None and spec.take_profit_pct is not None:
        return "take profit: a price or a percentage, not both"
    if spec.stop_loss_price is not None and spec.stop_loss_pct is not None:
        return "stop loss: a price or a percentage, not both"
    if spec.stop_loss_limit_price is not None and spec.stop_loss_price is None:
        return "stop_loss_limit_price needs stop_loss_price"
    if spec.trail_pct is not None and (spec.has_take_profit or spec.has_stop_loss):
        return "a trailing-stop exit (trail_pct) stands alone: no take profit or stop loss with it"
    if spec.oco:
        if spec.take_profit_price is None or spec.stop_loss_price is None:
            return "an oco order needs take_profit_price and stop_loss_price"
        if spec.type is not OrderType.LIMIT or spec.limit_price != spec.take_profit_price:
            return "an oco order is of type limit with limit_price equal to take_profit_price"
        if spec.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
            return "an oco order must have time_in_force day or gtc"
        return None
    if not spec.exits:
        return None
    if spec.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
        return f"an order with exits must have time_in_force day or gtc, not {spec.time_in_force}"
    if spec.extended_hours:
        return "an order with exits cannot trade in extended hours"
    if spec.notional is not None:
        return "an order with exits needs a qty, not a notional"
    return None


def exit_side(entry_side: Side) -> Side:
    """The side of the exits of an entry on ``entry_side``."""
    return Side.SELL if entry_side is Side.BUY else Side.BUY


def tick(price: Decimal) -> Decimal:
    """The smallest price step brokers accept at ``price``: a cent from $1 up, else 0.0001."""
    return _CENT if price >= 1 else _SUB_DOLLAR_STEP


def to_tick(price: Decimal, up: bool) -> Decimal:
    """``price`` on the broker's tick, rounded up or down."""
    step = tick(price)
    return price.quantize(step, rounding=ROUND_CEILING if up else ROUND_FLOOR)


def _tick_problem(spec: OrderSpec) -> str | None:
    for name in _PRICE_FIELDS:
        price: Decimal | None = getattr(spec, name)
        if price is not None and price != price.quantize(tick(price)):
            return (
                f"{name} {price}: sub-penny increment does not fulfill minimum pricing criteria"
                " (a cent from $1, else 0.0001)"
            )
    return None


_PRICE_FIELDS = (
    "limit_price",
    "stop_price",
    "trail_price",
    "take_profit_price",
    "stop_loss_price",
    "stop_loss_limit_price",
)


@dataclass(frozen=True)
class ExitLeg:
    """One exit order of a filled entry: a limit (take profit), a stop or stop-limit (stop loss),
    or a trailing stop; ``side`` closes the entry's position."""

    leg: Leg
    side: Side
    type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None


def exit_legs(spec: OrderSpec, entry_side: Side, fill_price: Decimal) -> list[ExitLeg]:
    """The exits to place once the entry of ``spec`` filled at ``fill_price`` (its average).

    Percentages are measured from the fill price and rounded to the broker's tick away from the
    fill (a take profit never below what was asked, a stop never closer), so the prices are the
    same in the executor, the simulated broker and the backtester. An OCO spec has no exits: it
    is the exit pair itself.
    """
    if spec.oco:
        return []
    side = exit_side(entry_side)
    long = entry_side is Side.BUY
    legs: list[ExitLeg] = []
    take = spec.take_profit_price
    if spec.take_profit_pct is not None:
        change = fill_price * spec.take_profit_pct / _HUNDRED
        take = to_tick(fill_price + change if long else fill_price - change, up=long)
    if take is not None:
        legs.append(ExitLeg(Leg.TAKE_PROFIT, side, OrderType.LIMIT, limit_price=take))
    stop = spec.stop_loss_price
    if spec.stop_loss_pct is not None:
        change = fill_price * spec.stop_loss_pct / _HUNDRED
        stop = to_tick(fill_price - change if long else fill_price + change, up=not long)
    if stop is not None:
        kind = OrderType.STOP if spec.stop_loss_limit_price is None else OrderType.STOP_LIMIT
        legs.append(
            ExitLeg(
                Leg.STOP_LOSS, side, kind, limit_price=spec.stop_loss_limit_price, stop_price=stop
            )
        )
    if spec.trail_pct is not None:
        legs.append(
            ExitLeg(Leg.TRAILING_STOP, side, OrderType.TRAILING_STOP, trail_percent=spec.trail_pct)
        )
    return legs


def leg_client_order_id(entry_client_order_id: str, leg: Leg) -> str:
    """The ``client_order_id`` of ``leg`` of the entry ``entry_client_order_id``: derived, so a
    restart that re-creates the exits re-creates the same ids (Alpaca allows 128 characters)."""
    if leg is Leg.ENTRY:
        return entry_client_order_id
    short = _LEG_SHORT[leg]
    return f"{entry_client_order_id[:90]}-{short}-{stable_id(entry_client_order_id, leg)[:8]}"


_LEG_SHORT = {Leg.TAKE_PROFIT: "tp", Leg.STOP_LOSS: "sl", Leg.TRAILING_STOP: "ts"}


def with_exits(
    take_profit_pct: float | None = None,
    stop_loss_pct: float | None = None,
    trail_pct: float | None = None,
) -> OrderSpec | None:
    """The order a built-in strategy attaches to its entries: a market order with the exits its
    parameters ask for, or None (a plain market order) when it has none."""
    if take_profit_pct is None and stop_loss_pct is None and trail_pct is None:
        return None
    return OrderSpec(
        take_profit_pct=_maybe_percent("take_profit_pct", take_profit_pct),
        stop_loss_pct=_maybe_percent("stop_loss_pct", stop_loss_pct),
        trail_pct=_maybe_percent("trail_pct", trail_pct),
    )


def percent(name: str, value: float | str | Decimal) -> Decimal:
    """A strategy parameter ``name`` as an exit percentage, or ``ValueError`` in one line."""
    try:
        number = Decimal(repr(float(value))) if not isinstance(value, Decimal) else value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not (number.is_finite() and 0 < number < _HUNDRED):
        raise ValueError(f"{name} must be between 0 and 100 (percent), got {value}")
    return number


def _maybe_percent(name: str, value: float | None) -> Decimal | None:
    return None if value is None else percent(name, value)


__all__ = [
    "ExitLeg",
    "Leg",
    "OrderClass",
    "exit_legs",
    "exit_side",
    "leg_client_order_id",
    "order_problem",
    "percent",
    "spec_of",
    "tick",
    "to_tick",
    "with_exits",
]
