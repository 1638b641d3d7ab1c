"""Pre-trade risk checks: pure functions over a snapshot the executor builds from its store.

Nothing here does I/O: every check runs before any network call, on what the executor already
knows (positions from its fills, orders it has sent and not seen finish, its own last market
prices, the broker's market clock and account as last refreshed, the market calendar). Money is
priced from the executor's market price, never from the signal's: the signal's price only has to
agree with it. The ``session`` rule judges a signal by its event time (``ts``) on the market
calendar: outside the regular session only an order that allows extended hours, in pre- or
after-hours, as Alpaca takes it then (``sessions.session_problem``); such an order is not judged
by the broker's clock, which calls those hours closed. The first failing rule wins; its name is
recorded with the denied order, so a repeated signal is not judged again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum

from flinktrade import orders, sessions
from flinktrade.events import Side, Signal
from flinktrade.execution.settings import RiskSettings, SessionRule, SizingMode, SizingSettings


class Rule(StrEnum):
    """Names of the rules, as recorded in the store and shown in alerts (values unchanged)."""

    KILL_SWITCH = "kill_switch"
    RECONCILIATION = "reconciliation"
    SIGNAL_AGE = "signal_age"
    MARKET_HOURS = "market_hours"
    SESSION = "session"
    NO_MARKET_PRICE = "no_market_price"
    PRICE_DEVIATION = "price_deviation"
    ZERO_SIZE = "zero_size"
    NOTHING_TO_SELL = "nothing_to_sell"
    ORDER_QTY = "max_order_qty"
    ORDER_NOTIONAL = "max_order_notional"
    POSITION = "max_position_qty"
    GROSS_EXPOSURE = "max_gross_exposure"
    OPEN_ORDERS = "max_open_orders"
    ORDER_RATE = "max_orders_per_minute"
    DAILY_LOSS = "daily_loss_limit"
    DRAWDOWN = "max_drawdown_pct"


_EXTENDED = frozenset({sessions.Session.PRE, sessions.Session.POST})

QUIET = frozenset({Rule.KILL_SWITCH, Rule.RECONCILIATION, Rule.NOTHING_TO_SELL})
"""Denials that need no alert of their own (the halt or block was alerted once)."""


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


def check(signal: Signal, qty: Decimal, snap: Snapshot, limits: RiskSettings) -> Decision:
    """Judge one order of ``qty`` shares for ``signal``; the returned qty may be reduced (a
    long-only sell is capped at the shares held)."""
    symbol = signal.symbol
    if snap.halted:
        return Decision(qty, Rule.KILL_SWITCH, f"kill switch is on: {snap.halted}")
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

    position = snap.positions.get(symbol, Decimal(0))
    pending = sum(
        (_signed(o.side, o.remaining) for o in snap.open_orders if o.symbol == symbol),
        Decimal(0),
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


def order_terms(signal: Signal) -> tuple[str, str, bool]:
    """(order type, time in force, extended hours) of the order a signal asks for; a plain
    signal (no ``order``) is a market day order in the regular session."""
    spec = orders.spec_of(signal.order)
    return (spec.type.value, spec.time_in_force.value, spec.extended_hours)


def signal_times(signal: Signal, limits: RiskSettings) -> tuple[int, ...]:
    """The times a signal's age is judged by: ``ingest_ts``, and its event time ``ts`` too unless
    ``signal_age_from_event_time`` is off."""
    if limits.signal_age_from_event_time:
        return (signal.ts, signal.ingest_ts)
    return (signal.ingest_ts,)


def age_problem(times: tuple[int, ...], now_ms: int, limits: RiskSettings) -> str | None:
    """Why something stamped at ``times`` (epoch ms) is too old, or too far in the future (clock
    skew beyond ``max_clock_skew_s``), to be traded at ``now_ms``; None when it is fresh."""
    ahead_s = (max(times) - now_ms) / 1000
    if ahead_s > limits.max_clock_skew_s:
        return (
            f"signal is stamped {ahead_s:.1f}s in the future "
            f"(clock skew over {limits.max_clock_skew_s:g}s)"
        )
    age_s = (now_ms - min(times)) / 1000
    if age_s > limits.max_signal_age_s:
        return f"signal is {age_s:.1f}s old (max {limits.max_signal_age_s:g}s)"
    return None


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


def account_breach(
    equity: Decimal, day_start_equity: Decimal, peak_equity: Decimal, limits: RiskSettings
) -> tuple[Rule, str, float, float] | None:
    """(rule, reason, value, threshold) when the account's loss today or its drawdown from the
    peak is over the limit, else None."""
    loss = day_start_equity - equity
    if day_start_equity > 0 and loss >= limits.daily_loss_limit:
        return (
            Rule.DAILY_LOSS,
            f"loss today {loss:.2f} >= daily_loss_limit {limits.daily_loss_limit}",
            float(loss),
            float(limits.daily_loss_limit),
        )
    if peak_equity > 0:
        drawdown = (peak_equity - equity) / peak_equity * 100
        if drawdown >= limits.max_drawdown_pct:
            return (
                Rule.DRAWDOWN,
                f"drawdown {drawdown:.2f}% from peak {peak_equity:.2f} "
                f">= max_drawdown_pct {limits.max_drawdown_pct}",
                float(drawdown),
                float(limits.max_drawdown_pct),
            )
    return None


def runaway(rate_denials_last_minute: int, limits: RiskSettings) -> bool:
    """Whether the order-rate denials in the last minute mark a runaway strategy."""
    return rate_denials_last_minute >= limits.halt_after_rate_denials
