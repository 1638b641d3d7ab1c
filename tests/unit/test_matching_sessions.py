"""The matching model on the market calendar: day orders end with their session, opg/cls meet
the regular open/close, ``follow_sessions`` keeps orders out of sessions they may not trade in.
Every time below is written out by hand (US Eastern, EST -05:00 / EDT -04:00)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from flinktrade.events import OrderSpec, Side
from flinktrade.matching import Book, Change, Execution, Order, Update, eastern_session_end

MIN = 60_000
T10 = 1_704_207_600_000  # Tue 2024-01-02 10:00 EST, a full day
T09 = 1_704_204_000_000  # 2024-01-02 09:00 (pre-market)
T08 = 1_704_200_400_000  # 2024-01-02 08:00 (pre-market)
CLOSE = 1_704_229_200_000  # 2024-01-02 16:00
POST_END = 1_704_243_600_000  # 2024-01-02 20:00
NEXT_OPEN = 1_704_292_200_000  # Wed 2024-01-03 09:30
OPEN = T09 + 30 * MIN  # 2024-01-02 09:30

EARLY_10 = 1_732_892_400_000  # Fri 2024-11-29 10:00 EST, the day after Thanksgiving
EARLY_CLOSE = 1_732_903_200_000  # 2024-11-29 13:00, the early close

THU_15 = 1_711_652_400_000  # Thu 2024-03-28 15:00 EDT; Fri 2024-03-29 is Good Friday (closed)
THU_17 = 1_711_659_600_000  # 2024-03-28 17:00 (after-hours)
MON_OPEN = 1_711_978_200_000  # Mon 2024-04-01 09:30
MON_CLOSE = 1_712_001_600_000  # 2024-04-01 16:00


class Bar(NamedTuple):
    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: int


def at(ts: int, o: float = 100, h: float = 101, lo: float = 99, c: float = 100) -> Bar:
    return Bar("AAA", ts, o, h, lo, c, 1_000)


def order(order_id: str = "o1", **spec: object) -> Order:
    return Order.of(order_id, "AAA", Side.BUY, OrderSpec.model_validate(spec), 10)


def fills(changes: list[Change]) -> list[tuple[str, float, float, int]]:
    return [(c.order_id, c.qty, c.price, c.ts) for c in changes if isinstance(c, Execution)]


def statuses(changes: list[Change]) -> list[tuple[str, str, int]]:
    return [(c.order_id, c.status.value, c.ts) for c in changes if isinstance(c, Update)]


def limit(order_id: str = "o1", price: float = 90, **spec: object) -> Order:
    return order(order_id, type="limit", limit_price=price, **spec)


# -- day orders --------------------------------------------------------------------------------


def test_a_day_order_placed_at_10_expires_at_the_close_at_16() -> None:
    book = Book()
    book.submit(limit(), T10)
    assert book.on_bar(at(T10 + MIN)) == []
    assert book.on_bar(at(CLOSE - MIN)) == []  # 15:59: still working
    assert book.orders["o1"].session_end == CLOSE
    assert statuses(book.on_bar(at(CLOSE))) == [("o1", "expired", CLOSE)]  # an after-hours bar


def test_a_day_order_expires_at_an_early_close() -> None:
    book = Book()
    book.submit(limit(), EARLY_10)
    assert book.on_bar(at(EARLY_CLOSE - MIN)) == []  # 12:59
    assert statuses(book.on_bar(at(EARLY_CLOSE))) == [("o1", "expired", EARLY_CLOSE)]


def test_a_day_order_is_not_carried_over_a_holiday() -> None:
    book = Book()
    book.submit(limit("thu"), THU_15)
    assert book.on_bar(at(THU_15 + MIN)) == []
    assert statuses(book.on_bar(at(MON_OPEN))) == [("thu", "expired", MON_OPEN)]


def test_a_day_order_placed_after_the_close_works_through_the_next_trading_day() -> None:
    """Placed Thursday after the close (not extended): Good Friday is closed, so it is Monday's
    order and expires at Monday's close."""
    book = Book()
    book.submit(limit("late"), THU_17)
    assert book.on_bar(at(MON_OPEN)) == []
    assert book.orders["late"].session_end == MON_CLOSE
    assert statuses(book.on_bar(at(MON_CLOSE))) == [("late", "expired", MON_CLOSE)]


def test_an_extended_hours_day_limit_works_until_20() -> None:
    book = Book()
    book.submit(limit("filled", 90, extended_hours=True), T10)
    book.submit(limit("left", 80, extended_hours=True), T10)
    assert book.on_bar(at(T10 + MIN)) == []
    changes = book.on_bar(at(CLOSE + 120 * MIN, 95, 96, 89, 92))  # 18:00 after-hours
    assert fills(changes) == [("filled", 10, 90, CLOSE + 120 * MIN)]
    assert book.orders["left"].session_end == POST_END
    assert book.on_bar(at(POST_END - MIN)) == []  # 19:59
    assert statuses(book.on_bar(at(NEXT_OPEN))) == [("left", "expired", NEXT_OPEN)]


def test_expire_ends_day_orders_without_a_price() -> None:
    book = Book()
    book.submit(limit("day"), T10)
    book.submit(limit("gtc", time_in_force="gtc"), T10)
    assert book.expire(CLOSE - 1) == []
    assert statuses(book.expire(CLOSE)) == [("day", "expired", CLOSE)]
    assert [o.id for o in book.working()] == ["gtc"]


def test_a_session_end_function_replaces_the_calendar() -> None:
    """``eastern_session_end``, the old rule: to midnight of the first price's New York date."""
    book = Book(session_end=eastern_session_end)
    book.submit(limit(), T10)
    assert book.on_bar(at(T10 + MIN)) == []
    assert book.on_bar(at(CLOSE)) == []  # 16:00 is still 2024-01-02
    assert statuses(book.on_bar(at(NEXT_OPEN))) == [("o1", "expired", NEXT_OPEN)]


# -- following sessions --------------------------------------------------------------------------


def test_following_sessions_a_regular_order_meets_no_pre_market_bar() -> None:
    book = Book(follow_sessions=True)
    book.submit(limit("regular", 95), T08)
    book.submit(limit("extended", 95, extended_hours=True), T08)
    changes = book.on_bar(at(T08 + MIN, 96, 97, 94, 95))  # 08:01 pre-market, through 95
    assert fills(changes) == [("extended", 10, 95, T08 + MIN)]
    assert fills(book.on_bar(at(OPEN, 96, 97, 94, 95))) == [("regular", 10, 95, OPEN)]


def test_without_following_sessions_a_pre_market_bar_fills_any_order() -> None:
    book = Book()
    book.submit(limit("regular", 95), T08)
    assert fills(book.on_bar(at(T08 + MIN, 96, 97, 94, 95))) == [("regular", 10, 95, T08 + MIN)]


def test_following_sessions_no_order_meets_a_closed_market() -> None:
    book = Book(follow_sessions=True)
    book.submit(limit("extended", 95, extended_hours=True), CLOSE)
    assert book.on_bar(at(POST_END + MIN, 90, 91, 89, 90)) == []  # 20:01: closed
    assert book.working()[0].id == "extended"


# -- opg / cls -----------------------------------------------------------------------------------


def test_opg_waits_for_the_regular_open() -> None:
    book = Book()
    book.submit(order("opg", time_in_force="opg"), T09)
    book.submit(limit("opg_limit", 99, time_in_force="opg"), T09)
    assert book.on_bar(at(T09 + 15 * MIN, 95, 96, 94, 95)) == []  # 09:15 pre-market: waits
    changes = book.on_bar(at(OPEN, 100, 101, 98, 100))
    assert fills(changes) == [("opg", 10, 100, OPEN)]
    assert ("opg_limit", "expired", OPEN) in statuses(changes)  # 98 was inside the bar


def test_opg_placed_after_the_open_meets_the_next_days_open() -> None:
    book = Book()
    book.submit(order("opg", time_in_force="opg"), T10)
    assert book.on_bar(at(T10 + MIN)) == []
    assert book.on_bar(at(CLOSE - MIN)) == []
    assert fills(book.on_bar(at(NEXT_OPEN, 104, 105, 103, 104))) == [("opg", 10, 104, NEXT_OPEN)]


def test_opg_whose_open_passed_without_a_price_expires() -> None:
    book = Book()
    book.submit(order("opg", time_in_force="opg"), T09)
    assert statuses(book.on_bar(at(NEXT_OPEN))) == [("opg", "expired", NEXT_OPEN)]


def test_cls_fills_at_the_last_price_before_the_close() -> None:
    book = Book()
    book.submit(order("cls", time_in_force="cls"), T10)
    assert book.on_bar(at(T10 + MIN, 100, 101, 99, 101)) == []
    assert book.on_bar(at(CLOSE - MIN, 101, 103, 100, 102)) == []  # 15:59, closes at 102
    changes = book.on_bar(at(NEXT_OPEN, 98, 99, 97, 98))
    assert fills(changes) == [("cls", 10, 102, CLOSE)]  # stamped at the close
    assert statuses(changes)[-1] == ("cls", "filled", CLOSE)


def test_cls_limit_outside_its_limit_expires() -> None:
    book = Book()
    book.submit(limit("cls", 101, time_in_force="cls"), T10)
    assert book.on_bar(at(CLOSE - MIN, 101, 103, 100, 102)) == []
    assert statuses(book.on_bar(at(CLOSE + MIN))) == [("cls", "expired", CLOSE)]


def test_cls_without_a_price_before_the_close_expires() -> None:
    book = Book()
    book.submit(order("cls", time_in_force="cls"), CLOSE - MIN)
    assert statuses(book.on_bar(at(NEXT_OPEN))) == [("cls", "expired", NEXT_OPEN)]


# -- daily bars ----------------------------------------------------------------------------------


class DailyBar(NamedTuple):
    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    interval_ms: int = 86_400_000


@pytest.mark.parametrize(
    "midnight",
    [1_704_240_000_000, 1_704_258_000_000],  # 2024-01-03 00:00 UTC (19:00 EST), 00:00 EST
)
def test_a_daily_bar_is_a_whole_day(midnight: int) -> None:
    """A bar of a day has no time of day: a day order placed at one meets the next and expires
    at the one after, even with extended hours; opg/cls fill at its open/close."""
    day = 86_400_000
    book = Book()
    book.submit(limit("day", 90), midnight)
    book.submit(limit("extended", 90, extended_hours=True), midnight)
    book.submit(order("opg", time_in_force="opg"), midnight)
    book.submit(order("cls", time_in_force="cls"), midnight)
    changes = book.on_bar(DailyBar("AAA", midnight, 100, 103, 98, 102, 1_000))
    assert fills(changes) == [("opg", 10, 100, midnight), ("cls", 10, 102, midnight)]
    changes = book.on_bar(DailyBar("AAA", midnight + day, 95, 96, 91, 92, 1_000))
    assert statuses(changes) == [
        ("day", "expired", midnight + day),
        ("extended", "expired", midnight + day),
    ]
