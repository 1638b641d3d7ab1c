"""The US equity market calendar and its sessions, in US Eastern time (DST included).

A day the market trades has four parts: ``pre`` (04:00-09:30 ET), ``regular`` (09:30-16:00 ET, or
to an early close at 13:00), ``post`` (16:00-20:00 ET; after an early close to 17:00) and
``closed`` for the rest, as do weekends, holidays and special closings. The days come in the
shape of Alpaca's ``GET /v2/calendar`` answer (``date``, ``open``, ``close``, ``session_open``,
``session_close``): from the calendar bundled with the package (``data/calendar.json``, made by
``tools/make_calendar.py``) or from Alpaca's own answer (``Calendar.from_json``).

Pure: no clock, no network. The only file read is the bundled calendar, once, on first use of
``bundled()``. A calendar covers a range of dates (the bundled one whole years, 2015-2030): a date
in it that it does not list is closed, a date outside it is taken as a plain week (Monday to
Friday, full hours, no holidays). ``session_problem`` is Alpaca's rule for orders outside the
regular session.

Looking up a time is cheap: the bounds of the last day asked about are kept, so a run of bars of
one day costs a few comparisons each; another day is found through a cache per UTC day.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")

PRE_OPEN = time(4, 0)
REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)
POST_CLOSE = time(20, 0)
EARLY_CLOSE = time(13, 0)
EARLY_POST_CLOSE = time(17, 0)

_DAY_MS = 86_400_000
_ONE_DAY = timedelta(days=1)
_SEARCH_DAYS = 400
"""The furthest a next open or close is looked for (a year of holidays never happens)."""


class Session(StrEnum):
    """Which part of the trading day a moment falls in."""

    PRE = "pre"
    REGULAR = "regular"
    POST = "post"
    CLOSED = "closed"


_PRE, _REGULAR, _POST, _CLOSED = Session.PRE, Session.REGULAR, Session.POST, Session.CLOSED


class MarketHours(StrEnum):
    """Which bars a backtest sees, by the session each bar starts in (``--market-hours``)."""

    ALL = "all"
    REGULAR = "regular"
    EXTENDED = "extended"
    """pre-market, regular and after-hours: every session but ``closed``."""


EXTENDED_ORDER_TYPES = frozenset({"limit"})
EXTENDED_TIME_IN_FORCE = frozenset({"day", "gtc"})


def _clock_time(text: object, name: str) -> time:
    """``"09:30"``, ``"0930"`` or ``"09:30:00"`` as a time of day."""
    if not isinstance(text, str):
        raise ValueError(f"{name} is not a string: {text!r}")
    digits = text.replace(":", "")
    if len(digits) not in (4, 6) or not digits.isdigit():
        raise ValueError(f"{name} is not a time of day: {text!r}")
    return time(int(digits[:2]), int(digits[2:4]))


@dataclass(frozen=True, slots=True)
class TradingDay:
    """One day the market trades, as Alpaca's calendar lists it (times of day in ET)."""

    date: date
    open: time = REGULAR_OPEN
    close: time = REGULAR_CLOSE
    session_open: time = PRE_OPEN
    session_close: time = POST_CLOSE

    def __post_init__(self) -> None:
        if not self.session_open <= self.open < self.close <= self.session_close:
            raise ValueError(
                f"{self.date}: want session_open <= open < close <= session_close, got "
                f"{self.session_open}, {self.open}, {self.close}, {self.session_close}"
            )

    @property
    def early_close(self) -> bool:
        return self.close < REGULAR_CLOSE

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TradingDay:
        """One entry of ``GET /v2/calendar``; ``session_open``/``session_close`` default to the
        usual 04:00/20:00 when absent. Raises ``ValueError`` for anything else."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"a calendar day is not an object: {raw!r}"[:200])
        when = raw.get("date")
        if not isinstance(when, str):
            raise ValueError(f"date is not a string: {when!r}")
        return cls(
            date=date.fromisoformat(when),
            open=_clock_time(raw.get("open"), "open"),
            close=_clock_time(raw.get("close"), "close"),
            session_open=_clock_time(raw.get("session_open", "0400"), "session_open"),
            session_close=_clock_time(raw.get("session_close", "2000"), "session_close"),
        )

    def to_json(self) -> dict[str, str]:
        """Alpaca's shape: ``open``/``close`` as ``HH:MM``, the session bounds as ``HHMM``."""
        return {
            "date": self.date.isoformat(),
            "open": self.open.strftime("%H:%M"),
            "close": self.close.strftime("%H:%M"),
            "session_open": self.session_open.strftime("%H%M"),
            "session_close": self.session_close.strftime("%H%M"),
        }


def _ms(day: date, at: time) -> int:
    """Epoch ms of ``at`` (ET) on ``day``."""
    return int(datetime.combine(day, at, tzinfo=ET).timestamp()) * 1000


def et_date(ts_ms: int) -> date:
    """The ET calendar date of an epoch-ms time."""
    return datetime.fromtimestamp(ts_ms / 1000, ET).date()


_Bounds = tuple[int, int, int, int, int, int]
"""One ET day in epoch ms: (midnight, next midnight, session_open, open, close, session_close);
a closed day has its four session bounds at the next midnight."""


class Calendar:
    """Trading days over ``first``..``last`` (by default the whole years of the days listed); a
    date in that range that is not listed is closed; outside it, Monday to Friday with the usual
    hours is assumed."""

    __slots__ = ("_by_utc_day", "_days", "_first", "_last", "_seen")

    def __init__(
        self, days: Iterable[TradingDay], first: date | None = None, last: date | None = None
    ) -> None:
        listed = sorted(days, key=lambda d: d.date)
        self._days = {d.date: d for d in listed}
        if len(self._days) != len(listed):
            raise ValueError("a date is listed twice")
        if listed:
            first = first or date(listed[0].date.year, 1, 1)
            last = last or date(listed[-1].date.year, 12, 31)
        self._first = first
        self._last = last
        if (
            first is not None
            and last is not None
            and any(not first <= d <= last for d in self._days)
        ):
            raise ValueError(f"a listed date is outside {first}..{last}")
        self._seen: _Bounds = (0, 0, 0, 0, 0, 0)
        self._by_utc_day: dict[int, tuple[_Bounds, _Bounds]] = {}

    @classmethod
    def from_json(
        cls, raw: Sequence[Mapping[str, Any]], first: date | None = None, last: date | None = None
    ) -> Calendar:
        """From Alpaca's ``GET /v2/calendar`` answer (a list of days). Pass the ``start``/``end``
        that were asked for as ``first``/``last``; without them the calendar covers the whole
        years of the days listed."""
        if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
            raise ValueError("a calendar is a list of days")
        return cls((TradingDay.from_json(entry) for entry in raw), first, last)

    def to_json(self) -> list[dict[str, str]]:
        return [day.to_json() for day in self._days.values()]

    @property
    def first(self) -> date | None:
        return self._first

    @property
    def last(self) -> date | None:
        return self._last

    def covers(self, day: date) -> bool:
        return (
            self._first is not None and self._last is not None and self._first <= day <= self._last
        )

    def day(self, day: date) -> TradingDay | None:
        """The trading day on ``day``, None when the market is closed all day."""
        found = self._days.get(day)
        if found is not None or self.covers(day):
            return found
        return TradingDay(day) if day.weekday() < 5 else None

    def is_trading_day(self, day: date) -> bool:
        return self.day(day) is not None

    def days(self, start: date, end: date) -> list[TradingDay]:
        """The trading days from ``start`` to ``end``, both included."""
        found: list[TradingDay] = []
        day = start
        while day <= end:
            trading = self.day(day)
            if trading is not None:
                found.append(trading)
            day += _ONE_DAY
        return found

    def merged(self, newer: Calendar) -> Calendar:
        """This calendar with the dates ``newer`` covers taken from it (e.g. Alpaca's answer
        over the bundled file)."""
        if newer.first is None or newer.last is None:
            return self
        lo, hi = newer.first, newer.last
        kept = [d for d in self._days.values() if not lo <= d.date <= hi]
        firsts = [d for d in (self._first, lo) if d is not None]
        lasts = [d for d in (self._last, hi) if d is not None]
        # dates between the two ranges are in neither: a plain week, as outside a calendar
        gap = [
            TradingDay(d)
            for d in _dates_between(self._last or lo, lo) + _dates_between(hi, self._first or hi)
            if d.weekday() < 5
        ]
        return Calendar([*kept, *newer._days.values(), *gap], min(firsts), max(lasts))

    # ---------------------------------------------------------------- sessions

    def _bounds(self, day: date) -> _Bounds:
        lo = _ms(day, time(0))
        hi = _ms(day + _ONE_DAY, time(0))
        trading = self.day(day)
        if trading is None:
            return (lo, hi, hi, hi, hi, hi)
        return (
            lo,
            hi,
            _ms(day, trading.session_open),
            _ms(day, trading.open),
            _ms(day, trading.close),
            _ms(day, trading.session_close),
        )

    def _locate(self, ts_ms: int) -> _Bounds:
        key = ts_ms // _DAY_MS
        pair = self._by_utc_day.get(key)
        if pair is None:
            # ET is behind UTC: a UTC day overlaps the ET day before it and its own ET date
            utc_day = datetime.fromtimestamp(key * 86_400, UTC).date()
            pair = (self._bounds(utc_day - _ONE_DAY), self._bounds(utc_day))
            self._by_utc_day[key] = pair
        found = pair[0] if ts_ms < pair[0][1] else pair[1]
        self._seen = found
        return found

    def session_at(self, ts_ms: int) -> Session:
        """The session an epoch-ms time falls in."""
        b = self._seen
        if ts_ms < b[0] or ts_ms >= b[1]:
            b = self._locate(ts_ms)
        if ts_ms < b[3]:
            return _PRE if ts_ms >= b[2] else _CLOSED
        if ts_ms < b[4]:
            return _REGULAR
        if ts_ms < b[5]:
            return _POST
        return _CLOSED

    def is_open(self, ts_ms: int, extended_hours: bool = False) -> bool:
        """Whether orders trade at ``ts_ms``: the regular session, or pre/post with
        ``extended_hours``."""
        session = self.session_at(ts_ms)
        return session is _REGULAR or (extended_hours and session is not _CLOSED)

    def next_open(self, ts_ms: int) -> int:
        """Epoch ms of the first regular open after ``ts_ms`` (strictly)."""
        return self._next(ts_ms, 3)

    def next_close(self, ts_ms: int) -> int:
        """Epoch ms of the first regular close after ``ts_ms`` (strictly): today's while the
        regular session runs."""
        return self._next(ts_ms, 4)

    def next_session_close(self, ts_ms: int) -> int:
        """Epoch ms of the first end of a trading day's extended session (20:00, or 17:00 after an
        early close) after ``ts_ms`` (strictly)."""
        return self._next(ts_ms, 5)

    def day_end(self, ts_ms: int, extended_hours: bool = False) -> int:
        """When a ``day`` order working at ``ts_ms`` expires: the first regular close after it
        (today's while the regular session runs; the next trading day's after it), or with
        ``extended_hours`` the first end of an extended session (20:00 ET, 17:00 after an early
        close)."""
        return self.next_session_close(ts_ms) if extended_hours else self.next_close(ts_ms)

    def clock(self, ts_ms: int) -> MarketClock:
        """What Alpaca's ``GET /v2/clock`` says at ``ts_ms``."""
        return MarketClock(
            ts=ts_ms,
            is_open=self.session_at(ts_ms) is _REGULAR,
            next_open=self.next_open(ts_ms),
            next_close=self.next_close(ts_ms),
        )

    def _next(self, ts_ms: int, which: int) -> int:
        day = et_date(ts_ms)
        for _ in range(_SEARCH_DAYS):
            b = self._bounds(day)
            if b[which] > ts_ms and b[which] < b[1]:
                return b[which]
            day += _ONE_DAY
        raise ValueError(f"no trading day within {_SEARCH_DAYS} days after {ts_ms}")


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, ET).isoformat()


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(text: object, name: str) -> int:
    """An RFC 3339 time (with an offset or ``Z``; nanoseconds allowed) as epoch ms."""
    if not isinstance(text, str):
        raise ValueError(f"{name} is not a string: {text!r}"[:200])
    when = datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00")))
    if when.tzinfo is None:
        raise ValueError(f"{name} has no UTC offset: {text!r}"[:200])
    return int(when.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class MarketClock:
    """Alpaca's ``GET /v2/clock``: the time, whether the regular session runs, and the next
    regular open and close (epoch ms)."""

    ts: int
    is_open: bool
    next_open: int
    next_close: int

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> MarketClock:
        if not isinstance(raw, Mapping):
            raise ValueError("a clock is an object")
        is_open = raw.get("is_open")
        if not isinstance(is_open, bool):
            raise ValueError("is_open is not a boolean")
        return cls(
            ts=parse_time(raw.get("timestamp"), "timestamp"),
            is_open=is_open,
            next_open=parse_time(raw.get("next_open"), "next_open"),
            next_close=parse_time(raw.get("next_close"), "next_close"),
        )

    def to_json(self) -> dict[str, Any]:
        """Alpaca's shape: times in ET with their offset."""
        return {
            "timestamp": _iso(self.ts),
            "is_open": self.is_open,
            "next_open": _iso(self.next_open),
            "next_close": _iso(self.next_close),
        }


def _dates_between(after: date, before: date) -> list[date]:
    """The dates strictly between two dates."""
    out: list[date] = []
    day = after + _ONE_DAY
    while day < before:
        out.append(day)
        day += _ONE_DAY
    return out


def session_problem(
    ts_ms: int,
    extended_hours: bool,
    order_type: str = "market",
    time_in_force: str = "day",
    calendar: Calendar | None = None,
) -> str | None:
    """Why an order at ``ts_ms`` may not trade then, or None when it may.

    Alpaca's rule: outside the regular session only with ``extended_hours``, in the pre- or
    post-market session, and then only a ``limit`` order with time in force ``day`` or ``gtc``."""
    cal = calendar if calendar is not None else bundled()
    session = cal.session_at(ts_ms)
    if session is _REGULAR:
        return None
    when = datetime.fromtimestamp(ts_ms / 1000, ET).strftime("%Y-%m-%d %H:%M ET")
    if session is _CLOSED:
        return f"the market is closed at {when}"
    if not extended_hours:
        return f"{when} is in the {session} session and the order does not allow extended hours"
    if order_type not in EXTENDED_ORDER_TYPES or time_in_force not in EXTENDED_TIME_IN_FORCE:
        return (
            f"{when} is in the {session} session: extended hours take only limit orders with "
            f"time in force day or gtc (not {order_type} {time_in_force})"
        )
    return None


@cache
def bundled() -> Calendar:
    """The calendar shipped with the package (read once)."""
    text = resources.files("flinktrade").joinpath("data", "calendar.json").read_text("utf-8")
    return Calendar.from_json(json.loads(text))


def session_at(ts_ms: int) -> Session:
    """The session of an epoch-ms time by the bundled calendar."""
    return bundled().session_at(ts_ms)
