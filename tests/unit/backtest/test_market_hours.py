"""``--market-hours``: the bars a backtest sees, by the session each bar starts in."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from flinktrade import events, sessions
from flinktrade.backtest.loading import MarketHours, in_market_hours
from flinktrade.testing.command import run_flinktrade

MINUTE = 60_000
BUNDLED = sessions.bundled()


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


def bar(ts: int, interval: int = MINUTE) -> events.Bar:
    price = Decimal(100)
    return events.Bar(
        ts=ts, symbol="AAPL", open=price, high=price, low=price, close=price, volume=10,
        interval_ms=interval,
    )  # fmt: skip


# Monday 2024-03-11 (EDT): 03:59 closed, 04:00 pre, 09:29 pre, 09:30 regular, 15:59 regular,
# 16:00 post, 19:59 post, 20:00 closed; then Good Friday 2024-03-29 11:00 (closed)
TIMES = {
    "closed-early": utc(2024, 3, 11, 7, 59),
    "pre-first": utc(2024, 3, 11, 8, 0),
    "pre-last": utc(2024, 3, 11, 13, 29),
    "regular-first": utc(2024, 3, 11, 13, 30),
    "regular-last": utc(2024, 3, 11, 19, 59),
    "post-first": utc(2024, 3, 11, 20, 0),
    "post-last": utc(2024, 3, 11, 23, 59),
    "closed-late": utc(2024, 3, 12, 0, 0),
    "holiday": utc(2024, 3, 29, 15, 0),
}


def names(bars: list[events.Bar]) -> list[str]:
    by_ts = {ts: name for name, ts in TIMES.items()}
    return [by_ts[b.ts] for b in bars]


def test_regular_extended_and_all() -> None:
    bars = [bar(ts) for ts in TIMES.values()]
    assert names(in_market_hours(bars, MarketHours.REGULAR, BUNDLED)) == [
        "regular-first",
        "regular-last",
    ]
    assert names(in_market_hours(bars, MarketHours.EXTENDED, BUNDLED)) == [
        "pre-first", "pre-last", "regular-first", "regular-last", "post-first", "post-last",
    ]  # fmt: skip
    assert in_market_hours(bars, MarketHours.ALL, BUNDLED) is bars


def test_daily_bars_are_whole_sessions_and_always_kept() -> None:
    daily = [bar(utc(2024, 3, 11, 4, 0), 86_400_000), bar(utc(2024, 3, 12, 4, 0), 86_400_000)]
    assert in_market_hours(daily, MarketHours.REGULAR, BUNDLED) == daily


def _flinktrade(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    return run_flinktrade(*argv, env=env, cwd=cwd, timeout=600, script=True)


def test_the_command_filters_before_the_core(tmp_path: Path) -> None:
    # ten one-minute bars 09:25..09:34 EDT on 2024-03-11: five pre-market, five regular
    rows = ["timestamp,symbol,open,high,low,close,volume"]
    for minute in range(25, 35):
        rows.append(f"2024-03-11T13:{minute:02d}:00Z,AAPL,100,101,99,100.5,1000")
    (tmp_path / "bars.csv").write_text("\n".join(rows) + "\n")
    base = ["backtest", "--bars-csv", "bars.csv", "--json", "--out", "out"]
    regular = _flinktrade([*base, "--market-hours", "regular"], tmp_path)
    assert regular.returncode == 0, regular.stderr[-2000:]
    metrics = json.loads(regular.stdout.strip().splitlines()[-1])
    assert metrics["bars"] == 5  # of the ten in the file (the default, all, is the same list)
    bad = _flinktrade([*base, "--market-hours", "night"], tmp_path)
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert bad.returncode == 2 and len(errors) == 1, bad.stderr
    assert "--market-hours must be one of all, regular, extended" in errors[0]
