"""``flinktrade.calendars``: the refreshed calendar file over the bundled calendar, its atomic
write, and the bundled calendar in place of a missing, unreadable or corrupt file. Dates checked
by hand: Good Friday 2024-03-29 and Independence Day 2024-07-04 are closed in the bundled
calendar, 2024-07-03 closes early at 13:00."""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import pytest

from flinktrade import calendars, sessions
from flinktrade.calendars import Source
from flinktrade.sessions import Calendar, Session, TradingDay


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


GOOD_FRIDAY_11 = utc(2024, 3, 29, 15, 0)  # 11:00 EDT
JULY_4_11 = utc(2024, 7, 4, 15, 0)
CHRISTMAS_2024_11 = utc(2024, 12, 25, 16, 0)  # 11:00 EST


def spring_2024(*opened: date) -> Calendar:
    """An answer for 2024-03-01..2024-04-30 (listed from Friday 03-01 to Tuesday 04-30): the
    bundled days plus ``opened``."""
    start, end = date(2024, 3, 1), date(2024, 4, 30)
    days = [*sessions.bundled().days(start, end), *(TradingDay(d) for d in opened)]
    return Calendar(days, start, end)


def test_without_a_file_the_bundled_calendar_is_in_effect(tmp_path: Path) -> None:
    found = calendars.in_effect(tmp_path)
    assert found.source is Source.BUNDLED and found.problem is None
    assert found.calendar is sessions.bundled()
    assert found.path == tmp_path / "calendar.json"
    assert calendars.current(tmp_path).session_at(GOOD_FRIDAY_11) is Session.CLOSED


def test_the_refreshed_file_wins_over_the_bundled_calendar_in_its_range(tmp_path: Path) -> None:
    calendars.write(tmp_path, calendars.clipped(spring_2024(date(2024, 3, 29))))
    found = calendars.in_effect(tmp_path)
    assert found.source is Source.REFRESHED and found.refreshed is not None
    assert (found.refreshed.first, found.refreshed.last) == (date(2024, 3, 1), date(2024, 4, 30))
    cal = calendars.current(tmp_path)
    assert cal.session_at(GOOD_FRIDAY_11) is Session.REGULAR
    assert cal.session_at(utc(2024, 3, 30, 15, 0)) is Session.CLOSED  # a Saturday in the file
    # outside the file's range the bundled calendar's days stay
    assert cal.session_at(JULY_4_11) is Session.CLOSED
    assert cal.session_at(CHRISTMAS_2024_11) is Session.CLOSED
    assert cal.day(date(2024, 7, 3)) == TradingDay(
        date(2024, 7, 3), close=sessions.EARLY_CLOSE, session_close=sessions.EARLY_POST_CLOSE
    )
    assert calendars.current(tmp_path) is cal  # read and merged once while the file is the same


def test_the_file_has_the_bundled_files_format(tmp_path: Path) -> None:
    bundled_text = resources.files("flinktrade").joinpath("data", "calendar.json").read_text()
    assert calendars.dumps(calendars.clipped(sessions.bundled())) == bundled_text
    written = calendars.write(tmp_path, calendars.clipped(spring_2024()))
    lines = written.read_text().splitlines()
    assert lines[0] == "[" and lines[-1] == "]"
    assert lines[1] == (
        '{"date":"2024-03-01","open":"09:30","close":"16:00",'
        '"session_open":"0400","session_close":"2000"},'
    )


def test_clipped_keeps_the_dates_the_answer_lists(tmp_path: Path) -> None:
    # asked for 2024-03-30 (a Saturday) .. 2024-04-07 (a Sunday): trading days 04-01..04-05
    answer = Calendar(sessions.bundled().days(date(2024, 3, 30), date(2024, 4, 7)),
                      date(2024, 3, 30), date(2024, 4, 7))  # fmt: skip
    kept = calendars.clipped(answer)
    assert (kept.first, kept.last) == (date(2024, 4, 1), date(2024, 4, 5))
    with pytest.raises(ValueError, match="no trading day is listed"):
        calendars.clipped(Calendar([], date(2024, 3, 30), date(2024, 3, 31)))


def test_a_newer_file_is_read_again(tmp_path: Path) -> None:
    calendars.write(tmp_path, calendars.clipped(spring_2024()))
    assert calendars.current(tmp_path).session_at(GOOD_FRIDAY_11) is Session.CLOSED
    calendars.write(tmp_path, calendars.clipped(spring_2024(date(2024, 3, 29))))
    assert calendars.current(tmp_path).session_at(GOOD_FRIDAY_11) is Session.REGULAR


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[\n{not json", "not a calendar file"),
        ('[{"date": "2024-03-29"}]', "not a calendar file: open is not a string"),
        ("[]", "not a calendar file: no trading day is listed"),
        ('{"days": []}', "not a calendar file: a calendar is a list of days"),
    ],
)
def test_a_corrupt_file_falls_back_to_the_bundled_calendar_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, problem: str
) -> None:
    (tmp_path / "calendar.json").write_text(text)
    with caplog.at_level(logging.ERROR, logger="flinktrade.calendars"):
        first = calendars.in_effect(tmp_path)
        again = calendars.in_effect(tmp_path)
    assert first.calendar is sessions.bundled() and again.calendar is sessions.bundled()
    assert first.source is Source.BUNDLED and first.problem is not None
    assert first.problem.startswith(problem), first.problem
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert str(tmp_path / "calendar.json") in errors[0] and "bundled calendar" in errors[0]
    # written anew, it is used
    calendars.write(tmp_path, calendars.clipped(spring_2024(date(2024, 3, 29))))
    assert calendars.current(tmp_path).session_at(GOOD_FRIDAY_11) is Session.REGULAR


def test_an_unreadable_file_falls_back_to_the_bundled_calendar(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "calendar.json").mkdir()  # a directory where the file should be
    with caplog.at_level(logging.ERROR, logger="flinktrade.calendars"):
        found = calendars.in_effect(tmp_path)
    assert found.calendar is sessions.bundled()
    assert found.problem is not None and found.problem.startswith("cannot read it")
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = calendars.write(tmp_path, calendars.clipped(spring_2024()))
    before = path.read_bytes()

    def fail(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space left"):
        calendars.write(tmp_path, calendars.clipped(spring_2024(date(2024, 3, 29))))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calendar.json"]


def test_a_write_replaces_the_file_by_a_rename(tmp_path: Path) -> None:
    """A reader holding the old file keeps reading the old file whole: the new one is another
    inode renamed over it, never the old one rewritten in place."""
    path = calendars.write(tmp_path, calendars.clipped(spring_2024()))
    with path.open("rb") as reader:
        old = path.stat().st_ino
        calendars.write(tmp_path, calendars.clipped(spring_2024(date(2024, 3, 29))))
        assert path.stat().st_ino != old
        assert calendars.loads(reader.read().decode()).day(date(2024, 3, 29)) is None
    assert calendars.loads(path.read_text()).day(date(2024, 3, 29)) is not None


def test_describe_day_names_the_sessions_and_the_calendar(tmp_path: Path) -> None:
    calendars.write(tmp_path, calendars.clipped(spring_2024(date(2024, 3, 29))))
    found = calendars.in_effect(tmp_path)
    assert calendars.describe_day(found, date(2024, 3, 29)) == (
        "2024-03-29 Fri: pre 04:00-09:30, regular 09:30-16:00, post 16:00-20:00 ET "
        "(refreshed calendar)"
    )
    assert calendars.describe_day(found, date(2024, 3, 30)) == (
        "2024-03-30 Sat: closed (weekend; refreshed calendar)"
    )
    assert calendars.describe_day(found, date(2024, 7, 3)) == (
        "2024-07-03 Wed: pre 04:00-09:30, regular 09:30-13:00, early close, post 13:00-17:00 ET "
        "(bundled calendar)"
    )
    assert calendars.describe_day(found, date(2024, 7, 4)) == (
        "2024-07-04 Thu: closed (holiday; bundled calendar)"
    )
    assert calendars.describe_day(found, date(2031, 1, 6)).endswith(
        "(outside both calendars: a plain week is assumed)"
    )
