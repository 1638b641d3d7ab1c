"""Pre-trade risk checks: pure functions over a snapshot the executor builds from its store.

Nothing here does I/O: every check runs before any network call, on what the executor already
knows (positions from its fills, orders it has sent and not seen finish, its own last market
prices, the broker's market clock and account as last refreshed, the market calendar). Money is
priced from the executor's market price, never from the signal's: the signal's price only has to
agree with it. The ``session`` rule judges a signal by its event time (``ts``) on the market
calendar: outside the regular session only an order that allows extended hours, in pre- or
after-hours, as Alpaca takes it then (``sessions.session_problem``); such an order is not judged
by the broker's clock, which calls those hours closed. The first failing rule wins; its name is
recorded with the denied order, so a repeated signal is not judged again. The first rule is the
order's own shape (``orders.order_problem``); while the kill switch is on only orders that reduce
a position pass (``reduces``). The rules' names, and the checks that stand apart from one order
(the signal's age, the account's loss and drawdown, a runaway strategy), are in ``rules``; they are
re-exported here, so callers name them ``risk.Rule``, ``risk.account_breach``...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from flinktrade import sessions
from flinktrade.events import Side, Signal
from flinktrade.execution.rules import (
    QUIET,
    Rule,
    account_breach,
    age_problem,
    order_terms,
    runaway,
    signal_times,
)
from flinktrade.execution.settings import RiskSettings, SessionRule, SizingMode, SizingSettings
from flinktrade.orders import order_problem, spec_of

__all__ = [
    "QUIET",
    "Decision",
    "OpenOrder",
    "Rule",
    "Snapshot",
    "account_breach",
    "age_problem",
    "check",
    "order_terms",
    "reduces",
    "runaway",
    "signal_times",
    "size",
]


_EXTENDED = frozenset({sessions.Session.PRE, sessions.Session.POST})


@dataclass(frozen=True)
class OpenOrder:
    symbol: str
    side: Side
    remaining: Decimal
    price: Decimal | None


@dataclass
class Snapshot:
    """What the executor knows at the moment it judges a signal."""

    now_ms: int
    positions: dict[str, Decimal] = field(default_factory=dict)
    open_orders: list[OpenOrder] = field(default_factory=list)
    last_prices: dict[str, Decimal] = field(default_factory=dict)
    """Last known price per symbol (market, else own fills): values the exposure of holdings."""
    market_prices: dict[str, Decimal] = field(default_factory=dict)
    """The executor's own market prices: the only prices an order is priced and sized from."""
    sent_last_minute: int = 0
    market_open: bool | None = None
    halted: str | None = None
    blocked: str | None = None
    equity: Decimal | None = None
    session_rule: SessionRule = SessionRule.OFF
    """Which orders the ``session`` rule judges (``ExecutionSettings.session_rule``)."""
    calendar: sessions.Calendar | None = None
    """The market calendar (None: the one bundled with the package)."""
    fractional: bool = False
    """Whether the broker takes fractional shares."""


@dataclass(frozen=True)
class Decision:
    qty: Decimal
    rule: Rule | None = None
    reason: str | None = None

    @property
    def allowed(self) -> bool:
        return self.rule is None


def size(
    signal: Signal, sizing: SizingSettings, equity: Decimal | None, price: Decimal | None
) -> Decimal:
    """Whole shares for a signal under a sizing rule at the market ``price`` (rounded down; 0 when
    it cannot be sized: no market price, or no equity for a percentage)."""
    if price is None or not price.is_finite() or price <= 0:
        return Decimal(0)
    if sizing.mode == SizingMode.QTY:
        qty = sizing.qty
    elif sizing.mode == SizingMode.NOTIONAL:
        qty = sizing.notional / price
    else:
        if equity is None or equity <= 0:
            return Decimal(0)
        qty = equity * sizing.percent_equity / Decimal(100) / price
    if sizing.scale_by_strength:
        qty *= Decimal(repr(signal.strength))
    return max(Decimal(0), qty.quantize(Decimal(1), rounding=ROUND_DOWN))


def _signed(side: Side, qty: Decimal) -> Decimal:
    return qty if side == Side.BUY else -qty


def reduces(side: Side, qty: Decimal, position: Decimal, pending: Decimal) -> bool:
    """Whether ``qty`` on ``side`` only makes a position smaller: it closes at most what is held
    (``position``, signed) and not already being closed by open orders (``pending``, signed)."""
    if side == Side.SELL:
        available = position + min(pending, Decimal(0))
    else:
        available = -(position + max(pending, Decimal(0)))
    return 0 < qty <= available


def check(signal: Signal, qty: Decimal, snap: Snapshot, limits: RiskSettings) -> Decision:
    """Judge one order of ``qty`` shares for ``signal``; the returned qty may be reduced (a
    long-only sell is capped at the shares held).

    The order asked for must be one the broker takes (``orders.order_problem``, Alpaca's rules)
    before anything else is judged. While the kill switch is on, only an order that reduces a
    position (no exits of its own, at most the shares held and not already being closed; an oco
    exit pair is such an order) may leave; everything else is denied."""
    symbol = signal.symbol
    spec = spec_of(signal.order)
    bad_order = order_problem(spec, fractional=snap.fractional)
    if bad_order is not None:
        return Decision(qty, Rule.INVALID_ORDER, f"invalid order: {bad_order}")
    position = snap.positions.get(symbol, Decimal(0))
    pending = sum(
        (_signed(o.side, o.remaining) for o in snap.open_orders if o.symbol == symbol),
        Decimal(0),
    )
    own_exits = spec.exits and not spec.oco  # an oco pair is itself an exit
    if snap.halted and (own_exits or not reduces(signal.side, qty, position, pending)):
        return Decision(
            qty,
            Rule.KILL_SWITCH,
            f"kill switch is on: {snap.halted} (only orders that reduce a position may leave)",
        )
    if snap.blocked:
        return Decision(qty, Rule.RECONCILIATION, f"trading blocked: {snap.blocked}")
    too_old = age_problem(signal_times(signal, limits), snap.now_ms, limits)
    if too_old is not None:
        return Decision(qty, Rule.SIGNAL_AGE, too_old)
    order_type, time_in_force, extended_hours = order_terms(signal)
    judged = snap.session_rule == SessionRule.ALL or (
        snap.session_rule == SessionRule.EXTENDED and extended_hours
    )
    calendar = (snap.calendar or sessions.bundled()) if judged else None
    if calendar is not None:
        problem = sessions.session_problem(
            signal.ts, extended_hours, order_type, time_in_force, calendar
        )
        if problem is not None:
            return Decision(qty, Rule.SESSION, problem)
    # the broker's clock calls pre- and after-hours closed: an order the calendar let through
    # there is not judged by it
    extended_ok = calendar is not None and calendar.session_at(signal.ts) in _EXTENDED
    if not limits.allow_outside_market_hours and snap.market_open is not True and not extended_ok:
        why = "closed" if snap.market_open is False else "of unknown state (no clock yet)"
        return Decision(qty, Rule.MARKET_HOURS, f"market is {why}")
    market = snap.market_prices.get(symbol)
    if market is None or not market.is_finite() or market <= 0:
        return Decision(qty, Rule.NO_MARKET_PRICE, f"no market price for {symbol} yet")
    deviation = abs(signal.price - market) / market * 100
    if deviation > limits.max_price_deviation_pct:
        return Decision(
            qty,
            Rule.PRICE_DEVIATION,
            f"signal price {signal.price} is {deviation:.2f}% from the market price {market} "
            f"(max {limits.max_price_deviation_pct}%)",
        )

    if signal.side == Side.SELL and not limits.allow_short:
        qty = min(qty, max(Decimal(0), position + min(pending, Decimal(0))))
        if qty <= 0:
            return Decision(qty, Rule.NOTHING_TO_SELL, f"no {symbol} position to sell (long-only)")
    if qty <= 0:
        return Decision(qty, Rule.ZERO_SIZE, "order size rounds to zero shares")
    if qty > limits.max_order_qty:
        return Decision(qty, Rule.ORDER_QTY, f"qty {qty} > max_order_qty {limits.max_order_qty}")
    notional = qty * market
    if notional > limits.max_order_notional:
        return Decision(
            qty,
            Rule.ORDER_NOTIONAL,
            f"notional {notional} > max_order_notional {limits.max_order_notional}",
        )
    after = position + pending + _signed(signal.side, qty)
    if abs(after) > limits.max_position_qty:
        return Decision(
            qty,
            Rule.POSITION,
            f"{symbol} position would be {after} (max {limits.max_position_qty})",
        )
    gross = _gross_exposure(snap, symbol, after, market)
    if gross > limits.max_gross_exposure:
        return Decision(
            qty,
            Rule.GROSS_EXPOSURE,
            f"gross exposure would be {gross:.2f} (max {limits.max_gross_exposure})",
        )
    if len(snap.open_orders) >= limits.max_open_orders:
        return Decision(
            qty,
            Rule.OPEN_ORDERS,
            f"{len(snap.open_orders)} orders open (max {limits.max_open_orders})",
        )
    if snap.sent_last_minute >= limits.max_orders_per_minute:
        return Decision(
            qty,
            Rule.ORDER_RATE,
            f"{snap.sent_last_minute} orders in the last minute "
            f"(max {limits.max_orders_per_minute})",
        )
    return Decision(qty)


def _gross_exposure(snap: Snapshot, symbol: str, after: Decimal, price: Decimal) -> Decimal:
    """Sum over symbols of |position + open orders| x last price, with ``symbol`` at ``after``."""
    exposure: dict[str, Decimal] = dict(snap.positions)
    for order in snap.open_orders:
        exposure[order.symbol] = exposure.get(order.symbol, Decimal(0)) + _signed(
            order.side, order.remaining
        )
    exposure[symbol] = after
    total = Decimal(0)
    for sym, qty in exposure.items():
        px = price if sym == symbol else snap.last_prices.get(sym)
        if px is None:  # no price known: count the worst we know of, never zero
            px = max(snap.last_prices.values(), default=price)
        total += abs(qty) * px
    return total
