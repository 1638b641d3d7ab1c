"""Executor settings of the simulated broker (``[execution.sim]``, env
``FLINKTRADE_EXECUTION__SIM__<NAME>``): costs, starting cash, where its prices come from, what it
matches orders against and in which sessions."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from flinktrade import topics
from flinktrade.section import Section


class SimMatchOn(StrEnum):
    """What the simulated broker matches orders against (``execution.sim.match_on``)."""

    TRADES = "trades"
    """Every price read (a trade's price, a bar's close) as one trade; a plain market order
    fills at the first price after it."""
    BARS = "bars"
    """Each bar of the bars topic whole (open, high, low, close, volume), as the backtester does;
    trades only move the last price. Every order, plain market orders too, goes through the
    matching model (a market order at the next bar's open, the backtester's ``next_open``)."""


class SimMarketHours(StrEnum):
    """Which prices may fill an order of the simulated broker, by the session they start in
    (``execution.sim.market_hours``; the backtester's ``--market-hours``)."""

    ALL = "all"
    REGULAR = "regular"
    EXTENDED = "extended"
    """pre-market, regular and after-hours: every session but ``closed``."""


class SimBrokerSettings(Section):
    """The simulated broker: fills market orders at the next price seen after the order, and
    every other order of the order model through ``flinktrade.matching`` on the same prices
    (``match_on``: trades, or whole bars as the backtester)."""

    commission_per_share: Decimal = Field(Decimal("0.005"), ge=0)
    commission_min: Decimal = Field(Decimal("1.00"), ge=0, description="Per order with a fill.")
    slippage_bps: Decimal = Field(
        Decimal(5), ge=0, description="Basis points against us: buys pay more, sells get less."
    )
    starting_cash: Decimal = Field(Decimal(100_000), gt=0)
    price_topics: list[str] = Field(
        default_factory=lambda: [topics.TRADES.name, topics.ANALYTICS_BARS.name],
        description="Where next prices come from (trades: price; bars: close).",
    )
    match_on: SimMatchOn = Field(
        SimMatchOn.TRADES,
        description=(
            "trades: every price read is a trade to match (a bar as its close); bars: each bar "
            "whole (open/high/low/close/volume) as the backtester matches it, trades ignored for "
            "matching; every order, plain market ones too, fills as in a backtest (next_open)."
        ),
    )
    market_hours: SimMarketHours = Field(
        SimMarketHours.ALL,
        description=(
            "Prices (bars by their start) outside these sessions of the bundled market calendar "
            "fill nothing, as bars outside the backtester's --market-hours: regular, extended "
            "(pre, regular, post) or all. A bar of a day or longer is a whole session, always "
            "matched."
        ),
    )
