"""The one map of topic name <-> event type, with each topic's decoder, key and description; and
Flink SQL column types derived from the event models.

Every reader decodes a record of a topic with that topic's one decoder (``TRADES.decode(raw)``, or
``decode(name, raw)`` by canonical name), which is ``events.decode`` of the topic's event type: one
topic, one contract, whoever reads it. A record that fails it raises ``events.DecodeError`` with a
one-line reason (what a dead letter carries). Deployments may rename topics; readers then map their
configured name to the ``Topic`` it stands for.

Market topics are keyed by symbol so one symbol's events stay in order in one partition.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from flinktrade import events

PRICE_SQL_TYPE = "DECIMAL(18, 6)"
"""Prices in Flink: 12 integer digits, 6 decimals. Never DECIMAL without a scale."""


E = TypeVar("E", bound=events.Event)


@dataclass(frozen=True)
class Topic(Generic[E]):
    """A topic: its canonical name, the one event type its records hold, what keys them."""

    name: str
    event: type[E]
    keyed_by: str | None
    description: str

    def decode(self, data: bytes | str) -> E:
        """This topic's one decoder: a record parsed and validated as ``event``; raises
        ``events.DecodeError`` with a one-line reason."""
        return events.decode(self.event, data)


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

ALL: tuple[Topic[Any], ...] = (
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


def by_name(name: str) -> Topic[Any]:
    """The topic with canonical name ``name``; ``KeyError`` naming the known ones otherwise."""
    for topic in ALL:
        if topic.name == name:
            return topic
    known = ", ".join(t.name for t in ALL)
    raise KeyError(f"unknown topic {name!r} (known: {known})")


def decode(name: str, data: bytes | str) -> events.Event:
    """A record of the topic with canonical name ``name``, decoded by that topic's decoder."""
    topic: Topic[events.Event] = by_name(name)
    return topic.decode(data)


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
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):  # a nested object
        return f"ROW<{', '.join(f'`{n}` {t}' for n, t in _model_columns(annotation))}>"
    raise TypeError(f"no SQL type for {annotation!r}")


def sql_columns(event: type[events.Event]) -> list[tuple[str, str]]:
    """``(name, SQL type)`` for every field of an event model, in declaration order."""
    return _model_columns(event)


def _model_columns(model: type[BaseModel]) -> list[tuple[str, str]]:
    hints = typing.get_type_hints(model, include_extras=True)
    return [(name, sql_type(hints[name])) for name in model.model_fields]


def sql_schema(event: type[events.Event]) -> str:
    """The column list of a Flink table holding ``event`` rows (for ``CREATE TABLE``)."""
    return ",\n  ".join(f"`{name}` {typ}" for name, typ in sql_columns(event))
