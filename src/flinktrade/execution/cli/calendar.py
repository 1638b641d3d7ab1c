"""The ``calendar`` group: ``refresh`` (Alpaca's market calendar into the state dir,
``execution.calendar_refresh``) and ``show`` (the calendar in effect, ``flinktrade.calendars``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from flinktrade import calendars, sessions
from flinktrade.config import load_settings
from flinktrade.errors import ConfigError
from flinktrade.execution.cli.common import out


def _date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} must be a date YYYY-MM-DD, not {text!r}") from None


def calendar_refresh(
    start: Annotated[
        str | None, typer.Option("--start", help="First date asked for, YYYY-MM-DD.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Last date asked for, YYYY-MM-DD.")
    ] = None,
) -> None:
    """Fetch Alpaca's market calendar (the configured keys) into <state dir>/calendar.json.

    The backtester, the simulated broker and the executor's fallback follow it over the bundled
    calendar. Default range 2015-01-01..2030-12-31, kept to the days Alpaca's answer covers; on
    any error the file already there is left as it was."""
    from flinktrade.execution.calendar_refresh import DEFAULT_END, DEFAULT_START, refresh

    first = _date(start, "--start") or DEFAULT_START
    last = _date(end, "--end") or DEFAULT_END
    done = refresh(load_settings(), first, last)
    cal = done.calendar
    count = len(cal.days(cal.first, cal.last)) if cal.first and cal.last else 0
    out.print(
        f"wrote {done.path}: {count} trading days, {cal.first}..{cal.last}",
        highlight=False,
        soft_wrap=True,
    )


def calendar_show(
    day: Annotated[
        str | None, typer.Option("--date", help="Also print this date's sessions, YYYY-MM-DD.")
    ] = None,
) -> None:
    """Print which market calendar is in effect (bundled or refreshed) and a date's sessions."""
    wanted = _date(day, "--date")
    found = calendars.in_effect(load_settings().state_dir)
    bundled = sessions.bundled()
    lines = [f"calendar in effect: {calendars.summary(found)}"]
    if found.refreshed is not None:
        lines.append(f"outside it: the bundled calendar, {bundled.first}..{bundled.last}")
    else:
        lines.append(
            f"{found.path} is not used: {found.problem}"
            if found.problem
            else f"no {found.path}: `flinktrade calendar refresh` writes it from Alpaca"
        )
    if wanted is not None:
        lines.append(calendars.describe_day(found, wanted))
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True)


def calendar_app() -> typer.Typer:
    """The ``calendar`` command group."""
    group = typer.Typer(
        help="The market calendar: refresh it from Alpaca, show the one in effect.",
        no_args_is_help=True,
    )
    group.command("refresh")(calendar_refresh)
    group.command("show")(calendar_show)
    return group
