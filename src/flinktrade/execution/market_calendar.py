"""The market calendar the executor's ``session`` rule judges on: the broker's own when it has
one (Alpaca's ``GET /v2/calendar``), else the fallback: the calendar in effect offline
(``calendars.current``: the file ``flinktrade calendar refresh`` wrote over the bundled one; the
executor passes it), by default the bundled one.

``MarketCalendar.at(ts)`` asks the broker for the calendar of the ET month of ``ts`` (the
broker keeps each answer for a day, so it is refreshed daily) and merges it over the fallback.
When the broker cannot answer (no keys, an error, an unreadable answer) the fallback is used:
logged once per run of failures, and the broker is asked again after ``retry_s`` (never on every
signal). A broker without a calendar (the simulated one) always gets the fallback. Never raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Protocol, runtime_checkable

from flinktrade import sessions
from flinktrade.errors import FlinktradeError

log = logging.getLogger(__name__)

RETRY_S = 300.0
"""After a failed ask, how long the bundled calendar is used before the broker is asked again."""


@runtime_checkable
class CalendarSource(Protocol):
    """A broker that serves the market calendar (``AlpacaBroker.calendar``)."""

    def calendar(self, start: date, end: date) -> sessions.Calendar: ...


def month_of(ts_ms: int) -> tuple[date, date]:
    """The first and last day of the ET month of ``ts_ms``."""
    day = sessions.et_date(ts_ms)
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


class MarketCalendar:
    """The calendar for a signal's time: the broker's month over the fallback."""

    def __init__(
        self,
        broker: object,
        *,
        retry_s: float = RETRY_S,
        monotonic: Callable[[], float] = time.monotonic,
        fallback: Callable[[], sessions.Calendar] = sessions.bundled,
    ) -> None:
        self.source = broker if isinstance(broker, CalendarSource) else None
        self.retry_s = retry_s
        self.monotonic = monotonic
        self.fallback = fallback
        """The calendar without the broker's (asked on each use: it may be refreshed)."""
        self._merged: dict[
            tuple[date, date], tuple[sessions.Calendar, sessions.Calendar, sessions.Calendar]
        ] = {}
        """Per month asked: (the broker's answer, the fallback, the one merged over the other)."""
        self._retry_at = 0.0
        self._failing = False

    @property
    def falling_back(self) -> bool:
        """Whether the last ask failed (the bundled calendar is in use)."""
        return self._failing

    def at(self, ts_ms: int) -> sessions.Calendar:
        """The calendar to judge a time ``ts_ms`` on."""
        fallback = self.fallback()
        if self.source is None or (self._failing and self.monotonic() < self._retry_at):
            return fallback
        start, end = month_of(ts_ms)
        try:
            answer = self.source.calendar(start, end)
        except (FlinktradeError, ValueError) as exc:
            self._retry_at = self.monotonic() + self.retry_s
            if not self._failing:
                log.warning(
                    "executor: the broker's market calendar is unavailable (%s); judging "
                    "sessions on the refreshed or bundled calendar, asking again in %.0fs",
                    exc,
                    self.retry_s,
                )
            self._failing = True
            return fallback
        if self._failing:
            log.info("executor: the broker's market calendar is back")
            self._failing = False
        kept = self._merged.get((start, end))
        if kept is not None and kept[0] is answer and kept[1] is fallback:
            return kept[2]
        merged = fallback.merged(answer)
        if len(self._merged) >= 4:  # a month or two in use at a time: stay bounded
            self._merged.clear()
        self._merged[(start, end)] = (answer, fallback, merged)
        return merged
