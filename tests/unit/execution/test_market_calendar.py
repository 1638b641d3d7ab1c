"""``execution.market_calendar``: the broker's calendar over the bundled one, its fallback.

The broker here is a stand-in serving a calendar (the real one through alpaca-py against the
fake is in tests/integration/execution/test_executor_sessions.py)."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from flinktrade import sessions
from flinktrade.errors import TransientError
from flinktrade.execution.market_calendar import MarketCalendar, month_of
from flinktrade.sessions import Session, TradingDay

GOOD_FRIDAY_11 = 1_711_724_400_000  # Fri 2024-03-29 11:00 EDT: closed by the bundled calendar


class Served:
    """A broker serving a calendar that opens on Good Friday 2024 (or failing)."""

    def __init__(self) -> None:
        self.asked: list[tuple[date, date]] = []
        self.fail = False
        self._answers: dict[tuple[date, date], sessions.Calendar] = {}

    def calendar(self, start: date, end: date) -> sessions.Calendar:
        self.asked.append((start, end))
        if self.fail:
            raise TransientError("Alpaca calendar: HTTP 500: boom")
        if (start, end) not in self._answers:  # kept, as the broker keeps it for a day
            days = sessions.bundled().days(start, end)
            days.append(TradingDay(date(2024, 3, 29)))
            self._answers[(start, end)] = sessions.Calendar(days, start, end)
        return self._answers[(start, end)]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_month_of_is_the_et_month() -> None:
    assert month_of(GOOD_FRIDAY_11) == (date(2024, 3, 1), date(2024, 3, 31))
    assert month_of(1_703_998_800_000) == (date(2023, 12, 1), date(2023, 12, 31))  # 12-31 00:00 ET
    assert month_of(1_709_269_200_000 - 1) == (date(2024, 2, 1), date(2024, 2, 29))  # leap year


def test_the_brokers_calendar_wins_over_the_bundled_one() -> None:
    assert sessions.bundled().session_at(GOOD_FRIDAY_11) is Session.CLOSED
    served = Served()
    calendar = MarketCalendar(served)
    assert calendar.at(GOOD_FRIDAY_11).session_at(GOOD_FRIDAY_11) is Session.REGULAR
    assert calendar.at(GOOD_FRIDAY_11) is calendar.at(GOOD_FRIDAY_11)  # merged once
    assert served.asked[0] == (date(2024, 3, 1), date(2024, 3, 31))
    # outside the month asked, the bundled calendar's days stay: Christmas 2024 is closed
    christmas_noon = 1_735_146_000_000
    assert calendar.at(GOOD_FRIDAY_11).session_at(christmas_noon) is Session.CLOSED


def test_a_failing_broker_falls_back_to_the_bundled_calendar_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    served, clock = Served(), Clock()
    served.fail = True
    calendar = MarketCalendar(served, retry_s=60.0, monotonic=clock)
    with caplog.at_level(logging.WARNING, logger="flinktrade.execution.market_calendar"):
        assert calendar.at(GOOD_FRIDAY_11) is sessions.bundled()
        assert calendar.at(GOOD_FRIDAY_11) is sessions.bundled()
    assert calendar.falling_back
    assert len(served.asked) == 1  # not asked again before retry_s
    assert [r.getMessage() for r in caplog.records if "bundled" in r.getMessage()] == [
        "executor: the broker's market calendar is unavailable (Alpaca calendar: HTTP 500: "
        "boom); judging sessions on the refreshed or bundled calendar, asking again in 60s"
    ]
    served.fail = False
    clock.now += 60.0
    assert calendar.at(GOOD_FRIDAY_11).session_at(GOOD_FRIDAY_11) is Session.REGULAR
    assert not calendar.falling_back and len(served.asked) == 2


def test_a_broker_without_a_calendar_gets_the_bundled_one() -> None:
    assert MarketCalendar(object()).at(GOOD_FRIDAY_11) is sessions.bundled()


def _refreshed() -> sessions.Calendar:
    """What a refreshed file might hold: July 2024 with Independence Day open (the bundled
    calendar has it closed)."""
    start, end = date(2024, 7, 1), date(2024, 7, 31)
    days = [*sessions.bundled().days(start, end), TradingDay(date(2024, 7, 4))]
    return sessions.bundled().merged(sessions.Calendar(days, start, end))


JULY_4_11 = 1_720_105_200_000  # Thu 2024-07-04 11:00 EDT


def test_the_fallback_is_the_calendar_given_with_and_without_the_brokers() -> None:
    refreshed = _refreshed()
    assert sessions.bundled().session_at(JULY_4_11) is Session.CLOSED
    # no calendar at the broker (the simulated one): the fallback alone, asked on each use
    given = [refreshed]
    alone = MarketCalendar(object(), fallback=lambda: given[0])
    assert alone.at(JULY_4_11) is refreshed
    given[0] = sessions.bundled()
    assert alone.at(JULY_4_11) is sessions.bundled()
    # the broker's month over the fallback: Good Friday from the broker, July 4 from the file
    served = Served()
    over = MarketCalendar(served, fallback=lambda: refreshed)
    assert over.at(GOOD_FRIDAY_11).session_at(GOOD_FRIDAY_11) is Session.REGULAR
    assert over.at(GOOD_FRIDAY_11).session_at(JULY_4_11) is Session.REGULAR
    served.fail = True
    failing = MarketCalendar(served, fallback=lambda: refreshed)
    assert failing.at(GOOD_FRIDAY_11) is refreshed
