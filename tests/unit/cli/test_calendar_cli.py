"""``flinktrade calendar refresh|show`` as a user meets them (a process): bad arguments and
missing keys are one ``error:`` line and exit 2, an unreachable Alpaca exit 75, and the file
already there is left as it was on any error. A refresh that reaches Alpaca is in
tests/integration/execution/test_calendar_refresh.py (the fake Alpaca)."""

from __future__ import annotations

import socket
import subprocess
from datetime import date
from pathlib import Path

from flinktrade import calendars, sessions
from flinktrade.sessions import Calendar, TradingDay
from flinktrade.testing.command import run_flinktrade


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _run(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "FLINKTRADE_STATE_DIR": "state"}
    return run_flinktrade(*argv, env={**base, **env}, cwd=cwd, timeout=120)


def _errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def _written(state: Path) -> Path:
    """A refreshed file for March 2024 with Good Friday open, as an earlier refresh left it."""
    start, end = date(2024, 3, 1), date(2024, 3, 31)
    days = [*sessions.bundled().days(start, end), TradingDay(date(2024, 3, 29))]
    return calendars.write(state, calendars.clipped(Calendar(days, start, end)))


def test_bad_arguments_and_missing_keys_are_one_line_and_exit_2(tmp_path: Path) -> None:
    path = _written(tmp_path / "state")
    before = path.read_bytes()
    keys = {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s"}
    cases = [
        (["--start", "2024-13-01"], keys, "error: --start must be a date YYYY-MM-DD, not '2024-13-01'"),
        (["--start", "2024-05-01", "--end", "2024-04-01"], keys,
         "error: --start 2024-05-01 is after --end 2024-04-01"),
        ([], {}, "error: calendar refresh needs Alpaca's keys: set APCA_API_KEY_ID and "
                 "APCA_API_SECRET_KEY"),
    ]  # fmt: skip
    for args, env, line in cases:
        result = _run("calendar", "refresh", *args, cwd=tmp_path, **env)
        assert result.returncode == 2 and _errors(result) == [line], (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert path.read_bytes() == before


def test_an_unreachable_alpaca_is_exit_75_and_the_file_is_left_as_it_was(tmp_path: Path) -> None:
    path = _written(tmp_path / "state")
    before = path.read_bytes()
    result = _run(
        "calendar", "refresh", cwd=tmp_path,
        APCA_API_KEY_ID="key-id-x", APCA_API_SECRET_KEY="secret-never-printed",
        APCA_API_BASE_URL=f"http://127.0.0.1:{_closed_port()}",
    )  # fmt: skip
    assert result.returncode == 75, result.stderr
    [line] = _errors(result)
    assert line.startswith("error: Alpaca calendar:") and line.endswith(
        f"; {path.relative_to(tmp_path)} left as it was"
    ), line
    assert "secret-never-printed" not in result.stderr + result.stdout
    assert path.read_bytes() == before


def test_show_names_the_calendar_in_effect_and_a_dates_sessions(tmp_path: Path) -> None:
    bundled = _run("calendar", "show", "--date", "2024-03-29", cwd=tmp_path)
    assert bundled.returncode == 0, bundled.stderr
    assert bundled.stdout.splitlines() == [
        "calendar in effect: bundled, 2015-01-01..2030-12-31",
        "no state/calendar.json: `flinktrade calendar refresh` writes it from Alpaca",
        "2024-03-29 Fri: closed (holiday; bundled calendar)",
    ]
    _written(tmp_path / "state")
    refreshed = _run("calendar", "show", "--date", "2024-03-29", cwd=tmp_path)
    assert refreshed.returncode == 0, refreshed.stderr
    first, outside, day = refreshed.stdout.splitlines()
    assert first.startswith(
        "calendar in effect: refreshed from Alpaca, 2024-03-01..2024-03-29 "
        "(state/calendar.json, written "
    ), first
    assert outside == "outside it: the bundled calendar, 2015-01-01..2030-12-31"
    assert day == (
        "2024-03-29 Fri: pre 04:00-09:30, regular 09:30-16:00, post 16:00-20:00 ET "
        "(refreshed calendar)"
    )
    (tmp_path / "state" / "calendar.json").write_text("[{")
    corrupt = _run("calendar", "show", cwd=tmp_path)
    assert corrupt.returncode == 0, corrupt.stderr
    assert corrupt.stdout.splitlines()[1].startswith(
        "state/calendar.json is not used: not a calendar file:"
    )
    assert len([e for e in _errors(corrupt) if " ERROR " in e]) == 1, corrupt.stderr
    bad = _run("calendar", "show", "--date", "29.03.2024", cwd=tmp_path)
    assert bad.returncode == 2 and _errors(bad) == [
        "error: --date must be a date YYYY-MM-DD, not '29.03.2024'"
    ]
