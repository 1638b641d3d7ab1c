"""The fake trading API expires day orders at the session end of its calendar, as Alpaca does,
driven through alpaca-py: the test moves the fake's market clock (no sleeping), the orders'
status becomes ``expired`` and an ``expired`` trade update is published. Times by hand (EST)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order
from alpaca.trading.requests import LimitOrderRequest

from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

pytestmark = pytest.mark.integration

EARLY_10 = 1_732_892_400_000  # Fri 2024-11-29 10:00 EST, the day after Thanksgiving
EARLY_CLOSE = 1_732_903_200_000  # 2024-11-29 13:00, its early close
EARLY_POST_END = 1_732_917_600_000  # 2024-11-29 17:00, the end of its after-hours


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading(now_ms=EARLY_10) as f:  # fills at 100: a buy limit at 90 rests
        yield f


@pytest.fixture
def client(fake: FakeAlpacaTrading) -> TradingClient:
    return TradingClient(fake.key_id, fake.secret_key, url_override=fake.base_url)


def limit_buy(client: TradingClient, tif: TimeInForce, *, extended: bool = False) -> str:
    order = client.submit_order(
        LimitOrderRequest(
            symbol="IBM", qty=1, side=OrderSide.BUY, time_in_force=tif, limit_price=90,
            extended_hours=extended,
        )
    )  # fmt: skip
    assert isinstance(order, Order)
    return str(order.id)


def status(client: TradingClient, order_id: str) -> OrderStatus:
    order = client.get_order_by_id(order_id)
    assert isinstance(order, Order)
    return order.status


def expired_events(fake: FakeAlpacaTrading) -> list[str]:
    return [e["order"]["id"] for e in fake.events_sent if e["event"] == "expired"]


def test_day_orders_expire_at_the_close_extended_ones_at_the_end_of_after_hours(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    day = limit_buy(client, TimeInForce.DAY)
    extended = limit_buy(client, TimeInForce.DAY, extended=True)
    gtc = limit_buy(client, TimeInForce.GTC)
    fake.wait_for(lambda f: f.open_order_count() == 3 and len(f.events_sent) == 3, 10, "new")
    fake.set_clock(EARLY_CLOSE - 60_000)  # 12:59
    assert [status(client, i) for i in (day, extended, gtc)] == [OrderStatus.NEW] * 3
    fake.set_clock(EARLY_CLOSE)  # 13:00, the early close
    assert [status(client, i) for i in (day, extended, gtc)] == [
        OrderStatus.EXPIRED,
        OrderStatus.NEW,
        OrderStatus.NEW,
    ]
    expired = client.get_order_by_id(day)
    assert isinstance(expired, Order) and expired.expired_at is not None
    assert expired_events(fake) == [day]
    fake.set_clock(EARLY_POST_END)  # 17:00
    assert status(client, extended) is OrderStatus.EXPIRED
    assert status(client, gtc) is OrderStatus.NEW
    assert expired_events(fake) == [day, extended]
    fake.set_clock(EARLY_POST_END + 86_400_000)  # nothing expires twice
    assert expired_events(fake) == [day, extended]


def test_a_day_order_placed_after_the_close_is_the_next_sessions(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    fake.set_clock(EARLY_CLOSE + 60_000)  # 13:01 Friday, after the early close
    order_id = limit_buy(client, TimeInForce.DAY)
    monday_close = 1_733_173_200_000  # Mon 2024-12-02 16:00 EST
    fake.wait_for(lambda f: len(f.events_sent) == 1, 10, "the new event")
    fake.set_clock(monday_close - 1)
    assert status(client, order_id) is OrderStatus.NEW
    fake.set_clock(monday_close)
    assert status(client, order_id) is OrderStatus.EXPIRED


def post_clock(fake: FakeAlpacaTrading, body: Any) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{fake.base_url}/fake/clock",
        data=json.dumps(body).encode(),
        headers={"APCA-API-KEY-ID": fake.key_id, "APCA-API-SECRET-KEY": fake.secret_key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_clock_is_set_from_another_process_with_post_fake_clock(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    order_id = limit_buy(client, TimeInForce.DAY)
    code, clock = post_clock(fake, {"now_ms": EARLY_CLOSE})
    assert code == 200 and clock["is_open"] is False
    assert status(client, order_id) is OrderStatus.EXPIRED
    code, answer = post_clock(fake, {"now_ms": "13:00"})
    assert code == 422 and answer["message"] == "now_ms must be epoch milliseconds"
    assert fake.now_ms == EARLY_CLOSE
