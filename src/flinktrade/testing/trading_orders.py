"""Alpaca's order model in the fake trading API: the order, its validation, its price triggers.

No I/O, no threads. ``build_order`` checks a ``POST /v2/orders`` body as Alpaca does and
returns the order with its ``legs`` (bracket, OTO, OCO), or raises ``ApiError`` with Alpaca's HTTP
status, code and message; ``replacement`` does the same for ``PATCH /v2/orders/{id}``. The
messages are Alpaca's where its answers are on record (its docs and forum, its SDKs' issues,
public probes of the paper API); the few that are not are marked ``# fake's wording``.
``crossed`` decides whether a price executes a working order, by the fake's own price-cross
rules (the fake stands for Alpaca, not for flinktrade's matching model): a limit fills at or
through its limit, a stop or trailing stop once the price reaches its stop, a stop-limit once
triggered and within its limit, always at the pushed price (a gap fills at the gap's price); a
trailing stop follows its high-water mark (``hwm``) and moves its ``stop_price``.
``day_order_end`` is when a ``day`` order expires on a market calendar (the regular close, or
the extended session's end for an ``extended_hours`` order), as Alpaca expires them.
``FakeOrder.to_json`` renders an order in Alpaca's wire form (numbers as strings).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from flinktrade import sessions

OPEN_STATUSES = frozenset(
    {"new", "accepted", "pending_new", "partially_filled", "held", "accepted_for_bidding"}
)
WORKING_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled"})
"""Open and live at the venue: a ``held`` leg waits for its parent to fill."""

ORDER_TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIME_IN_FORCE = ("day", "gtc", "opg", "cls", "ioc", "fok")
ORDER_CLASSES = ("simple", "bracket", "oco", "oto")

INVALID = 40010001  # Alpaca's code for a malformed parameter (HTTP 422)
UNPROCESSABLE = 42210000  # Alpaca's code for a rule the order breaks (HTTP 422)
_CENT = Decimal("0.01")
_SUB_DOLLAR = Decimal("0.0001")
_HUNDRED = Decimal(100)
_MIN_TRAIL_PERCENT = Decimal("0.1")


def iso(ts: float | None = None) -> str:
    """Alpaca's text of a time (now if ``None``): RFC 3339, microseconds, ``Z``."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def num(value: Decimal) -> str:
    """Alpaca's text of a number: plain digits, no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


class ApiError(Exception):
    """An error answer of the API: HTTP ``status``, Alpaca's ``code`` and ``message``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _invalid(message: str) -> ApiError:
    return ApiError(422, INVALID, message)


def _refused(message: str) -> ApiError:
    return ApiError(422, UNPROCESSABLE, message)


def _decimal(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _invalid(f"invalid number {value!r}") from None
    if not number.is_finite():
        raise _invalid(f"invalid number {value!r}")
    return number


def _text(value: Decimal | None) -> str | None:
    return None if value is None else num(value)


@dataclass
class FakeOrder:
    """One order of the fake, a parent with its ``legs`` or a leg (``parent_id`` set)."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal | None
    notional: Decimal | None
    type: str
    time_in_force: str
    limit_price: Decimal | None
    created: float
    status: str = "accepted"
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_price: Decimal | None = None
    hwm: Decimal | None = None
    extended_hours: bool = False
    order_class: str = "simple"
    legs: list[FakeOrder] = field(default_factory=list)
    parent_id: str | None = None
    triggered: bool = False  # a stop-limit whose stop price was reached
    replaces: str | None = None
    replaced_by: str | None = None
    replaced_at: float | None = None
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    filled_at: float | None = None
    canceled_at: float | None = None
    expires_at_ms: int | None = None
    """When a ``day`` order expires on the fake's market clock (epoch ms); None: never."""
    expired_at: float | None = None
    updated: float = 0.0
    asset_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_json(self, *, legs: bool = True) -> dict[str, Any]:
        """Alpaca's JSON of the order; ``legs`` nests the legs (Alpaca's ``nested=true``)."""
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": iso(self.created),
            "updated_at": iso(self.updated or self.created),
            "submitted_at": iso(self.created),
            "filled_at": None if self.filled_at is None else iso(self.filled_at),
            "expired_at": None if self.expired_at is None else iso(self.expired_at),
            "canceled_at": None if self.canceled_at is None else iso(self.canceled_at),
            "failed_at": None,
            "replaced_at": None if self.replaced_at is None else iso(self.replaced_at),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": self.asset_id,
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": _text(self.notional),
            "qty": _text(self.qty),
            "filled_qty": num(self.filled_qty),
            "filled_avg_price": _text(self.filled_avg_price),
            "order_class": self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": "buy_to_open" if self.side == "buy" else "sell_to_close",
            "time_in_force": self.time_in_force,
            "limit_price": _text(self.limit_price),
            "stop_price": _text(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": [leg.to_json(legs=False) for leg in self.legs] if legs and self.legs else None,
            "trail_percent": _text(self.trail_percent),
            "trail_price": _text(self.trail_price),
            "hwm": _text(self.hwm),
            "subtag": None,
            "source": None,
        }


def tick(price: Decimal) -> Decimal:
    """Alpaca's minimum price increment: a cent from $1 up, else $0.0001."""
    return _CENT if price >= 1 else _SUB_DOLLAR


def _check_tick(name: str, price: Decimal | None) -> None:
    if price is None:
        return
    if price != price.quantize(tick(price)):
        # Alpaca's text (its code is not on record; 42210000 like its other pricing rules)
        raise _refused(
            f"invalid {name} {num(price)}. sub-penny increment does not fulfill minimum pricing"
            " criteria"
        )


def _exit_prices(body: dict[str, Any], name: str, fields: tuple[str, ...]) -> dict[str, Decimal]:
    raw = body.get(name)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _invalid(f"{name} must be an object")  # fake's wording
    prices = {f: _decimal(raw.get(f)) for f in fields}
    for f, price in prices.items():
        if price is not None and price <= 0:
            raise _invalid(f"{name}.{f} must be > 0")  # fake's wording
        _check_tick(f"{name}.{f}", price)
    return {f: p for f, p in prices.items() if p is not None}


def _check_type_prices(
    kind: str,
    limit: Decimal | None,
    stop: Decimal | None,
    trail_percent: Decimal | None,
    trail_price: Decimal | None,
) -> None:
    if kind == "market" and (limit is not None or stop is not None):
        raise _invalid("market orders require no stop or limit price")
    if kind == "limit":
        if limit is None:
            raise _invalid("limit orders require a limit price")
        if stop is not None:
            raise _invalid("limit orders must not have stop_price")
    if kind == "stop":
        if stop is None:
            raise _invalid("stop orders require a stop price")
        if limit is not None:
            raise _invalid("stop orders must not have limit_price")  # fake's wording
    if kind == "stop_limit" and (stop is None or limit is None):
        raise _invalid("stop limit orders require both stop and limit price")
    trails = (trail_percent is not None) + (trail_price is not None)
    if kind == "trailing_stop":
        if trails != 1:
            raise _invalid("trailing stop orders must specify one of trail_price or trail_percent")
        if limit is not None or stop is not None:
            # fake's wording
            raise _invalid("trailing stop orders must not have stop_price or limit_price")
        if trail_percent is not None and trail_percent < _MIN_TRAIL_PERCENT:
            raise _invalid("trail_percent must be greater than or equal to 0.1")
        if trail_price is not None and trail_price <= 0:
            raise _invalid("trail_price must be > 0")  # fake's wording
    elif trails:
        raise _invalid(f"{kind} orders must not have trail_price or trail_percent")  # fake's
    if limit is not None and limit <= 0:
        raise _invalid("limit price must be > 0")
    if stop is not None and stop <= 0:
        raise _invalid("stop price must be > 0")  # fake's wording
    for name, price in (("limit_price", limit), ("stop_price", stop), ("trail_price", trail_price)):
        _check_tick(name, price)


def _check_class(
    order_class: str,
    kind: str,
    time_in_force: str,
    take_profit: dict[str, Decimal],
    stop_loss: dict[str, Decimal],
) -> None:
    if order_class == "simple":
        return
    if kind == "trailing_stop":
        raise _refused(f"{order_class} orders do not support trailing_stop orders")  # fake's
    if time_in_force not in ("day", "gtc"):
        raise _refused(f"{order_class} orders must be DAY or GTC orders")  # fake's wording
    if order_class in ("bracket", "oco") and not (take_profit and stop_loss):
        # the wording of issue 19's brief: Alpaca's own text for this is not on record
        raise _invalid(f"{order_class} orders must specify both take_profit and stop_loss")
    if order_class == "oto" and bool(take_profit) == bool(stop_loss):
        raise _invalid("oto orders must specify one of take_profit or stop_loss")  # fake's
    if take_profit and "limit_price" not in take_profit:
        raise _invalid("take_profit.limit_price is required")  # fake's wording
    if stop_loss and "stop_price" not in stop_loss:
        raise _invalid("stop_loss.stop_price is required")  # fake's wording
    if order_class == "oco" and kind != "limit":
        raise _refused("oco orders must be limit orders")  # fake's wording


def _check_exit_prices(
    exits_sell: bool, base: Decimal, take_profit: dict[str, Decimal], stop_loss: dict[str, Decimal]
) -> None:
    """Alpaca's rule: a take profit at least a cent better than the base price (the entry's limit
    or stop, else the market), a stop loss at least a cent worse."""
    take = take_profit.get("limit_price")
    stop = stop_loss.get("stop_price")
    if exits_sell:
        if take is not None and take < base + _CENT:
            raise _refused("take_profit.limit_price must be >= base_price + 0.01")
        if stop is not None and stop > base - _CENT:
            raise _refused("stop_loss.stop_price must be <= base_price - 0.01")
    else:
        if take is not None and take > base - _CENT:
            raise _refused("take_profit.limit_price must be <= base_price - 0.01")
        if stop is not None and stop < base + _CENT:
            raise _refused("stop_loss.stop_price must be >= base_price + 0.01")


def _check_client_order_id(coid: str) -> None:
    if len(coid) > 128:
        raise _invalid("client_order_id must be no more than 128 characters")


def day_order_end(order: FakeOrder, now_ms: int, calendar: sessions.Calendar) -> int | None:
    """When ``order``, placed at ``now_ms``, expires by ``calendar``: a ``day`` order at the end
    of the session it works in (the next regular close, 13:00 on an early close; with
    ``extended_hours`` the end of the after-hours session); None for other times in force."""
    if order.time_in_force != "day":
        return None
    return calendar.day_end(now_ms, order.extended_hours)


def build_order(body: dict[str, Any], market_price: Decimal, now: float) -> FakeOrder:
    """The order ``body`` asks for, with its legs, or ``ApiError`` as Alpaca answers it.

    ``market_price`` is the symbol's price now: the base price of market entries and OCO exits
    and the first high-water mark of a trailing stop. Legs are ``held`` until their parent fills;
    the stop-loss leg of an OCO works at once beside its take-profit parent.
    """
    symbol = str(body.get("symbol") or "").upper()
    side = body.get("side")
    kind = body.get("type") or body.get("order_type") or "market"
    tif = body.get("time_in_force")
    order_class = body.get("order_class") or "simple"
    if not symbol:
        raise _invalid("symbol is required")
    if side not in ("buy", "sell"):
        raise _invalid("invalid side")
    if kind not in ORDER_TYPES:
        raise _invalid("invalid order type")
    if tif not in TIME_IN_FORCE:
        raise _invalid("invalid time_in_force")
    if order_class not in ORDER_CLASSES:
        raise _invalid("invalid order_class")  # fake's wording
    qty, notional = _decimal(body.get("qty")), _decimal(body.get("notional"))
    if qty is None and notional is None:
        raise _invalid("qty or notional is required")
    if qty is not None and notional is not None:
        raise _invalid("only one of qty or notional is accepted")
    if qty is not None and qty <= 0:
        raise _invalid("qty must be > 0")
    if notional is not None and notional < 1:
        raise _refused("notional must be >= 1.00")
    take_profit = _exit_prices(body, "take_profit", ("limit_price",))
    stop_loss = _exit_prices(body, "stop_loss", ("stop_price", "limit_price"))
    limit, stop = _decimal(body.get("limit_price")), _decimal(body.get("stop_price"))
    if order_class == "oco" and kind == "limit":  # the OCO's limit order is its take profit
        limit = take_profit.get("limit_price", limit)
    trail_percent = _decimal(body.get("trail_percent"))
    trail_price = _decimal(body.get("trail_price"))
    _check_type_prices(str(kind), limit, stop, trail_percent, trail_price)
    if notional is not None or (qty is not None and qty != qty.to_integral_value()):
        if tif != "day":
            raise _refused("fractional orders must be DAY orders")
        if order_class != "simple":
            raise _refused("fractional orders must be simple orders")
        if notional is not None and kind != "market":
            raise _refused("notional orders must be market orders")  # fake's wording
    extended = body.get("extended_hours") in (True, "true")
    if extended and (kind != "limit" or tif not in ("day", "gtc")):
        raise _refused("extended hours order must be DAY or GTC limit orders")
    if extended and order_class != "simple":
        # Alpaca's docs: "extended_hours must be false or omitted" for these classes
        raise _refused(f"extended hours are not supported for {order_class} orders")  # fake's
    _check_class(str(order_class), str(kind), str(tif), take_profit, stop_loss)
    coid = str(body.get("client_order_id") or uuid.uuid4())
    _check_client_order_id(coid)
    if order_class == "simple":
        take_profit, stop_loss = {}, {}  # Alpaca ignores exits on a simple order
    else:
        exits_sell = (side == "sell") if order_class == "oco" else (side == "buy")
        base = market_price
        if order_class != "oco" and kind in ("limit", "stop_limit") and limit is not None:
            base = limit
        elif order_class != "oco" and kind == "stop" and stop is not None:
            base = stop
        _check_exit_prices(exits_sell, base, take_profit, stop_loss)
    order = FakeOrder(
        id=str(uuid.uuid4()), client_order_id=coid, symbol=symbol, side=str(side), qty=qty,
        notional=notional, type=str(kind), time_in_force=str(tif), limit_price=limit,
        stop_price=stop, trail_percent=trail_percent, trail_price=trail_price,
        extended_hours=extended, order_class=str(order_class), created=now, updated=now,
    )  # fmt: skip
    if order.type == "trailing_stop":
        order.hwm = market_price
        order.stop_price = trailing_stop_price(order)
    order.legs = _legs(order, take_profit, stop_loss)
    return order


def _legs(
    parent: FakeOrder, take_profit: dict[str, Decimal], stop_loss: dict[str, Decimal]
) -> list[FakeOrder]:
    if parent.order_class == "simple":
        return []
    oco = parent.order_class == "oco"
    side = parent.side if oco else ("sell" if parent.side == "buy" else "buy")

    def leg(kind: str, limit: Decimal | None, stop: Decimal | None) -> FakeOrder:
        return FakeOrder(
            id=str(uuid.uuid4()), client_order_id=str(uuid.uuid4()), symbol=parent.symbol,
            side=side, qty=parent.qty, notional=None, type=kind,
            time_in_force=parent.time_in_force, limit_price=limit, stop_price=stop,
            order_class=parent.order_class, parent_id=parent.id, created=parent.created,
            updated=parent.updated, status="new" if oco else "held", asset_id=parent.asset_id,
        )  # fmt: skip

    legs = []
    if take_profit and not oco:
        legs.append(leg("limit", take_profit["limit_price"], None))
    if stop_loss:
        stop_limit = stop_loss.get("limit_price")
        kind = "stop" if stop_limit is None else "stop_limit"
        legs.append(leg(kind, stop_limit, stop_loss["stop_price"]))
    return legs


def trailing_stop_price(order: FakeOrder) -> Decimal:
    """The stop of a trailing stop at its high-water mark, on the tick (nearest)."""
    hwm = order.hwm if order.hwm is not None else Decimal(0)
    sell = order.side == "sell"
    if order.trail_price is not None:
        stop = hwm - order.trail_price if sell else hwm + order.trail_price
    else:
        share = (order.trail_percent or Decimal(0)) / _HUNDRED
        stop = hwm * (1 - share) if sell else hwm * (1 + share)
    return stop.quantize(tick(stop), rounding=ROUND_HALF_UP)


def crossed(order: FakeOrder, price: Decimal) -> bool:
    """Whether ``price`` executes the working ``order`` (moving a trailing stop's ``hwm`` and
    ``stop_price`` and recording a stop-limit's trigger first)."""
    buy = order.side == "buy"
    if order.type == "market":
        return True
    if order.type == "limit":
        limit = order.limit_price or Decimal(0)
        return price <= limit if buy else price >= limit
    if order.type == "trailing_stop":
        hwm = order.hwm if order.hwm is not None else price
        order.hwm = min(hwm, price) if buy else max(hwm, price)
        order.stop_price = trailing_stop_price(order)
    stop = order.stop_price or Decimal(0)
    reached = price >= stop if buy else price <= stop
    if order.type in ("stop", "trailing_stop"):
        return reached
    order.triggered = order.triggered or reached
    limit = order.limit_price or Decimal(0)
    return order.triggered and (price <= limit if buy else price >= limit)


def replacement(order: FakeOrder, body: dict[str, Any], now: float) -> FakeOrder:
    """The order that replaces ``order`` (``PATCH /v2/orders/{id}``: ``qty``, ``time_in_force``,
    ``limit_price``, ``stop_price``, ``trail``, ``client_order_id``), not yet booked."""
    if order.status not in OPEN_STATUSES:
        raise _refused("unable to replace order, order is not open")
    qty, limit = _decimal(body.get("qty")), _decimal(body.get("limit_price"))
    stop, trail = _decimal(body.get("stop_price")), _decimal(body.get("trail"))
    tif, coid = body.get("time_in_force"), body.get("client_order_id")
    if all(v is None for v in (qty, limit, stop, trail, tif, coid)):
        raise ApiError(403, 40310000, "order parameters are not changed")
    if qty is not None and qty <= 0:
        raise _invalid("qty must be > 0")
    if tif is not None and tif not in TIME_IN_FORCE:
        raise _invalid("invalid time_in_force")
    if limit is not None and order.type not in ("limit", "stop_limit"):
        raise _invalid(f"{order.type} orders must not have limit_price")  # fake's wording
    if stop is not None and order.type not in ("stop", "stop_limit"):
        raise _invalid(f"{order.type} orders must not have stop_price")  # fake's wording
    if trail is not None and order.type != "trailing_stop":
        raise _invalid("trail is only for trailing_stop orders")  # fake's wording
    for name, price in (("limit_price", limit), ("stop_price", stop)):
        if price is not None and price <= 0:
            raise _invalid(f"{name.replace('_', ' ')} must be > 0")
        _check_tick(name, price)
    new_coid = str(coid or uuid.uuid4())
    _check_client_order_id(new_coid)
    new = dataclasses.replace(
        order, id=str(uuid.uuid4()), client_order_id=new_coid,
        qty=qty if qty is not None else order.qty,
        time_in_force=str(tif or order.time_in_force),
        limit_price=limit if limit is not None else order.limit_price,
        stop_price=stop if stop is not None else order.stop_price,
        status="held" if order.status == "held" else "accepted", legs=list(order.legs),
        replaces=order.id, replaced_by=None, replaced_at=None, filled_qty=Decimal(0),
        filled_avg_price=None, filled_at=None, canceled_at=None, created=now, updated=now,
    )  # fmt: skip
    if trail is not None:
        if order.trail_percent is not None:
            new.trail_percent = trail
        else:
            new.trail_price = trail
        new.stop_price = trailing_stop_price(new)
    return new


__all__ = [
    "OPEN_STATUSES",
    "WORKING_STATUSES",
    "ApiError",
    "FakeOrder",
    "build_order",
    "crossed",
    "iso",
    "num",
    "replacement",
    "tick",
    "trailing_stop_price",
]
