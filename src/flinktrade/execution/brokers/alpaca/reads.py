"""The Alpaca broker's reads: an order by ``client_order_id``, open orders, positions, account,
clock and market calendar.

Each is one ``_read`` (``calls``): the parsed answer, or ``TransientError``. Open orders come
nested (a bracket's legs inside their parent); the calendar of a range is asked for at most once a
day (``CALENDAR_TTL_S``) and is merged over ``sessions.bundled()`` by its user.
"""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetCalendarRequest, GetOrdersRequest

from flinktrade import sessions
from flinktrade.errors import TransientError
from flinktrade.execution.brokers.alpaca.calls import AlpacaCalls
from flinktrade.execution.brokers.alpaca.parse import (
    as_list,
    parse_account,
    parse_calendar,
    parse_clock,
    parse_market_clock,
    parse_order,
    parse_orders,
    parse_positions,
)
from flinktrade.execution.brokers.base import Account, BrokerOrder

CALENDAR_TTL_S = 86_400.0
"""How long an answer of ``GET /v2/calendar`` is used before it is asked for again."""


class AlpacaReads(AlpacaCalls):
    """What the Alpaca broker reads; the calendars it keeps are ``_calendars`` (by range)."""

    _calendars: dict[tuple[date, date], tuple[float, sessions.Calendar]]

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """The order with ``client_order_id`` (with its legs), None if Alpaca has none."""
        return self._read(
            "order look-up",
            parse_order,
            self._client.get_order_by_client_id,
            client_order_id,
            missing=True,
        )

    def open_orders(self) -> list[BrokerOrder]:
        # nested: a bracket's exits come inside their parent (``legs``) and are listed with it
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, nested=True)
        orders = self._read("open orders", parse_orders, self._client.get_orders, request)
        return orders or []

    def positions(self) -> dict[str, Decimal]:
        held = self._read("positions", parse_positions, self._client.get_all_positions)
        return held or {}

    def account(self) -> Account:
        account = self._read("account", parse_account, self._client.get_account)
        if account is None:  # pragma: no cover - only look-ups may be missing
            raise TransientError("Alpaca account: no answer")
        return account

    def market_open(self) -> bool:
        return bool(self._read("clock", parse_clock, self._client.get_clock))

    def clock(self) -> sessions.MarketClock:
        """``GET /v2/clock``: the broker's time, whether the market is open, next open/close."""
        clock = self._read("clock", parse_market_clock, self._client.get_clock)
        if clock is None:  # pragma: no cover - only look-ups may be missing
            raise TransientError("Alpaca clock: no answer")
        return clock

    def calendar(self, start: date, end: date) -> sessions.Calendar:
        """``GET /v2/calendar`` from ``start`` to ``end`` (ET dates, both included), asked for
        at most once a day per range; merge it over ``sessions.bundled()`` to use it."""
        now = time.monotonic()
        kept = self._calendars.get((start, end))
        if kept is not None and now - kept[0] < CALENDAR_TTL_S:
            return kept[1]
        request = GetCalendarRequest(start=start, end=end)
        calendar = self._read(
            "calendar",
            lambda raw: parse_calendar(raw, start, end),
            self._client.get_calendar,
            request,
        )
        if calendar is None:  # pragma: no cover - only look-ups may be missing
            raise TransientError("Alpaca calendar: no answer")
        if len(self._calendars) >= 8:  # a few ranges are in use at a time: stay bounded
            self._calendars.clear()
        self._calendars[(start, end)] = (now, calendar)
        return calendar

    def close_all_positions(self) -> None:
        self._read("close all positions", as_list, self._client.close_all_positions, True)
