"""Alpaca's market calendar and clock, through alpaca-py, against the loopback fake whose clock
the test sets: alpaca-py's own models read the fake's answers, and the broker turns them into
our calendar (asked for once a day) and clock. Times converted from ET to UTC by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import GetCalendarRequest

from flinktrade.errors import TransientError
from flinktrade.execution.brokers.alpaca import AlpacaBroker
from flinktrade.sessions import MarketClock, Session
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading(now_ms=utc(2024, 7, 3, 15, 0)) as f:  # 11:00 EDT, an early-close day
        yield f


@pytest.fixture
def broker(alpaca: AlpacaBroker) -> AlpacaBroker:
    """The adapter on this module's fake (the conftest's ``alpaca``)."""
    return alpaca


def test_alpaca_py_reads_the_fakes_calendar_and_clock(fake: FakeAlpacaTrading) -> None:
    client = TradingClient(fake.key_id, fake.secret_key, url_override=fake.base_url)
    days = client.get_calendar(GetCalendarRequest(start=date(2024, 7, 1), end=date(2024, 7, 7)))
    assert isinstance(days, list)
    listed = [(d.date, d.open.strftime("%H:%M"), d.close.strftime("%H:%M")) for d in days]  # type: ignore[union-attr]
    assert listed == [
        (date(2024, 7, 1), "09:30", "16:00"),
        (date(2024, 7, 2), "09:30", "16:00"),
        (date(2024, 7, 3), "09:30", "13:00"),
        (date(2024, 7, 5), "09:30", "16:00"),
    ]
    clock = client.get_clock()
    assert clock.is_open is True  # type: ignore[union-attr]
    assert clock.next_close == datetime(2024, 7, 3, 17, 0, tzinfo=UTC)  # type: ignore[union-attr]
    assert clock.next_open == datetime(2024, 7, 5, 13, 30, tzinfo=UTC)  # type: ignore[union-attr]
    fake.now_ms = utc(2024, 7, 3, 18, 0)  # 14:00 EDT: after the early close
    assert client.get_clock().is_open is False  # type: ignore[union-attr]


def test_the_broker_builds_the_calendar_and_asks_once_a_day(
    fake: FakeAlpacaTrading, broker: AlpacaBroker
) -> None:
    start, end = date(2024, 3, 25), date(2024, 4, 7)
    calendar = broker.calendar(start, end)
    assert calendar.first == start and calendar.last == end
    assert calendar.session_at(utc(2024, 3, 29, 15, 0)) is Session.CLOSED  # Good Friday
    assert calendar.session_at(utc(2024, 3, 28, 15, 0)) is Session.REGULAR
    assert calendar.session_at(utc(2024, 3, 28, 21, 0)) is Session.POST
    assert [d.date.day for d in calendar.days(start, end)] == [25, 26, 27, 28, 1, 2, 3, 4, 5]
    assert broker.calendar(start, end) is calendar
    with fake.lock:
        asked = [path for _, path in fake.requests if path == "/v2/calendar"]
    assert asked == ["/v2/calendar"]


def test_the_brokers_clock_follows_the_fakes(fake: FakeAlpacaTrading, broker: AlpacaBroker) -> None:
    assert broker.clock() == MarketClock(
        utc(2024, 7, 3, 15, 0), True, utc(2024, 7, 5, 13, 30), utc(2024, 7, 3, 17, 0)
    )
    assert broker.market_open() is True
    fake.now_ms = utc(2024, 7, 4, 15, 0)  # Independence Day
    assert broker.clock().is_open is False
    assert broker.market_open() is False


def test_an_unreadable_calendar_is_a_transient_error(
    fake: FakeAlpacaTrading, broker: AlpacaBroker
) -> None:
    fake.answer_with(200, b'[{"date": "2024-03-25"}]', content_type="application/json",
                     path="/v2/calendar")  # fmt: skip
    with pytest.raises(TransientError, match="calendar: unreadable answer"):
        broker.calendar(date(2024, 3, 25), date(2024, 3, 31))
