"""Executor settings: order sizing per strategy, risk limits, market hours, the simulated broker,
reconciliation.

Every field can be set as ``FLINKTRADE_EXECUTION__<FIELD>`` (nested with ``__``, e.g.
``FLINKTRADE_EXECUTION__RISK__MAX_ORDER_QTY=50``) or in the ``[execution]`` table of the TOML file.
Money amounts are ``Decimal`` (account currency, USD for Alpaca); quantities are shares.

A package in parts: here the root ``ExecutionSettings`` with its topics and market hours;
``limits``, order sizing and risk limits; ``sim``, the simulated broker. Every name is importable
from here.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from flinktrade import topics
from flinktrade.execution.settings.limits import RiskSettings, SizingMode, SizingSettings
from flinktrade.execution.settings.sim import SimBrokerSettings, SimMarketHours, SimMatchOn
from flinktrade.section import Section

__all__ = [
    "ExecutionSettings",
    "ExecutionTopics",
    "MarketHours",
    "RiskSettings",
    "SessionRule",
    "SimBrokerSettings",
    "SimMarketHours",
    "SimMatchOn",
    "SizingMode",
    "SizingSettings",
]


class MarketHours(StrEnum):
    """Which orders the ``session`` risk rule judges on the market calendar (``market_hours``)."""

    AUTO = "auto"
    """With the Alpaca broker the orders that allow extended hours (plain orders keep to the
    broker's clock, ``risk.allow_outside_market_hours``); none with the simulated broker, whose
    market trades whenever prices flow."""
    ENFORCE = "enforce"
    """Every order: one whose signal time is outside the regular session is denied, unless it
    allows extended hours and is one Alpaca takes then (limit, day or gtc, pre/post market)."""
    OFF = "off"


class SessionRule(StrEnum):
    """``market_hours`` for one broker: which orders the ``session`` rule judges."""

    OFF = "off"
    EXTENDED = "extended"
    """Only orders that allow extended hours."""
    ALL = "all"


class ExecutionTopics(Section):
    """The topics the executor reads and writes."""

    signals: str = topics.SIGNALS.name
    orders: str = topics.ORDERS.name
    fills: str = topics.FILLS.name
    alerts: str = topics.ALERTS.name
    deadletter: str = topics.DEADLETTER.name
    prices: list[str] = Field(
        default_factory=lambda: [topics.TRADES.name, topics.ANALYTICS_BARS.name],
        description="The executor's own market prices (trades: price; bars: close).",
    )


class ExecutionSettings(Section):
    """Everything ``flinktrade execute`` reads."""

    sizing: SizingSettings = SizingSettings()
    strategy_sizing: dict[str, SizingSettings] = Field(
        default_factory=dict, description="Per strategy name; others use ``sizing``."
    )
    risk: RiskSettings = RiskSettings()
    sim: SimBrokerSettings = SimBrokerSettings()
    topics: ExecutionTopics = ExecutionTopics()
    group_id: str = "flinktrade-executor"
    start_from: Literal["latest", "earliest"] = Field(
        "latest", description="Where a consumer group without committed offsets starts."
    )
    store_file: Path = Field(
        Path("execution/orders.sqlite"), description="The order store, under the state folder."
    )
    sim_store_file: Path = Field(
        Path("execution/sim_broker.sqlite"),
        description="The simulated broker's own book, under the state folder.",
    )
    reconcile_interval_s: float = Field(
        30.0, gt=0, description="Compare broker positions/open orders with the store this often."
    )
    order_poll_interval_s: float = Field(
        5.0, gt=0, description="Look up orders still open over REST this often (missed events)."
    )
    account_refresh_s: float = Field(
        10.0, gt=0, description="Refresh equity and the market clock this often."
    )
    request_timeout_s: float = Field(10.0, gt=0, description="Timeout of one broker request.")
    max_rate_limit_wait_s: float = Field(
        30.0, gt=0, description="Longest wait for a broker rate limit to reset."
    )
    price_lookback: int = Field(
        1000,
        ge=0,
        description="At start, read this many records back per price partition for last prices.",
    )
    heartbeat_interval_s: float = Field(
        1.0, gt=0, description="Write 'executor last seen' to the order store this often."
    )
    unknown_retry_s: float = Field(
        1.0, gt=0, description="Pause between look-ups of an order whose outcome is unknown."
    )
    # --- cancelling exits before an order that closes their position (execution.cancelling)
    cancel_wait_s: float = Field(
        5.0,
        gt=0,
        description=(
            "Longest wait for the broker to confirm the cancels of exits before the order that "
            "closes their position is sent; unconfirmed, the order waits and is tried again."
        ),
    )
    # --- the executor's own exits on a partly filled entry (execution.replacing)
    exits_on_partial_fill: bool = Field(
        default=False,
        description=(
            "Place an entry's own percentage exits at its first fill and replace them (qty) as it "
            "fills more, instead of once the entry is final. Off by default: Alpaca may refuse "
            "exits on the other side of a still-working entry as a potential wash trade."
        ),
    )
    order_retention_days: float = Field(
        90.0,
        ge=0,
        description=(
            "Delete orders and denials this many days after they became final (their fills stay, "
            "so positions do not change); 0 keeps them for ever. Longer than "
            "risk.max_signal_age_s, so a replayed signal of a deleted order is denied as old."
        ),
    )
    market_hours: MarketHours = Field(
        MarketHours.AUTO,
        description=(
            "enforce: deny an order whose signal time (ts) is outside the regular session unless "
            "it allows extended hours (limit, day/gtc, pre/after-hours); off: no calendar rule; "
            "auto: with the Alpaca broker only orders that allow extended hours are judged so "
            "(plain ones by the broker's clock), with the simulated broker none."
        ),
    )
    client_order_prefix: str = Field(
        "ft-", max_length=12, description="client_order_id = prefix + signal id."
    )
    trading_requests_per_minute: int = Field(
        200,
        ge=1,
        description=(
            "Client-side budget of trading-API requests in any rolling minute (Alpaca allows "
            "200); orders go first, polling waits."
        ),
    )

    @model_validator(mode="after")
    def _prefix(self) -> ExecutionSettings:
        if not self.client_order_prefix.replace("-", "").replace("_", "").isalnum():
            raise ValueError("client_order_prefix may hold letters, digits, '-' and '_' only")
        retention_s = self.order_retention_days * 86_400
        if retention_s and retention_s <= self.risk.max_signal_age_s:
            raise ValueError(
                "order_retention_days must be longer than risk.max_signal_age_s (or 0): a signal "
                "of a deleted order could otherwise be fresh enough to be ordered again"
            )
        return self

    def session_rule(self, broker: str) -> SessionRule:
        """Which orders the ``session`` rule judges with the broker named ``broker``."""
        if self.market_hours == MarketHours.ENFORCE:
            return SessionRule.ALL
        if self.market_hours == MarketHours.AUTO and broker == "alpaca":
            return SessionRule.EXTENDED
        return SessionRule.OFF

    def sizing_for(self, strategy: str) -> SizingSettings:
        return self.strategy_sizing.get(strategy, self.sizing)

    def store_path(self, state_dir: Path) -> Path:
        return self.store_file if self.store_file.is_absolute() else state_dir / self.store_file

    def sim_store_path(self, state_dir: Path) -> Path:
        path = self.sim_store_file
        return path if path.is_absolute() else state_dir / path
