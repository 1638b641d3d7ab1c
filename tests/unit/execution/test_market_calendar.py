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
        "boom); judging sessions on the bundled calendar, asking again in 60s"
    ]
    served.fail = False
    clock.now += 60.0
    assert calendar.at(GOOD_FRIDAY_11).session_at(GOOD_FRIDAY_11) is Session.REGULAR
    assert not calendar.falling_back and len(served.asked) == 2


def test_a_broker_without_a_calendar_gets_the_bundled_one() -> None:
    assert MarketCalendar(object()).at(GOOD_FRIDAY_11) is sessions.bundled()
