"""The names of the risk rules, and the checks that stand apart from one order's judgement.

``Rule`` names each rule as the store records it with a denied order and alerts show it (its
values never change: they are data). The checks here are pure, like the rest of ``risk``: a
signal's age against the clock (``age_problem``, over the times ``signal_times`` picks), the order
terms the ``session`` rule judges (``order_terms``), and the account's rules the guard applies
(``account_breach``: the loss today and the drawdown from the peak; ``runaway``: a strategy
denied for its order rate too often). ``risk`` re-exports every name here.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from flinktrade import orders
from flinktrade.events import Signal
from flinktrade.execution.settings import RiskSettings


class Rule(StrEnum):
    """Names of the rules, as recorded in the store and shown in alerts (values unchanged)."""

    INVALID_ORDER = "invalid_order"
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


QUIET = frozenset({Rule.KILL_SWITCH, Rule.RECONCILIATION, Rule.NOTHING_TO_SELL})
"""Denials that need no alert of their own (the halt or block was alerted once)."""


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
