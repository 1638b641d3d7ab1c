"""The executor with the Alpaca broker (alpaca-py against the fake) and the market calendar:

- a day limit order expires when the fake's market clock passes the close: the fake sends an
  ``expired`` trade update and the executor's store shows the order expired;
- the ``session`` rule judges on the broker's calendar (``GET /v2/calendar``), here one that
  opens on Good Friday, which the bundled calendar closes: an order the bundled calendar would
  deny is sent; when the calendar call fails the bundled one is used and the order denied.

Times by hand: Tue 2024-01-02 10:00 EST = 15:00 UTC; Good Friday 2024-03-29 11:00 EDT = 15:00
UTC; Good Friday 2025-04-18 11:00 EDT = 15:00 UTC.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from exec_helpers import Env, coid, wait_until

from flinktrade import sessions
from flinktrade.events import OrderSpec, OrderStatus, Side, Signal
from flinktrade.execution.settings import RiskSettings
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

pytestmark = pytest.mark.integration

TUE_10 = 1_704_207_600_000
TUE_CLOSE = 1_704_229_200_000  # 2024-01-02 16:00 EST
GOOD_FRIDAY_2024 = 1_711_724_400_000
GOOD_FRIDAY_2025 = 1_744_988_400_000
QUIET = {"reconcile_interval_s": 1000.0, "account_refresh_s": 1000.0}


def signal(ts: int, spec: OrderSpec, symbol: str = "AAPL") -> Signal:
    bar_ts = ts - 60_000
    return Signal(
        id=Signal.make_id("sessions", symbol, bar_ts), strategy="sessions", symbol=symbol,
        side=Side.BUY, price=Decimal(100), bar_ts=bar_ts, ts=ts, order=spec,
    )  # fmt: skip


def stored_status(env: Env, client_order_id: str) -> tuple[OrderStatus | None, str | None]:
    store = env.store()
    try:
        order = store.get(client_order_id)
        return (None, None) if order is None else (order.status, order.rule)
    finally:
        store.close()


def test_a_day_limit_expires_when_the_fakes_clock_passes_the_close(
    env: Env, fake: FakeAlpacaTrading, start_executor
) -> None:
    fake.set_clock(TUE_10)
    running = start_executor(
        env.settings(risk=RiskSettings(signal_age_from_event_time=False), **QUIET)
    )
    running.started()
    day_limit = signal(TUE_10, OrderSpec(type="limit", limit_price=Decimal(90)))  # rests
    env.produce([day_limit])
    wait_until(
        lambda: any(
            o.client_order_id == coid(day_limit) and o.status == "new"
            for o in list(fake.orders.values())
        ),
        30,
        "the order working at the fake",
    )
    fake.set_clock(TUE_CLOSE - 1)  # 15:59:59.999
    assert "expired" not in [e["event"] for e in fake.events_sent]
    fake.set_clock(TUE_CLOSE)
    wait_until(lambda: stored_status(env, coid(day_limit))[0] is OrderStatus.EXPIRED, 30, "expired")
    running.finish()
    assert [e["event"] for e in fake.events_sent][-1] == "expired"
    assert fake.orders_created(coid(day_limit)) == 1


def test_the_session_rule_judges_on_the_brokers_calendar_and_falls_back_to_the_bundled(
    env: Env, fake: FakeAlpacaTrading, start_executor
) -> None:
    bundled = sessions.bundled()
    assert bundled.session_at(GOOD_FRIDAY_2024) is sessions.Session.CLOSED
    assert bundled.session_at(GOOD_FRIDAY_2025) is sessions.Session.CLOSED
    days = bundled.days(date(2024, 1, 1), date(2025, 12, 31))
    fake.calendar = sessions.Calendar(
        [*days, sessions.TradingDay(date(2024, 3, 29)), sessions.TradingDay(date(2025, 4, 18))]
    )
    fake.set_clock(GOOD_FRIDAY_2024)  # the fake's clock: open (its calendar trades today)
    risk = RiskSettings(signal_age_from_event_time=False)
    running = start_executor(env.settings(risk=risk, **QUIET))  # market_hours auto
    running.started()
    extended = OrderSpec(type="limit", limit_price=Decimal(100), extended_hours=True)
    allowed = signal(GOOD_FRIDAY_2024, extended)
    env.produce([allowed])
    wait_until(lambda: fake.orders_created(coid(allowed)) == 1, 30, "the order at the fake")
    assert stored_status(env, coid(allowed))[1] is None  # not denied

    fake.answer_with(500, b"{}", content_type="application/json", path="/v2/calendar", times=50)
    fallback = signal(GOOD_FRIDAY_2025, extended, symbol="MSFT")
    env.produce([fallback])
    wait_until(
        lambda: stored_status(env, coid(fallback))[0] is OrderStatus.DENIED, 30, "the denial"
    )
    running.finish()
    assert stored_status(env, coid(fallback))[1] == "session"
    assert fake.orders_created(coid(fallback)) == 0
    with fake.lock:
        asked = [path for _, path in fake.requests if path == "/v2/calendar"]
    assert len(asked) == 2  # March 2024 once (kept), April 2025 once (failed, not retried yet)
