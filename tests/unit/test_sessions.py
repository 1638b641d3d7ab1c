"""The market calendar and its sessions on the bundled calendar: dates and times checked by hand.

Every expected time is written in UTC, converted from the exchange's ET by hand (EST = UTC-5 in
winter, EDT = UTC-4 from the second Sunday of March to the first Sunday of November).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from importlib import resources

import pytest

from flinktrade import sessions
from flinktrade.sessions import Calendar, MarketClock, Session, TradingDay


def utc(*args: int) -> int:
    """Epoch ms of a UTC time (year, month, day, hour, minute)."""
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


CAL = sessions.bundled()


@pytest.mark.parametrize(
    ("when", "session"),
    [
        # Friday 2024-03-08, EST: pre 09:00-14:30, regular 14:30-21:00, post 21:00-01:00 UTC
        (utc(2024, 3, 8, 8, 59), Session.CLOSED),
        (utc(2024, 3, 8, 9, 0), Session.PRE),
        (utc(2024, 3, 8, 14, 29), Session.PRE),
        (utc(2024, 3, 8, 14, 30), Session.REGULAR),
        (utc(2024, 3, 8, 20, 59), Session.REGULAR),
        (utc(2024, 3, 8, 21, 0), Session.POST),
        (utc(2024, 3, 9, 0, 59), Session.POST),  # 19:59 ET, still Friday in New York
        (utc(2024, 3, 9, 1, 0), Session.CLOSED),
        # Saturday 2024-03-09 and Sunday 2024-03-10 (DST starts at 02:00 ET): closed all day
        (utc(2024, 3, 9, 15, 0), Session.CLOSED),
        (utc(2024, 3, 10, 15, 0), Session.CLOSED),
        # Monday 2024-03-11, the first EDT day: everything an hour earlier in UTC
        (utc(2024, 3, 11, 7, 59), Session.CLOSED),
        (utc(2024, 3, 11, 8, 0), Session.PRE),
        (utc(2024, 3, 11, 13, 29), Session.PRE),
        (utc(2024, 3, 11, 13, 30), Session.REGULAR),
        (utc(2024, 3, 11, 14, 30), Session.REGULAR),
        (utc(2024, 3, 11, 19, 59), Session.REGULAR),
        (utc(2024, 3, 11, 20, 0), Session.POST),
        (utc(2024, 3, 11, 23, 59), Session.POST),
        (utc(2024, 3, 12, 0, 0), Session.CLOSED),
        # Monday 2024-11-04, the first EST day after DST ended on Sunday 2024-11-03
        (utc(2024, 11, 4, 13, 30), Session.PRE),
        (utc(2024, 11, 4, 14, 30), Session.REGULAR),
        (utc(2024, 11, 4, 21, 0), Session.POST),
        (utc(2024, 11, 3, 15, 0), Session.CLOSED),
        # Good Friday 2024-03-29: closed (stock markets close, it is no federal holiday)
        (utc(2024, 3, 29, 9, 0), Session.CLOSED),
        (utc(2024, 3, 29, 15, 0), Session.CLOSED),
        (utc(2024, 3, 29, 21, 0), Session.CLOSED),
        # 2024-07-03, EDT, early close 13:00 ET = 17:00 UTC; after-hours to 17:00 ET = 21:00 UTC
        (utc(2024, 7, 3, 13, 30), Session.REGULAR),
        (utc(2024, 7, 3, 16, 59), Session.REGULAR),
        (utc(2024, 7, 3, 17, 0), Session.POST),
        (utc(2024, 7, 3, 20, 59), Session.POST),
        (utc(2024, 7, 3, 21, 0), Session.CLOSED),
        (utc(2024, 7, 4, 15, 0), Session.CLOSED),  # Independence Day
        # 2025-01-09: national day of mourning for President Carter
        (utc(2025, 1, 9, 15, 0), Session.CLOSED),
        (utc(2025, 1, 8, 15, 0), Session.REGULAR),
        (utc(2025, 1, 10, 15, 0), Session.REGULAR),
        # Juneteenth: Sunday 2022-06-19, observed Monday 2022-06-20
        (utc(2022, 6, 20, 15, 0), Session.CLOSED),
        (utc(2022, 6, 21, 15, 0), Session.REGULAR),
        # the ends of the bundled years
        (utc(2015, 1, 1, 15, 0), Session.CLOSED),
        (utc(2015, 1, 2, 15, 0), Session.REGULAR),
        (utc(2030, 12, 25, 15, 0), Session.CLOSED),
        (utc(2030, 12, 24, 17, 59), Session.REGULAR),  # Christmas Eve: early close 13:00 EST
        (utc(2030, 12, 24, 18, 0), Session.POST),
    ],
)
def test_session_at(when: int, session: Session) -> None:
    assert CAL.session_at(when) is session
    assert sessions.session_at(when) is session


def test_the_cache_of_the_last_day_never_answers_for_another_day() -> None:
    cal = Calendar.from_json(json.loads(_bundled_text()))
    times = [
        (utc(2024, 3, 8, 14, 30), Session.REGULAR),
        (utc(2024, 3, 29, 15, 0), Session.CLOSED),
        (utc(2024, 3, 8, 14, 29), Session.PRE),
        (utc(2024, 3, 11, 13, 30), Session.REGULAR),
        (utc(2024, 3, 9, 0, 59), Session.POST),
        (utc(2024, 3, 9, 1, 0), Session.CLOSED),
        (utc(2024, 3, 8, 21, 0), Session.POST),
    ]
    for _ in range(2):
        for when, session in times:
            assert cal.session_at(when) is session, when


def test_is_open_with_and_without_extended_hours() -> None:
    pre, regular, post = utc(2024, 3, 11, 9, 0), utc(2024, 3, 11, 15, 0), utc(2024, 3, 11, 21, 0)
    night, holiday = utc(2024, 3, 12, 3, 0), utc(2024, 3, 29, 15, 0)
    assert [CAL.is_open(t) for t in (pre, regular, post, night, holiday)] == [
        False, True, False, False, False,
    ]  # fmt: skip
    assert [CAL.is_open(t, extended_hours=True) for t in (pre, regular, post, night, holiday)] == [
        True, True, True, False, False,
    ]  # fmt: skip


def test_next_open_and_close() -> None:
    # Thursday 2024-03-28 after the close: Good Friday and the weekend pass, Monday 04-01 opens
    after = utc(2024, 3, 28, 20, 30)
    assert CAL.next_open(after) == utc(2024, 4, 1, 13, 30)
    assert CAL.next_close(after) == utc(2024, 4, 1, 20, 0)
    # during the early-close session of 2024-07-03: today's close, the next open on 07-05
    during = utc(2024, 7, 3, 15, 0)
    assert CAL.next_close(during) == utc(2024, 7, 3, 17, 0)
    assert CAL.next_open(during) == utc(2024, 7, 5, 13, 30)
    # exactly at an open, that open is not "next"
    assert CAL.next_open(utc(2024, 3, 8, 14, 30)) == utc(2024, 3, 11, 13, 30)


def test_clock_like_alpaca() -> None:
    clock = CAL.clock(utc(2024, 7, 3, 15, 0))
    assert clock == MarketClock(
        utc(2024, 7, 3, 15, 0), True, utc(2024, 7, 5, 13, 30), utc(2024, 7, 3, 17, 0)
    )
    assert clock.to_json() == {
        "timestamp": "2024-07-03T11:00:00-04:00",
        "is_open": True,
        "next_open": "2024-07-05T09:30:00-04:00",
        "next_close": "2024-07-03T13:00:00-04:00",
    }
    answer = {
        "timestamp": "2024-04-05T11:32:05.716495918-04:00",
        "is_open": True,
        "next_open": "2024-04-08T09:30:00-04:00",
        "next_close": "2024-04-05T16:00:00Z",
    }
    parsed = MarketClock.from_json(answer)
    assert parsed.ts == utc(2024, 4, 5, 15, 32) + 5716
    assert parsed.next_open == utc(2024, 4, 8, 13, 30)
    assert parsed.next_close == utc(2024, 4, 5, 16, 0)
    with pytest.raises(ValueError, match="is_open"):
        MarketClock.from_json({**answer, "is_open": "yes"})
    with pytest.raises(ValueError, match="offset"):
        MarketClock.from_json({**answer, "timestamp": "2024-04-05T11:32:05"})


def _bundled_text() -> str:
    return resources.files("flinktrade").joinpath("data", "calendar.json").read_text("utf-8")


def test_the_bundled_file_is_alpacas_shape_over_2015_to_2030() -> None:
    days = json.loads(_bundled_text())
    assert all(set(d) == {"date", "open", "close", "session_open", "session_close"} for d in days)
    assert days[0]["date"] == "2015-01-02" and days[-1]["date"] == "2030-12-31"
    by_date = {d["date"]: d for d in days}
    assert by_date["2024-07-03"] == {
        "date": "2024-07-03", "open": "09:30", "close": "13:00",
        "session_open": "0400", "session_close": "1700",
    }  # fmt: skip
    assert by_date["2024-07-05"]["close"] == "16:00"
    assert by_date["2024-07-05"]["session_close"] == "2000"
    assert "2024-03-29" not in by_date and "2024-03-30" not in by_date
    assert by_date["2024-11-29"]["close"] == "13:00"  # the day after Thanksgiving
    # 252 trading days in 2024: 366 days - 104 weekend days - 10 holidays on weekdays
    assert sum(d["date"].startswith("2024-") for d in days) == 252
    assert CAL.first == date(2015, 1, 1) and CAL.last == date(2030, 12, 31)


def test_a_date_outside_the_calendar_is_a_plain_week() -> None:
    # 2035-01-01 is a Monday: a holiday in fact, but no calendar here lists 2035
    assert CAL.session_at(utc(2035, 1, 1, 15, 0)) is Session.REGULAR
    assert CAL.session_at(utc(2035, 1, 6, 15, 0)) is Session.CLOSED  # a Saturday
    assert CAL.day(date(2035, 1, 1)) == TradingDay(date(2035, 1, 1))


def test_alpacas_answer_makes_a_calendar_and_merges_over_the_bundled_one() -> None:
    # Alpaca's answer for 2024-03-25..2024-03-31: no 03-29 (Good Friday)
    answer = [
        {"date": f"2024-03-{d}", "open": "09:30", "close": "16:00", "session_open": "0400",
         "session_close": "2000", "settlement_date": "2024-03-27"}
        for d in (25, 26, 27, 28)
    ]  # fmt: skip
    week = Calendar.from_json(answer, date(2024, 3, 25), date(2024, 3, 31))
    assert week.session_at(utc(2024, 3, 29, 15, 0)) is Session.CLOSED
    assert week.session_at(utc(2024, 3, 28, 15, 0)) is Session.REGULAR
    # an answer that (say) adds a half day on 03-29 wins over the bundled file for its range
    half = [*answer, {"date": "2024-03-29", "open": "09:30", "close": "13:00"}]
    merged = CAL.merged(Calendar.from_json(half, date(2024, 3, 25), date(2024, 3, 31)))
    assert merged.session_at(utc(2024, 3, 29, 15, 0)) is Session.REGULAR
    assert merged.session_at(utc(2024, 3, 29, 17, 0)) is Session.POST
    assert merged.session_at(utc(2024, 7, 3, 17, 0)) is Session.POST  # the rest is kept
    assert merged.session_at(utc(2024, 7, 4, 15, 0)) is Session.CLOSED
    assert merged.first == date(2015, 1, 1) and merged.last == date(2030, 12, 31)


@pytest.mark.parametrize(
    "bad",
    [
        {"date": "2024-03-25", "open": "9:30", "close": "16:00"},
        {"date": "2024-03-25", "open": "09:30"},
        {"date": 20240325, "open": "09:30", "close": "16:00"},
        {"date": "2024-03-25", "open": "16:00", "close": "09:30"},
        {"date": "2024-03-25", "open": "09:30", "close": "16:00", "session_close": "1500"},
        "2024-03-25",
    ],
)
def test_a_bad_calendar_day_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        Calendar.from_json([bad])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("when", "extended", "order_type", "tif", "problem"),
    [
        (utc(2024, 3, 11, 15, 0), False, "market", "day", None),
        (utc(2024, 3, 11, 15, 0), True, "market", "ioc", None),  # regular: no session rule
        (utc(2024, 3, 11, 21, 0), False, "market", "day", "post session and the order does not"),
        (utc(2024, 3, 11, 21, 0), True, "limit", "day", None),
        (utc(2024, 3, 11, 9, 0), True, "limit", "gtc", None),
        (utc(2024, 3, 11, 9, 0), True, "market", "day", "only limit orders"),
        (utc(2024, 3, 11, 9, 0), True, "limit", "ioc", "only limit orders"),
        (utc(2024, 3, 11, 9, 0), True, "stop_limit", "day", "(not stop_limit day)"),
        (utc(2024, 3, 12, 3, 0), True, "limit", "day", "closed at 2024-03-11 23:00 ET"),
        (utc(2024, 3, 29, 15, 0), True, "limit", "day", "closed at 2024-03-29 11:00 ET"),
    ],
)
def test_session_problem(
    when: int, extended: bool, order_type: str, tif: str, problem: str | None
) -> None:
    found = sessions.session_problem(when, extended, order_type, tif)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    ("when", "extended", "end"),
    [
        (utc(2024, 1, 2, 15, 0), False, utc(2024, 1, 2, 21, 0)),  # 10:00 EST -> 16:00
        (utc(2024, 1, 2, 15, 0), True, utc(2024, 1, 3, 1, 0)),  # -> 20:00 EST
        (utc(2024, 11, 29, 15, 0), False, utc(2024, 11, 29, 18, 0)),  # early close 13:00
        (utc(2024, 11, 29, 15, 0), True, utc(2024, 11, 29, 22, 0)),  # after-hours to 17:00
        (utc(2024, 3, 28, 21, 0), False, utc(2024, 4, 1, 20, 0)),  # Thu 17:00 EDT: Good Friday
        (utc(2024, 3, 28, 21, 0), True, utc(2024, 3, 29, 0, 0)),  # Thu 20:00 EDT, same evening
        (utc(2024, 1, 2, 21, 0), False, utc(2024, 1, 3, 21, 0)),  # at 16:00: the next close
    ],
)
def test_day_end(when: int, extended: bool, end: int) -> None:
    assert sessions.bundled().day_end(when, extended) == end
