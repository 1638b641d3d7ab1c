"""The broker interface the executor talks to, and the outcomes of placing an order.

A broker call can end four ways, and the executor treats each differently:

- it returns: the broker has the order (``BrokerOrder``);
- ``OrderExists``: the ``client_order_id`` is already used, so the order exists: look it up;
- ``OrderRefused``: the broker definitely did not take it (a 4xx answer, or 429 after waiting);
- ``OutcomeUnknown``: timeout, connection dropped, 5xx, an answer that is not the broker's (a
  proxy's HTML page, an empty or unreadable body): the order may or may not exist. The only safe
  next step is a look-up by ``client_order_id``; never a blind resubmit.

Every other call (reads) either answers or raises ``TransientError``, whatever came back.
``cancel`` asks the broker to cancel an open order: it answers whether a cancel was taken or
there was nothing left to cancel ("no such order", "already filled/canceled" are answers, not
errors), or raises ``TransientError`` when it cannot tell; a cancel may always be asked again.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from flinktrade.errors import FlinktradeError, OrderRejected, TransientError
from flinktrade.events import PLAIN_ORDER, OrderSpec, OrderStatus, Side


class OutcomeUnknown(TransientError):
    """The request may or may not have reached the broker."""


class OrderExists(FlinktradeError):
    """The broker already has an order with this client_order_id."""


class OrderRefused(OrderRejected):
    """The broker answered and did not create the order (reason in the message)."""


@dataclass(frozen=True)
class OrderRequest:
    """One order to place: its id, symbol, side and size (``qty`` shares, or ``notional``
    dollars with ``qty`` None), shaped by ``spec`` (type, prices, time in force, extended hours,
    and absolute-price exits sent as the broker's ``bracket``/``oto``, or an ``oco`` exit pair).
    The spec's own ``qty``/``notional`` are not read: the size is the request's."""

    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal | None
    spec: OrderSpec = PLAIN_ORDER
    notional: Decimal | None = None

    @property
    def type(self) -> str:
        return self.spec.type.value

    @property
    def time_in_force(self) -> str:
        return self.spec.time_in_force.value


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker reports it."""

    id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal | None
    status: OrderStatus
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    broker_status: str
    """The broker's own status word (``pending_new``, ``done_for_day``, ...)."""
    type: str = "market"
    order_class: str = "simple"
    legs: tuple[BrokerOrder, ...] = ()
    """The child orders the broker made for a bracket, OTO or OCO order (its exits)."""
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True)
class TradeUpdate:
    """A change of an order pushed by the broker (Alpaca's ``trade_updates``)."""

    event: str
    order: BrokerOrder
    execution_id: str | None = None
    price: Decimal | None = None
    qty: Decimal | None = None
    position_qty: Decimal | None = None
    ts: int = 0
    commission: Decimal = Decimal(0)

    @property
    def is_fill(self) -> bool:
        return self.event in ("fill", "partial_fill")


@dataclass(frozen=True)
class Account:
    equity: Decimal
    last_equity: Decimal
    """Equity at the previous market close: the base of today's profit and loss."""
    cash: Decimal
    trading_blocked: bool = False


UpdateHandler = Callable[[TradeUpdate], None]
ReconnectHandler = Callable[[], None]
SendGuard = Callable[[], str | None]
"""Asked before every send attempt of an order: None to go ahead, or why not (e.g. the kill
switch is set)."""


class Broker(abc.ABC):
    """What the executor needs from a venue. Every method either answers or raises within the
    configured timeout; ``get_order`` returns None only when the broker says it has no such
    order (404), never because a call failed."""

    name: str = "broker"
    paper: bool = True
    fractional: bool = False
    """Whether the venue takes fractional share quantities."""

    @abc.abstractmethod
    def submit(self, request: OrderRequest, may_send: SendGuard | None = None) -> BrokerOrder:
        """Place an order: returns it, or raises ``OrderExists``, ``OrderRefused`` or
        ``OutcomeUnknown`` (nothing else).

        ``may_send`` is called before EVERY attempt to send the order (the first and each
        retry, e.g. after a rate-limit wait); a string answer means "do not send": the call
        raises ``OrderRefused`` with that reason and nothing more leaves this process."""

    @abc.abstractmethod
    def get_order(self, client_order_id: str) -> BrokerOrder | None: ...

    @abc.abstractmethod
    def cancel(self, client_order_id: str) -> bool:
        """Ask the broker to cancel the open order ``client_order_id``: True when the cancel was
        taken (the order ends ``canceled``, or filled if a fill came first: follow it), False
        when there is nothing to cancel (no such order, or it is final already). Raises
        ``TransientError`` when the answer does not say (timeout, 5xx, a foreign answer): the
        cancel may or may not have been taken, and asking again is safe. Never refused by the
        kill switch (a cancel reduces risk)."""

    @abc.abstractmethod
    def open_orders(self) -> list[BrokerOrder]: ...

    @abc.abstractmethod
    def positions(self) -> dict[str, Decimal]:
        """Signed shares per symbol (short positions negative), no zeros."""

    @abc.abstractmethod
    def account(self) -> Account: ...

    @abc.abstractmethod
    def market_open(self) -> bool: ...

    @abc.abstractmethod
    def start_updates(self, on_update: UpdateHandler, on_reconnect: ReconnectHandler) -> None:
        """Start pushing trade updates (on a background thread). ``on_reconnect`` is called after
        every reconnect: events missed while disconnected are not replayed."""

    @abc.abstractmethod
    def close(self) -> None: ...
