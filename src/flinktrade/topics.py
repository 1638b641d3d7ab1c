"""Topic names and layout, and Flink SQL column types derived from the event models.

Market topics are keyed by symbol so one symbol's events stay in order in one partition.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from flinktrade import events

PRICE_SQL_TYPE = "DECIMAL(18, 6)"
"""Prices in Flink: 12 integer digits, 6 decimals. Never DECIMAL without a scale."""


@dataclass(frozen=True)
class Topic:
    name: str
    event: type[events.Event]
    keyed_by: str | None
    description: str


TRADES = Topic("market.trades", events.Trade, "symbol", "Trades from a feed or the simulator.")
BARS = Topic("market.bars", events.Bar, "symbol", "Bars from a provider (history or live).")
NEWS = Topic("market.news", events.NewsItem, "first symbol", "News items.")
ANALYTICS_BARS = Topic(
    "analytics.bars", events.AnalyticsBar, "symbol", "1-minute bars with indicators, from the job."
)
SIGNALS = Topic("trading.signals", events.Signal, "symbol", "Strategy signals, from the job.")
QUOTES = Topic("market.quotes", events.Quote, "symbol", "Best bid/offer from a live feed.")
ORDERS = Topic("trading.orders", events.OrderEvent, "symbol", "Every state change of every order.")
FILLS = Topic("trading.fills", events.Fill, "symbol", "Executions, one per broker execution id.")
ALERTS = Topic("alerts", events.Alert, "symbol", "Anomalies and operational alerts.")
DEADLETTER = Topic("deadletter", events.DeadLetter, None, "Records that could not be used.")

ALL: tuple[Topic, ...] = (
    TRADES,
    QUOTES,
    BARS,
    NEWS,
    ANALYTICS_BARS,
    SIGNALS,
    ORDERS,
    FILLS,
    ALERTS,
    DEADLETTER,
)


def by_name(name: str) -> Topic:
    for topic in ALL:
        if topic.name == name:
            return topic
    known = ", ".join(t.name for t in ALL)
    raise KeyError(f"unknown topic {name!r} (known: {known})")


def sql_type(annotation: object) -> str:
    """The Flink SQL type for a field annotation of an event model."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return sql_type(args[0])
    if origin in (typing.Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) != 1:
            raise TypeError(f"no SQL type for union {annotation!r}")
        return sql_type(non_null[0])
    if origin is dict:
        return f"MAP<{sql_type(args[0])}, {sql_type(args[1])}>"
    if origin is list:
        return f"ARRAY<{sql_type(args[0])}>"
    if annotation is Decimal:
        return PRICE_SQL_TYPE
    if annotation is bool:
        return "BOOLEAN"
    if annotation is int:
        return "BIGINT"
    if annotation is float:
        return "DOUBLE"
    if annotation is str or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        return "STRING"
    raise TypeError(f"no SQL type for {annotation!r}")


def sql_columns(event: type[events.Event]) -> list[tuple[str, str]]:
    """``(name, SQL type)`` for every field of an event model, in declaration order."""
    hints = typing.get_type_hints(event, include_extras=True)
    return [(name, sql_type(hints[name])) for name in event.model_fields]


def sql_schema(event: type[events.Event]) -> str:
    """The column list of a Flink table holding ``event`` rows (for ``CREATE TABLE``)."""
    return ",\n  ".join(f"`{name}` {typ}" for name, typ in sql_columns(event))
