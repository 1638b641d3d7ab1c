"""The market calendar in effect: the bundled one, with the one last refreshed from Alpaca over it.

``flinktrade calendar refresh`` writes Alpaca's ``GET /v2/calendar`` answer to
``<state dir>/calendar.json`` in the bundled file's format (one trading day per line, Alpaca's
shape). The refreshed file covers the dates from its first listed trading day to its last (what
the answer covered); its modification time is when it was refreshed. ``write`` replaces it
atomically (a temporary file beside it, fsynced, renamed over it): a reader sees the old file or
the new one, never part of one.

``current(state_dir)`` is the calendar the offline parts judge sessions on (the backtester, the
simulated broker, and the executor when the broker serves no calendar): the bundled calendar
(``sessions.bundled()``) with the refreshed file's dates taken from the file. Without the file it
is the bundled calendar; a file that cannot be read or parsed is logged once as an error and the
bundled calendar is used. The file is read again only when it changes (its size, time or inode).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path

from flinktrade import sessions
from flinktrade.sessions import Calendar

log = logging.getLogger(__name__)

FILE_NAME = "calendar.json"
"""The refreshed calendar's file, in the state dir."""


class Source(StrEnum):
    """Where the calendar in effect comes from."""

    BUNDLED = "bundled"
    REFRESHED = "refreshed"


@dataclass(frozen=True)
class InEffect:
    """The calendar in effect and where it comes from."""

    calendar: Calendar
    source: Source
    path: Path
    """The refreshed file (whether or not it exists)."""
    refreshed: Calendar | None = None
    """The refreshed file's own calendar (its range is ``first``..``last``), if it is used."""
    refreshed_at_ms: int | None = None
    """When the refreshed file was written (its modification time, epoch ms)."""
    problem: str | None = None
    """Why the refreshed file is not used although it exists (unreadable, corrupt)."""


def path_in(state_dir: Path) -> Path:
    """Where the refreshed calendar lives."""
    return state_dir / FILE_NAME


def clipped(answer: Calendar) -> Calendar:
    """Alpaca's answer covering only the dates from its first listed trading day to its last:
    the dates around them stay the bundled calendar's. ``ValueError`` if it lists no day."""
    days = answer.days(answer.first, answer.last) if answer.first and answer.last else []
    if not days:
        raise ValueError("no trading day is listed")
    return Calendar(days, days[0].date, days[-1].date)


def dumps(calendar: Calendar) -> str:
    """The bundled file's format: a JSON list, one trading day per line."""
    lines = ",\n".join(json.dumps(day, separators=(",", ":")) for day in calendar.to_json())
    return f"[\n{lines}\n]\n"


def loads(text: str) -> Calendar:
    """A calendar file's days, covering its first listed day to its last. ``ValueError`` for
    anything that is not such a file (not JSON, a bad day, no day)."""
    raw = json.loads(text)
    listed = Calendar.from_json(raw)
    return clipped(listed)


def write(state_dir: Path, calendar: Calendar) -> Path:
    """Replace the refreshed calendar with ``calendar`` atomically; the path written."""
    target = path_in(state_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(dumps(calendar))
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_lock = threading.Lock()
_seen: dict[Path, tuple[tuple[int, int, int], InEffect]] = {}
"""Per refreshed file: its (mtime, size, inode) when read, and what it gave."""


def in_effect(state_dir: Path) -> InEffect:
    """The calendar in effect for ``state_dir``, and where it comes from."""
    path = path_in(state_dir)
    bundled = sessions.bundled()
    try:
        stat = path.stat()
    except FileNotFoundError:
        return InEffect(bundled, Source.BUNDLED, path)
    except OSError as exc:
        return _unused(path, (0, 0, 0), f"cannot read it: {exc.strerror or exc}")
    key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    with _lock:
        kept = _seen.get(path)
    if kept is not None and kept[0] == key:
        return kept[1]
    try:
        refreshed = loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return _unused(path, key, f"cannot read it: {exc.strerror or exc}")
    except (ValueError, UnicodeDecodeError) as exc:
        return _unused(path, key, f"not a calendar file: {str(exc)[:200]}")
    found = InEffect(
        bundled.merged(refreshed),
        Source.REFRESHED,
        path,
        refreshed=refreshed,
        refreshed_at_ms=stat.st_mtime_ns // 1_000_000,
    )
    with _lock:
        _seen[path] = (key, found)
    return found


def _unused(path: Path, key: tuple[int, int, int], problem: str) -> InEffect:
    """The bundled calendar in place of a refreshed file that cannot be used: logged once per
    version of the file."""
    found = InEffect(sessions.bundled(), Source.BUNDLED, path, problem=problem)
    with _lock:
        kept = _seen.get(path)
        _seen[path] = (key, found)
    if kept is None or kept[0] != key or kept[1].problem != problem:
        log.error(
            "market calendar: %s: %s; using the bundled calendar "
            "(`flinktrade calendar refresh` writes it anew)",
            path,
            problem,
        )
    return found


def current(state_dir: Path) -> Calendar:
    """The calendar to judge sessions on: the refreshed file over the bundled calendar."""
    return in_effect(state_dir).calendar


def refreshed_at(found: InEffect) -> str:
    """When the refreshed file was written, in UTC, for people."""
    if found.refreshed_at_ms is None:
        return "-"
    return datetime.fromtimestamp(found.refreshed_at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def summary(found: InEffect) -> str:
    """Which calendar is in effect, in one line for people and reports: ``refreshed from Alpaca,
    <first>..<last> (<file>, written <when>)`` or ``bundled, <first>..<last>``."""
    refreshed = found.refreshed
    if refreshed is not None:
        return (
            f"refreshed from Alpaca, {refreshed.first}..{refreshed.last} "
            f"({found.path}, written {refreshed_at(found)})"
        )
    bundled = sessions.bundled()
    return f"bundled, {bundled.first}..{bundled.last}"


def describe_day(found: InEffect, day: date) -> str:
    """One line for people: the sessions of ``day`` (ET), and which calendar says so."""
    refreshed = found.refreshed
    if refreshed is not None and refreshed.covers(day):
        by = "refreshed calendar"
    elif sessions.bundled().covers(day):
        by = "bundled calendar"
    else:
        by = "outside both calendars: a plain week is assumed"
    trading = found.calendar.day(day)
    if trading is None:
        why = "weekend" if day.weekday() >= 5 else "holiday"
        return f"{day} {day:%a}: closed ({why}; {by})"
    early = ", early close" if trading.early_close else ""
    return (
        f"{day} {day:%a}: pre {trading.session_open:%H:%M}-{trading.open:%H:%M}, "
        f"regular {trading.open:%H:%M}-{trading.close:%H:%M}{early}, "
        f"post {trading.close:%H:%M}-{trading.session_close:%H:%M} ET ({by})"
    )
