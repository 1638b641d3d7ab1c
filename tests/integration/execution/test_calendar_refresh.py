"""``flinktrade calendar refresh`` against the loopback fake of Alpaca (through alpaca-py), whose
calendar differs from the bundled one: it opens Good Friday 2024-03-29, a holiday in the bundled
calendar. After the refresh the backtester (``--market-hours regular``), the simulated broker and
the executor's calendar (the simulated broker serves none) follow the refreshed day; an unreadable
answer leaves the file as it was. Good Friday 09:25-09:34 EDT is 13:25-13:34 UTC."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from flinktrade import sessions
from flinktrade.config import KafkaSettings, Settings
from flinktrade.events import OrderSpec, Side
from flinktrade.execution.brokers.base import OrderRequest, TradeUpdate
from flinktrade.execution.brokers.simulated import SimulatedBroker
from flinktrade.execution.loop import Executor
from flinktrade.execution.settings import (
    ExecutionSettings,
    SimBrokerSettings,
    SimMarketHours,
    SimMatchOn,
)
from flinktrade.sessions import Calendar, Session, TradingDay
from flinktrade.testing.command import run_flinktrade
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

FIRST, LAST = date(2015, 1, 1), date(2030, 12, 31)
GOOD_FRIDAY = date(2024, 3, 29)


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


GOOD_FRIDAY_0930 = utc(2024, 3, 29, 13, 30)


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    days = [*sessions.bundled().days(FIRST, LAST), TradingDay(GOOD_FRIDAY)]
    with FakeAlpacaTrading(calendar=Calendar(days, FIRST, LAST)) as f:
        yield f


def flinktrade(
    *argv: str, cwd: Path, fake: FakeAlpacaTrading | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "FLINKTRADE_STATE_DIR": "state",
        "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never contacted by these
    }
    if fake is not None:
        env |= {
            "APCA_API_KEY_ID": fake.key_id,
            "APCA_API_SECRET_KEY": fake.secret_key,
            "APCA_API_BASE_URL": fake.base_url,
        }
    return run_flinktrade(*argv, env=env, cwd=cwd, timeout=600, script=True)


def backtest_bars(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Ten one-minute bars 09:25..09:34 EDT on Good Friday: five pre-market, five regular on a
    calendar that opens that day, none in a session on the bundled one."""
    rows = ["timestamp,symbol,open,high,low,close,volume"]
    for minute in range(25, 35):
        rows.append(f"2024-03-29T13:{minute:02d}:00Z,AAPL,100,101,99,100.5,1000")
    (cwd / "bars.csv").write_text("\n".join(rows) + "\n")
    return flinktrade(
        "backtest", "--bars-csv", "bars.csv", "--json", "--out", "out",
        "--market-hours", "regular", cwd=cwd,
    )  # fmt: skip


def sim_fills_on_good_friday(state: Path, kafka: KafkaSettings) -> list[TradeUpdate]:
    """A gtc limit buy at 99 on the simulated broker (``market_hours = regular``, matching on
    bars), then a Good Friday 09:30 EDT bar that trades down to 98: the fills it gives."""
    settings = Settings(
        state_dir=state,
        kafka=kafka,
        execution=ExecutionSettings(
            sim=SimBrokerSettings(market_hours=SimMarketHours.REGULAR, match_on=SimMatchOn.BARS)
        ),
    )
    broker = SimulatedBroker(settings)
    seen: list[TradeUpdate] = []
    broker._on_update = seen.append  # what start_updates installs, without the Kafka thread
    try:
        spec = OrderSpec.model_validate(
            {"type": "limit", "limit_price": "99", "time_in_force": "gtc"}
        )
        order = OrderRequest(
            client_order_id="ft-gf", symbol="AAPL", side=Side.BUY, qty=Decimal(10), spec=spec
        )
        broker.submit(order)
        broker._on_price(
            f'{{"symbol": "AAPL", "ts": {GOOD_FRIDAY_0930}, "open": 100, "high": 100,'
            f' "low": 98, "close": 99.5, "volume": 1000, "interval_ms": 60000}}'.encode()
        )
    finally:
        broker.close()
    return [u for u in seen if u.is_fill]


def test_after_a_refresh_the_backtester_and_the_simulated_broker_follow_the_refreshed_day(
    tmp_path: Path, fake: FakeAlpacaTrading, kafka_settings: KafkaSettings
) -> None:
    state = tmp_path / "state"
    # before: the bundled calendar has Good Friday closed
    before = backtest_bars(tmp_path)
    assert before.returncode == 2, before.stderr[-2000:]
    assert "--market-hours regular: none of the 10 bars is in it" in before.stderr
    assert sim_fills_on_good_friday(tmp_path / "other-state", kafka_settings) == []

    refreshed = flinktrade("calendar", "refresh", cwd=tmp_path, fake=fake)
    assert refreshed.returncode == 0, refreshed.stderr[-2000:]
    trading_days = len(sessions.bundled().days(FIRST, LAST)) + 1
    assert refreshed.stdout.strip() == (
        f"wrote state/calendar.json: {trading_days} trading days, 2015-01-02..2030-12-31"
    )
    with fake.lock:
        asked = [path for _, path in fake.requests if path == "/v2/calendar"]
    assert asked == ["/v2/calendar"]
    shown = flinktrade("calendar", "show", "--date", "2024-03-29", cwd=tmp_path)
    assert shown.stdout.splitlines()[-1] == (
        "2024-03-29 Fri: pre 04:00-09:30, regular 09:30-16:00, post 16:00-20:00 ET "
        "(refreshed calendar)"
    ), shown.stdout

    after = backtest_bars(tmp_path)
    assert after.returncode == 0, after.stderr[-2000:]
    assert json.loads(after.stdout.strip().splitlines()[-1])["bars"] == 5  # 09:30..09:34
    fills = sim_fills_on_good_friday(state, kafka_settings)
    assert [(u.order.client_order_id, u.price, u.ts) for u in fills] == [
        ("ft-gf", Decimal(99), GOOD_FRIDAY_0930)
    ]
    # the executor, with a broker that serves no calendar, judges on the refreshed one
    settings = Settings(state_dir=state, kafka=kafka_settings)
    broker = SimulatedBroker(settings)
    executor = Executor(settings, broker)
    try:
        calendar = executor.core.desk.calendar.at(GOOD_FRIDAY_0930)
        assert calendar.session_at(GOOD_FRIDAY_0930) is Session.REGULAR
    finally:
        executor.store.close()
        broker.close()


def test_an_unreadable_answer_is_exit_75_and_leaves_the_file(
    tmp_path: Path, fake: FakeAlpacaTrading
) -> None:
    first = flinktrade("calendar", "refresh", "--start", "2024-03-01", "--end", "2024-03-31",
                       cwd=tmp_path, fake=fake)  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    path = tmp_path / "state" / "calendar.json"
    before = path.read_bytes()
    fake.answer_with(200, b'[{"date": "2024-04-01"}]', content_type="application/json",
                     path="/v2/calendar")  # fmt: skip
    failed = flinktrade("calendar", "refresh", cwd=tmp_path, fake=fake)
    assert failed.returncode == 75, failed.stderr
    [error] = [line for line in failed.stderr.splitlines() if line.strip()]
    assert error.startswith("error: Alpaca calendar: unreadable answer"), error
    assert error.endswith("; state/calendar.json left as it was"), error
    assert path.read_bytes() == before
