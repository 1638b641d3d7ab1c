"""Executor settings: how big an order a signal becomes (``[execution.sizing]``, per strategy in
``[execution.strategy_sizing.<name>]``) and the risk limits checked before any order
(``[execution.risk]``, env ``FLINKTRADE_EXECUTION__RISK__<NAME>``)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from flinktrade.section import Section


class SizingMode(StrEnum):
    QTY = "qty"
    NOTIONAL = "notional"
    PERCENT_EQUITY = "percent_equity"


class SizingSettings(Section):
    """How big an order a signal becomes. Orders are always whole shares (rounded down)."""

    mode: SizingMode = SizingMode.QTY
    qty: Decimal = Field(Decimal(1), gt=0, description="Shares per order (mode qty).")
    notional: Decimal = Field(
        Decimal(1000), gt=0, description="Money per order, divided by the market price (notional)."
    )
    percent_equity: Decimal = Field(
        Decimal(1),
        gt=0,
        le=100,
        description="Percent of account equity per order (mode percent_equity).",
    )
    scale_by_strength: bool = Field(
        default=False, description="Multiply the size by the signal's strength (0..1)."
    )


class RiskSettings(Section):
    """Pre-trade limits, checked before any network call. A breach denies the order."""

    max_order_qty: Decimal = Field(Decimal(1000), gt=0, description="Shares in one order.")
    max_order_notional: Decimal = Field(
        Decimal(50_000), gt=0, description="qty x the market price of one order."
    )
    max_position_qty: Decimal = Field(
        Decimal(5000), gt=0, description="Absolute shares held in one symbol after the order."
    )
    max_gross_exposure: Decimal = Field(
        Decimal(250_000),
        gt=0,
        description="Sum over symbols of |position + open orders| x last price, after the order.",
    )
    max_open_orders: int = Field(20, ge=1, description="Orders sent and not yet final.")
    max_orders_per_minute: int = Field(
        30, ge=1, description="Orders sent in any rolling 60 seconds (all strategies)."
    )
    halt_after_rate_denials: int = Field(
        20,
        ge=1,
        description=(
            "A strategy that keeps hitting the order rate limit is a runaway: after this many "
            "rate-limit denials within 60 s the kill switch is set."
        ),
    )
    daily_loss_limit: Decimal = Field(
        Decimal(5000),
        gt=0,
        description="Halt when equity falls this much below the day's starting equity.",
    )
    max_drawdown_pct: Decimal = Field(
        Decimal(10), gt=0, le=100, description="Halt when equity is this far below its peak (%)."
    )
    allow_outside_market_hours: bool = Field(
        default=False,
        description="Allow orders while the broker's clock says the market is closed.",
    )
    max_signal_age_s: float = Field(
        30.0,
        gt=0,
        description=(
            "Deny signals older than this, by their event time (ts, the bar's close) and by "
            "when flinktrade first saw them (ingest_ts): replayed history is never fresh."
        ),
    )
    signal_age_from_event_time: bool = Field(
        default=True,
        description=(
            "Judge the age by ts as well as ingest_ts. Off only where event time is not wall-clock "
            "time (a simulator running faster than the clock)."
        ),
    )
    max_clock_skew_s: float = Field(
        2.0,
        ge=0,
        description="A signal stamped further than this in the future (ts or ingest_ts) is denied.",
    )
    max_price_deviation_pct: Decimal = Field(
        Decimal(5),
        gt=0,
        description=(
            "Deny a signal whose price is further than this (%) from the executor's own last "
            "market price for the symbol; sizing and limits always use the market price."
        ),
    )
    allow_short: bool = Field(
        default=False, description="Allow sells that would take a position below zero."
    )
    deny_alert_interval_s: float = Field(
        60.0, ge=0, description="At most one alert per rule and symbol in this many seconds."
    )
