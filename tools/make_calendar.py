"""Write ``src/flinktrade/data/calendar.json``: the NYSE calendar in the shape of Alpaca's
``GET /v2/calendar`` answer, one trading day per line.

Run offline, in a throw-away venv, never as part of flinktrade (exchange-calendars is not one of
its dependencies)::

    python3 -m venv /tmp/calendar-venv
    /tmp/calendar-venv/bin/pip install exchange-calendars==4.13.2
    /tmp/calendar-venv/bin/python tools/make_calendar.py --first-year 2015 --last-year 2030

Days and regular hours come from exchange-calendars' ``XNYS`` (holidays, early closes at 13:00,
special closings such as national days of mourning). The extended sessions are Alpaca's:
``session_open`` 04:00 and ``session_close`` 20:00 ET, 17:00 after an early close. Check the
result against the dates in ``tests/unit/test_sessions.py`` (each checked by hand); a closing
announced after the library's release must be added by hand (``--closed YYYY-MM-DD``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import exchange_calendars as xcals  # type: ignore[import-not-found]

OUT = Path(__file__).resolve().parent.parent / "src" / "flinktrade" / "data" / "calendar.json"
NY = "America/New_York"


def trading_days(first_year: int, last_year: int, closed: set[str]) -> list[dict[str, str]]:
    cal = xcals.get_calendar("XNYS", start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    days = []
    for session, row in cal.schedule.iterrows():
        day = session.date().isoformat()
        if day in closed:
            continue
        opens = row["open"].tz_convert(NY).time()
        closes = row["close"].tz_convert(NY).time()
        early = closes < dt.time(16, 0)
        days.append(
            {
                "date": day,
                "open": opens.strftime("%H:%M"),
                "close": closes.strftime("%H:%M"),
                "session_open": "0400",
                "session_close": "1700" if early else "2000",
            }
        )
    return days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-year", type=int, default=2015)
    parser.add_argument("--last-year", type=int, default=2030)
    parser.add_argument("--closed", action="append", default=[], help="An extra closed day.")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    days = trading_days(args.first_year, args.last_year, set(args.closed))
    lines = ",\n".join(json.dumps(day, separators=(",", ":")) for day in days)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"[\n{lines}\n]\n", encoding="utf-8")
    print(f"{args.out}: {len(days)} trading days, {days[0]['date']}..{days[-1]['date']}")  # noqa: T201


if __name__ == "__main__":
    main()
