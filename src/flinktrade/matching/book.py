"""The matching ``Book``: the working orders of one account and the rules that fill them.

The rules are in the package's docstring (``flinktrade.matching``) and ``docs/backtest.md``;
the market calendar (a ``day`` order's end, ``opg``/``cls``, ``follow_sessions``) is
``flinktrade.sessions``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from flinktrade import sessions
from flinktrade.events import ExitReason, OrderSpec, OrderStatus, OrderType, Side, TimeInForce
from flinktrade.orders import Leg, exit_legs, leg_client_order_id, order_problem
from flinktrade.sessions import Calendar, Session

Status = OrderStatus
"""An order's status, as Alpaca (and ``events.OrderStatus``) names them."""

EASTERN = ZoneInfo("America/New_York")

Sizer = Callable[["Order", float], tuple[float, str]]
"""``(order, fill price) -> (qty, reason)``: the size of an order given without a qty, at the
price it is about to fill at (after slippage); a qty <= 0 cancels the order with the reason."""

SessionEnd = Callable[[int], int]
"""``ts -> the end of the session ts is in`` (epoch ms): when a ``day`` order expires (the old
way, without a calendar: ``eastern_session_end``)."""

_EXIT_REASONS = {
    Leg.TAKE_PROFIT: ExitReason.TAKE_PROFIT,
    Leg.STOP_LOSS: ExitReason.STOP_LOSS,
    Leg.TRAILING_STOP: ExitReason.TRAILING_STOP,
}
_STOPS = (OrderType.STOP, OrderType.TRAILING_STOP, OrderType.STOP_LIMIT)
_AT_ONCE = (TimeInForce.IOC, TimeInForce.FOK)
_AUCTIONS = (TimeInForce.OPG, TimeInForce.CLS)
_WHOLE_DAY = (Session.POST, Session.CLOSED)
"""Sessions in which a price an ``opg``/``cls`` order first meets stands for a whole day."""


def eastern_session_end(ts: int) -> int:
    """The next midnight in US/Eastern after ``ts``: a ``SessionEnd`` that ignores the calendar
    (a ``day`` order works to the end of the US/Eastern date of the first price it meets)."""
    day = datetime.fromtimestamp(ts / 1000, EASTERN).date() + timedelta(days=1)
    return int(datetime.combine(day, time(0), tzinfo=EASTERN).timestamp() * 1000)


class MatchBar(Protocol):
    """What the book reads of a bar (``events.Bar`` has it): ``ts`` is the bar's start."""

    @property
    def symbol(self) -> str: ...

    @property
    def ts(self) -> int: ...

    @property
    def open(self) -> Decimal | float: ...

    @property
    def high(self) -> Decimal | float: ...

    @property
    def low(self) -> Decimal | float: ...

    @property
    def close(self) -> Decimal | float: ...

    @property
    def volume(self) -> int | float: ...


@dataclass(frozen=True)
class Costs:
    """What a fill costs: ``commission`` x value + ``per_share`` x qty (at least ``minimum`` per
    order), and ``slippage_bps`` against us on market-like fills. ``volume_share``: at most this
    fraction of a bar's volume fills per bar (None: no limit)."""

    commission: float = 0.0
    per_share: float = 0.0
    minimum: float = 0.0
    slippage_bps: float = 0.0
    volume_share: float | None = None

    def slipped(self, side: Side, price: float) -> float:
        """``price`` moved ``slippage_bps`` against a market-like fill on ``side``."""
        slip = self.slippage_bps / 10_000
        return price * (1 + slip) if side is Side.BUY else price * (1 - slip)

    def fee(self, qty: float, price: float) -> float:
        """The commission of one execution (before the per-order minimum)."""
        return abs(qty) * price * self.commission + abs(qty) * self.per_share


@dataclass(eq=False)
class Order:
    """An order in the book: what was asked for, and its state (mutated by the book only).

    ``qty`` None: sized by the book's sizer (or ``notional`` / price) when it fills. ``spec``:
    the entry's ``events.OrderSpec``, whose exits are placed when it fills."""

    id: str
    symbol: str
    side: Side
    qty: float | None
    type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: float | None = None
    stop_price: float | None = None
    trail_percent: float | None = None
    trail_price: float | None = None
    notional: float | None = None
    extended_hours: bool = False
    """May trade in the pre- and post-market sessions (with ``follow_sessions``; a ``day``
    order then works until the extended session's end)."""
    spec: OrderSpec | None = None
    leg: Leg = Leg.ENTRY
    parent_id: str | None = None
    group: str | None = None
    """Orders of one group cancel each other when one fills (a bracket's exits, an OCO pair)."""
    status: OrderStatus = OrderStatus.NEW
    placed_ts: int = 0
    filled_qty: float = 0.0
    avg_price: float = 0.0
    commission: float = 0.0
    triggered: bool = False
    mark: float | None = None
    """A trailing stop's best price since it was placed."""
    session_end: int | None = None
    """When a ``day`` order expires (epoch ms), known from the first price it meets."""
    due: int | None = None
    """The regular open an ``opg`` order meets, the regular close a ``cls`` order meets (0: the
    first price it meets, a bar that stands for a whole day)."""
    seq: int = 0

    @classmethod
    def of(
        cls, order_id: str, symbol: str, side: Side, spec: OrderSpec, qty: float | None = None
    ) -> Order:
        """The order ``spec`` asks for (its ``qty`` wins over ``qty``); an OCO spec is its
        take-profit limit, the stop-loss leg is added by ``Book.submit``."""
        size = float(spec.qty) if spec.qty is not None else qty
        return cls(
            id=order_id,
            symbol=symbol,
            side=side,
            qty=size,
            type=spec.type,
            time_in_force=spec.time_in_force,
            limit_price=_f(spec.limit_price),
            stop_price=_f(spec.stop_price),
            trail_percent=_f(spec.trail_percent),
            trail_price=_f(spec.trail_price),
            notional=_f(spec.notional),
            extended_hours=spec.extended_hours,
            spec=spec,
            leg=Leg.TAKE_PROFIT if spec.oco else Leg.ENTRY,
        )

    @property
    def remaining(self) -> float:
        return 0.0 if self.qty is None else self.qty - self.filled_qty

    @property
    def working(self) -> bool:
        return self.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)

    @property
    def exit_reason(self) -> ExitReason | None:
        return _EXIT_REASONS.get(self.leg)

    def trail_stop(self) -> float:
        """A trailing stop's stop price from its mark."""
        mark = self.mark if self.mark is not None else 0.0
        if self.trail_price is not None:
            return mark - self.trail_price if self.side is Side.SELL else mark + self.trail_price
        pct = (self.trail_percent or 0.0) / 100
        return mark * (1 - pct) if self.side is Side.SELL else mark * (1 + pct)


def _f(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class Update:
    """An order's new status (``reason`` says why for canceled, expired and rejected)."""

    order_id: str
    ts: int
    status: OrderStatus
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill of ``qty`` at ``price`` (after slippage) with its ``commission``."""

    order_id: str
    symbol: str
    leg: Leg
    side: Side
    qty: float
    price: float
    commission: float
    ts: int
    exit_reason: ExitReason | None = None
    parent_id: str | None = None


Change = Update | Execution


_DAY_MS = 86_400_000


class _Prices:
    """One bar (or one trade as a bar) as the book matches it, with its volume left;
    ``whole_day``: a bar of a day or longer (its ``interval_ms``), which has no time of day."""

    __slots__ = ("close", "high", "left", "low", "open", "ts", "whole_day")

    def __init__(
        self,
        ts: int,
        o: float,
        h: float,
        lo: float,
        c: float,
        left: float | None,
        whole_day: bool = False,
    ) -> None:
        self.ts, self.open, self.high, self.low, self.close, self.left = ts, o, h, lo, c, left
        self.whole_day = whole_day


class Book:
    """The working orders of one account (every symbol) and the rules that fill them."""

    def __init__(
        self,
        costs: Costs | None = None,
        sizer: Sizer | None = None,
        session_end: SessionEnd | None = None,
        *,
        calendar: Calendar | None = None,
        follow_sessions: bool = False,
    ) -> None:
        """``calendar``: the market calendar that ends ``day`` orders and times ``opg``/``cls``
        (None: the bundled one, ``sessions.bundled()``). ``session_end``: ``ts -> end`` for
        ``day`` orders in place of the calendar (e.g. ``eastern_session_end``, the old rule).
        ``follow_sessions``: an order meets only prices in a session it may trade in (the
        regular one; pre- and post-market too for an order with ``extended_hours``)."""
        self.costs = costs or Costs()
        self.sizer = sizer
        self.session_end = session_end
        self.calendar = calendar if calendar is not None else sessions.bundled()
        self.follow_sessions = follow_sessions
        self.orders: dict[str, Order] = {}
        """Every order the book took, by id (final ones too)."""
        self._working: dict[str, list[Order]] = {}
        self._last: dict[str, tuple[int, float]] = {}
        """The last price (time, close) each symbol was matched at: a ``cls`` order's close."""
        self._seq = 0

    def working(self, symbol: str | None = None) -> list[Order]:
        """The working orders (of ``symbol``), in the order they were placed."""
        if symbol is not None:
            return list(self._working.get(symbol, ()))
        return sorted((o for os in self._working.values() for o in os), key=lambda o: o.seq)

    def has_working(self, symbol: str) -> bool:
        return bool(self._working.get(symbol))

    # -- orders in and out ----------------------------------------------------------------------

    def submit(self, order: Order, ts: int, price: float | None = None) -> list[Change]:
        """Take ``order`` at ``ts`` (``new``) or reject it with the reason; with ``price`` it is
        matched at once against that one price (no volume limit)."""
        problem = self._problem(order)
        if problem is not None:
            order.status = OrderStatus.REJECTED
            return [Update(order.id, ts, OrderStatus.REJECTED, problem)]
        changes: list[Change] = []
        placed = [self._place(order, ts, changes)]
        spec = order.spec
        if spec is not None and spec.oco and spec.stop_loss_price is not None:
            order.group = order.id
            stop = Order(
                id=leg_client_order_id(order.id, Leg.STOP_LOSS),
                symbol=order.symbol,
                side=order.side,
                qty=order.qty,
                type=OrderType.STOP if spec.stop_loss_limit_price is None else OrderType.STOP_LIMIT,
                time_in_force=order.time_in_force,
                limit_price=_f(spec.stop_loss_limit_price),
                stop_price=float(spec.stop_loss_price),
                leg=Leg.STOP_LOSS,
                parent_id=order.id,
                group=order.id,
            )
            placed.append(self._place(stop, ts, changes))
        if price is not None:
            at = _Prices(ts, price, price, price, price, None)
            self._match(at, [o for o in placed if o.working], changes)
        return changes

    def _problem(self, order: Order) -> str | None:
        if order.id in self.orders:
            return f"order id {order.id} already taken"
        if order.spec is not None:
            problem = order_problem(order.spec)
            if problem is not None:
                return problem
        if order.qty is not None and not order.qty > 0:
            return f"qty must be positive, got {order.qty}"
        if order.qty is None and order.notional is None and self.sizer is None:
            return "an order without qty needs a sizer"
        return None

    def _place(self, order: Order, ts: int, changes: list[Change]) -> Order:
        self._seq += 1
        order.seq, order.placed_ts, order.status = self._seq, ts, OrderStatus.NEW
        self.orders[order.id] = order
        self._working.setdefault(order.symbol, []).append(order)
        changes.append(Update(order.id, ts, OrderStatus.NEW))
        return order

    def cancel(self, order_id: str, ts: int, reason: str = "canceled") -> list[Change]:
        """Cancel a working order and the other orders of its group (an unknown or final order:
        nothing happens)."""
        order = self.orders.get(order_id)
        if order is None or not order.working:
            return []
        changes: list[Change] = []
        self._end(order, OrderStatus.CANCELED, ts, reason, changes)
        self._cancel_group(order, ts, changes)
        return changes

    def cancel_all(self, symbol: str, ts: int, reason: str = "canceled") -> list[Change]:
        """Cancel every working order of ``symbol``."""
        changes: list[Change] = []
        for order in list(self._working.get(symbol, ())):
            self._end(order, OrderStatus.CANCELED, ts, reason, changes)
        return changes

    # -- prices in ------------------------------------------------------------------------------

    def on_bar(self, bar: MatchBar) -> list[Change]:
        """Match the orders of ``bar.symbol`` placed at or before the bar's start against it."""
        working = self._working.get(bar.symbol)
        if not working:
            return []
        left = None
        if self.costs.volume_share is not None:
            left = float(math.floor(float(bar.volume) * self.costs.volume_share))
        whole_day = getattr(bar, "interval_ms", 0) >= _DAY_MS
        at = _Prices(
            bar.ts,
            float(bar.open),
            float(bar.high),
            float(bar.low),
            float(bar.close),
            left,
            whole_day,
        )
        changes: list[Change] = []
        self._match(at, self._eligible(working, bar.ts, whole_day), changes)
        self._last[bar.symbol] = (bar.ts, at.close)
        return changes

    def on_trade(self, symbol: str, ts: int, price: float, size: float) -> list[Change]:
        """Match the orders of ``symbol`` placed at or before ``ts`` against one trade."""
        working = self._working.get(symbol)
        if not working:
            return []
        left = None
        if self.costs.volume_share is not None:
            left = float(math.floor(float(size) * self.costs.volume_share))
        at = _Prices(ts, price, price, price, price, left)
        changes: list[Change] = []
        self._match(at, self._eligible(working, ts), changes)
        self._last[symbol] = (ts, price)
        return changes

    def expire(self, ts: int) -> list[Change]:
        """Expire the ``day`` orders (every symbol) whose session has ended by ``ts``: for a
        caller whose prices may stop (the simulated broker at the close). A day order that has
        met no price yet ends with the session it was placed in, if it was placed in one it may
        trade in."""
        changes: list[Change] = []
        for order in self.working():
            if order.time_in_force is not TimeInForce.DAY or order.placed_ts > ts:
                continue
            end = order.session_end
            if end is None and self._tradable(order, order.placed_ts):
                end = order.session_end = self._day_end(order, order.placed_ts)
            if end is not None and ts >= end:
                self._end(order, OrderStatus.EXPIRED, ts, "day order: session ended", changes)
        return changes

    def _eligible(self, working: list[Order], ts: int, whole_day: bool = False) -> list[Order]:
        """The orders a price at ``ts`` may meet: placed at or before it (and, following
        sessions, in a session they may trade in; a bar of a day or longer, ``whole_day``, has
        no time of day and holds the day's regular session)."""
        if not self.follow_sessions or whole_day:
            return [o for o in working if o.placed_ts <= ts]
        session = self.calendar.session_at(ts)
        if session is Session.REGULAR:
            return [o for o in working if o.placed_ts <= ts]
        if session is Session.CLOSED:
            return []
        return [o for o in working if o.placed_ts <= ts and o.extended_hours]

    def _tradable(self, order: Order, ts: int) -> bool:
        """Whether ``order`` may trade at ``ts`` by the calendar."""
        return self.calendar.is_open(ts, order.extended_hours)

    def _day_end(self, order: Order, first_ts: int, whole_day: bool = False) -> int:
        """When a ``day`` order that first met a price at ``first_ts`` expires: the end of the
        session it was placed in when it was placed in one it may trade in, else of the session
        of that first price (a daily bar stamped at midnight: its own trading day). A bar of a
        day or longer (``whole_day``) has no time of day: the order expires at the next bar of
        a later New York date."""
        if self.session_end is not None:
            return self.session_end(first_ts)
        if whole_day:
            return eastern_session_end(first_ts)
        placed = order.placed_ts
        known = 0 < placed <= first_ts  # 0: placed before any price was seen (a time unknown)
        start = placed if known and self._tradable(order, placed) else first_ts
        return self.calendar.day_end(start, order.extended_hours)

    def _auction_due(self, order: Order, at: _Prices) -> int:
        """The regular open (``opg``) or close (``cls``) an order first meeting ``at`` waits
        for: the first after it was placed when ``at`` is in the regular session; else ``at``
        stands for a whole day (a daily bar: stamped at midnight ET, closed, or at midnight
        UTC, after-hours) and the order meets it (0)."""
        if at.whole_day or self.calendar.session_at(at.ts) in _WHOLE_DAY:
            return 0
        if order.time_in_force is TimeInForce.OPG:
            return self.calendar.next_open(order.placed_ts - 1)
        return self.calendar.next_close(order.placed_ts)

    # -- the rules ------------------------------------------------------------------------------

    def _match(self, at: _Prices, eligible: list[Order], changes: list[Change]) -> None:
        waiting = False
        for order in eligible:
            tif = order.time_in_force
            if tif is TimeInForce.DAY and order.working:
                if order.session_end is None:
                    order.session_end = self._day_end(order, at.ts, at.whole_day)
                if at.ts >= order.session_end:
                    self._end(
                        order, OrderStatus.EXPIRED, at.ts, "day order: session ended", changes
                    )
            elif tif in _AUCTIONS and order.working:
                if order.due is None:
                    order.due = self._auction_due(order, at)
                if at.ts < order.due:
                    waiting = True
                elif order.due and (
                    order.due < at.ts or (tif is TimeInForce.CLS and order.due == at.ts)
                ):
                    self._auction_passed(order, at, changes)
        if waiting:
            eligible = [o for o in eligible if o.due is None or o.due <= at.ts]
        opened: list[Order] = []  # exits of entries filled at the open: they meet the whole bar
        for order in eligible:
            if order.working and order.time_in_force is not TimeInForce.CLS:
                opened += self._at_open(order, at, changes)
                if order.working and order.time_in_force in _AT_ONCE:
                    reason = f"{order.time_in_force}: not filled at once"
                    self._end(order, OrderStatus.CANCELED, at.ts, reason, changes)
                elif order.working and order.time_in_force is TimeInForce.OPG:
                    reason = "opg: not filled at the open"
                    self._end(order, OrderStatus.EXPIRED, at.ts, reason, changes)
        inside = sorted(
            (
                o
                for o in (*eligible, *opened)
                if o.working and o.time_in_force is not TimeInForce.CLS
            ),
            key=lambda o: (not _stop_like(o), o.seq),
        )
        for order in inside:
            if order.working:
                self._inside(order, at, changes)
        for order in (*eligible, *opened):  # the stop a bar can trigger was known at its open
            if order.working and order.type is OrderType.TRAILING_STOP:
                order.mark = _best(order, at.high if order.side is Side.SELL else at.low)
        for order in eligible:
            if order.working and order.time_in_force is TimeInForce.CLS:
                self._at_close(order, at, changes)

    def _at_open(self, order: Order, at: _Prices, changes: list[Change]) -> list[Order]:
        price, buy, kind = at.open, order.side is Side.BUY, order.type
        if kind is OrderType.MARKET:
            return self._fill(order, price, True, at, changes)
        if kind is OrderType.TRAILING_STOP:
            order.mark = _best(order, price)
            stop = order.trail_stop()
            if (price >= stop) if buy else (price <= stop):
                return self._fill(order, price, True, at, changes)
            return []
        if kind is OrderType.STOP or (kind is OrderType.STOP_LIMIT and not order.triggered):
            stop = order.stop_price or 0.0
            if not ((price >= stop) if buy else (price <= stop)):
                return []
            order.triggered = True
            if kind is OrderType.STOP:
                return self._fill(order, price, True, at, changes)
        if _within(order, price):  # a limit, or a stop-limit triggered now or before
            return self._fill(order, price, False, at, changes)
        return []

    def _inside(self, order: Order, at: _Prices, changes: list[Change]) -> None:
        """Inside the bar, after the open: touches of the bar's low and high."""
        buy, kind = order.side is Side.BUY, order.type
        adverse = at.high if buy else at.low  # the extreme a buy stop or a sell stop meets
        if kind is OrderType.MARKET or order.time_in_force in _AT_ONCE:
            return  # a market order left over by the volume limit waits for the next bar
        if kind in (OrderType.STOP, OrderType.TRAILING_STOP):
            stop = order.trail_stop() if kind is OrderType.TRAILING_STOP else order.stop_price
            assert stop is not None
            if (adverse >= stop) if buy else (adverse <= stop):
                new = self._fill(order, stop, True, at, changes)
                self._stops_at_once(new, at, changes)
            return
        if kind is OrderType.STOP_LIMIT and not order.triggered:
            stop = order.stop_price or 0.0
            if (adverse >= stop) if buy else (adverse <= stop):
                order.triggered = True
                if _within(order, stop):
                    new = self._fill(order, stop, False, at, changes)
                    self._stops_at_once(new, at, changes)
            return  # triggered inside the bar and not within its limit: a limit from the next bar
        limit = order.limit_price
        assert limit is not None
        favourable = at.low if buy else at.high
        if (favourable <= limit) if buy else (favourable >= limit):
            new = self._fill(order, limit, False, at, changes)
            self._stops_at_once(new, at, changes)

    def _stops_at_once(self, exits: list[Order], at: _Prices, changes: list[Change]) -> None:
        """The exits of an entry filled inside the bar: their stops meet the bar's adverse
        extreme at once (the pessimistic case), a take-profit waits for the next bar."""
        for order in exits:
            if not order.working or order.type not in _STOPS:
                continue
            buy = order.side is Side.BUY
            adverse = at.high if buy else at.low
            stop = order.trail_stop() if order.type is OrderType.TRAILING_STOP else order.stop_price
            assert stop is not None
            if not ((adverse >= stop) if buy else (adverse <= stop)):
                continue
            if order.type is OrderType.STOP_LIMIT:
                order.triggered = True
                if _within(order, stop):
                    self._fill(order, stop, False, at, changes)
            else:
                self._fill(order, stop, True, at, changes)

    def _auction_passed(self, order: Order, at: _Prices, changes: list[Change]) -> None:
        """An ``opg``/``cls`` order meeting a price after its open/close (in the regular
        session): an ``opg`` order takes the first price of its open's day as the open (bars may
        be missing), else expires; a ``cls`` order fills at the last price before its close
        (met after it was placed), stamped at the close, else expires."""
        due = order.due
        assert due is not None
        if order.time_in_force is TimeInForce.OPG:
            if at.ts >= self.calendar.next_close(due):
                reason = "opg: the open passed without a price"
                self._end(order, OrderStatus.EXPIRED, at.ts, reason, changes)
            return
        last = self._last.get(order.symbol)
        if last is not None and order.placed_ts <= last[0] < due:
            price = last[1]
            self._at_close(order, _Prices(due, price, price, price, price, None), changes)
        else:
            self._end(order, OrderStatus.EXPIRED, at.ts, "cls: no price before the close", changes)

    def _at_close(self, order: Order, at: _Prices, changes: list[Change]) -> None:
        if order.type is OrderType.MARKET:
            self._fill(order, at.close, True, at, changes)
        elif order.type is OrderType.LIMIT and _within(order, at.close):
            self._fill(order, at.close, False, at, changes)
        if order.working:
            self._end(order, OrderStatus.EXPIRED, at.ts, "cls: not filled at the close", changes)

    def _fill(
        self, order: Order, price: float, market_like: bool, at: _Prices, changes: list[Change]
    ) -> list[Order]:
        """Fill what the bar's volume allows of ``order`` at ``price`` (moved by slippage when
        ``market_like``); returns the exits this placed."""
        if market_like:
            price = self.costs.slipped(order.side, price)
        if order.qty is None:
            qty, reason = self._size(order, price)
            if not qty > 0:
                self._end(order, OrderStatus.CANCELED, at.ts, reason, changes)
                return []
            order.qty = qty
        want = order.remaining
        qty = want if at.left is None else min(want, at.left)
        if order.time_in_force is TimeInForce.FOK and qty < want:
            reason = f"fok: {at.left:g} of {want:g} available"
            self._end(order, OrderStatus.CANCELED, at.ts, reason, changes)
            return []
        if not qty > 0:
            return []
        if at.left is not None:
            at.left -= qty
        fee = self.costs.fee(qty, price)
        if self.costs.minimum:
            fee = max(order.commission + fee, self.costs.minimum) - order.commission
        before = order.filled_qty
        order.avg_price = (
            price if before == 0 else (order.avg_price * before + price * qty) / (before + qty)
        )
        order.filled_qty = before + qty
        order.commission += fee
        changes.append(
            Execution(
                order.id,
                order.symbol,
                order.leg,
                order.side,
                qty,
                price,
                fee,
                at.ts,
                order.exit_reason,
                order.parent_id,
            )
        )
        if order.remaining > 0:
            order.status = OrderStatus.PARTIALLY_FILLED
            changes.append(Update(order.id, at.ts, OrderStatus.PARTIALLY_FILLED))
            return []
        self._end(order, OrderStatus.FILLED, at.ts, "", changes)
        self._cancel_group(order, at.ts, changes)
        return self._place_exits(order, at.ts, changes)

    def _size(self, order: Order, price: float) -> tuple[float, str]:
        if order.notional is not None:
            return order.notional / price, "notional below one share's price"
        assert self.sizer is not None  # _problem refused an order without qty or sizer
        return self.sizer(order, price)

    def _end(
        self, order: Order, status: OrderStatus, ts: int, reason: str, changes: list[Change]
    ) -> None:
        order.status = status
        self._working[order.symbol].remove(order)
        if not self._working[order.symbol]:
            del self._working[order.symbol]
        changes.append(Update(order.id, ts, status, reason))
        if status is OrderStatus.EXPIRED and order.filled_qty > 0:
            self._place_exits(order, ts, changes)  # the part that filled keeps its exits

    def _cancel_group(self, order: Order, ts: int, changes: list[Change]) -> None:
        if order.group is None:
            return
        for other in list(self._working.get(order.symbol, ())):
            if other.group == order.group and other is not order:
                reason = f"oco: {order.id} {order.status}"
                self._end(other, OrderStatus.CANCELED, ts, reason, changes)

    def _place_exits(self, entry: Order, ts: int, changes: list[Change]) -> list[Order]:
        spec = entry.spec
        if entry.leg is not Leg.ENTRY or spec is None or not spec.exits or spec.oco:
            return []
        legs = exit_legs(spec, entry.side, Decimal(repr(entry.avg_price)))
        group = entry.id if len(legs) > 1 else None
        placed = []
        for leg in legs:
            order = Order(
                id=leg_client_order_id(entry.id, leg.leg),
                symbol=entry.symbol,
                side=leg.side,
                qty=entry.filled_qty,
                type=leg.type,
                time_in_force=TimeInForce.GTC,
                limit_price=_f(leg.limit_price),
                stop_price=_f(leg.stop_price),
                trail_percent=_f(leg.trail_percent),
                leg=leg.leg,
                parent_id=entry.id,
                group=group,
                mark=entry.avg_price if leg.type is OrderType.TRAILING_STOP else None,
            )
            placed.append(self._place(order, ts, changes))
        return placed


def _stop_like(order: Order) -> bool:
    return order.type in (OrderType.STOP, OrderType.TRAILING_STOP) or (
        order.type is OrderType.STOP_LIMIT and not order.triggered
    )


def _within(order: Order, price: float) -> bool:
    """Whether ``price`` is at ``order``'s limit or better."""
    limit = order.limit_price
    if limit is None:
        return False
    return price <= limit if order.side is Side.BUY else price >= limit


def _best(order: Order, price: float) -> float:
    """A trailing stop's mark after ``price``: the highest seen for a sell, the lowest for a buy."""
    if order.mark is None:
        return price
    return max(order.mark, price) if order.side is Side.SELL else min(order.mark, price)
