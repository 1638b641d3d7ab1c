"""A backtest's report names the market calendar it judged sessions on: the bundled one, the one
refreshed into the state dir, or the bundled one in place of a refreshed file it could not use;
in the ``--json`` summary and as a line of ``report.html``'s settings (``optimize``: of
``optimize.html``'s)."""

from __future__ import annotations

import html
import json
import subprocess
from datetime import date
from pathlib import Path

from flinktrade import calendars, sessions
from flinktrade.sessions import Calendar
from flinktrade.testing.command import run_flinktrade


def _backtest(cwd: Path, command: str = "backtest") -> tuple[str, str]:
    """``flinktrade backtest`` (or ``optimize``) on ten bars with the state dir ``state``: the
    ``calendar`` of its ``--json`` summary and its report page."""
    rows = ["timestamp,symbol,open,high,low,close,volume"]
    rows += [f"2024-03-11T13:{m:02d}:00Z,AAPL,100,101,99,100.5,1000" for m in range(25, 35)]
    (cwd / "bars.csv").write_text("\n".join(rows) + "\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "FLINKTRADE_STATE_DIR": "state",
    }
    argv = [command, "--bars-csv", "bars.csv", "--json", "--out", "out"]
    if command == "optimize":
        argv += ["--grid", "fast=2:3:1", "--param", "slow=4", "--jobs", "1"]
    done: subprocess.CompletedProcess[str] = run_flinktrade(
        *argv, env=env, cwd=cwd, timeout=600, script=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary.get("bars", 10) == 10
    page = "optimize.html" if command == "optimize" else "report.html"
    return summary["calendar"], (cwd / "out" / page).read_text()


def test_the_report_names_the_bundled_calendar_without_a_refreshed_file(tmp_path: Path) -> None:
    line, page = _backtest(tmp_path)
    bundled = sessions.bundled()
    assert line == f"bundled, {bundled.first}..{bundled.last}"
    assert f"<th>calendar</th><td>{html.escape(line)}</td>" in page


def test_the_reports_name_the_refreshed_calendar_and_its_file(tmp_path: Path) -> None:
    year = sessions.bundled().days(date(2024, 1, 1), date(2024, 12, 31))
    written = calendars.write(tmp_path / "state", Calendar(year, year[0].date, year[-1].date))
    for command in ("backtest", "optimize"):
        line, page = _backtest(tmp_path, command)
        assert line.startswith(f"refreshed from Alpaca, {year[0].date}..{year[-1].date} (")
        assert f"{written.relative_to(tmp_path)}, written " in line
        assert f"<th>calendar</th><td>{html.escape(line)}</td>" in page


def test_a_refreshed_file_it_could_not_use_is_named_with_why(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / calendars.FILE_NAME).write_text("not json")
    line, page = _backtest(tmp_path)
    bundled = sessions.bundled()
    assert line.startswith(
        f"bundled, {bundled.first}..{bundled.last}; state/calendar.json not used"
    )
    assert "not a calendar file" in line
    assert f"<th>calendar</th><td>{html.escape(line)}</td>" in page
