"""Replace on the live path (issue 19): ``AlpacaBroker.replace`` through alpaca-py against the
loopback fake of Alpaca's trading API.

The old order is looked up by its ``client_order_id`` and ``PATCH``ed with the new id and fields;
the fake books a new order under the new id and ends the old one ``replaced`` (CANCELED to us).
The answers map as a submit's: an id already used is ``OrderExists``, an order that is not open
(or unknown, or a fractional qty alpaca-py cannot carry) is ``OrderRefused`` with nothing
changed, a gateway's 502 is ``OutcomeUnknown`` and the new id's look-up says what happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from flinktrade.events import OrderSpec, OrderStatus, Side
from flinktrade.execution.brokers.alpaca import AlpacaBroker
from flinktrade.execution.brokers.base import (
    OrderExists,
    OrderRefused,
    OrderRequest,
    OutcomeUnknown,
)
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

D = Decimal
LIMIT = OrderSpec(type="limit", limit_price=D(105), time_in_force="gtc")  # above the price


@pytest.fixture
def unique_fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading(fill_price=D("100.25"), enforce_unique=True) as f:
        yield f


@pytest.fixture
def alpaca(unique_fake: FakeAlpacaTrading) -> Iterator[AlpacaBroker]:
    fake = unique_fake
    broker = AlpacaBroker(
        fake.key_id, fake.secret_key, base_url=fake.base_url, stream_url=fake.stream_url,
        timeout_s=2.0,
    )  # fmt: skip
    yield broker
    broker.close()


def test_alpaca_replace_books_the_new_id_with_the_new_fields_and_ends_the_old(
    unique_fake: FakeAlpacaTrading, alpaca: AlpacaBroker
) -> None:
    fake = unique_fake
    alpaca.submit(OrderRequest("ft-r-1", "AAPL", Side.SELL, qty=D(2), spec=LIMIT))
    new = alpaca.replace("ft-r-1", "ft-r-1-r1", qty=D(5), limit_price=D("106.5"))
    assert new.client_order_id == "ft-r-1-r1"
    assert new.qty == D(5) and new.limit_price == D("106.5") and not new.status.final
    old = fake.by_client_id["ft-r-1"]
    assert old.status == "replaced" and old.replaced_by == new.id
    booked = fake.by_client_id["ft-r-1-r1"]
    assert (booked.qty, booked.limit_price, booked.side) == (D(5), D("106.5"), "sell")
    assert booked.replaces == old.id
    looked_up = alpaca.get_order("ft-r-1")
    assert looked_up is not None and looked_up.status == OrderStatus.CANCELED
    assert looked_up.broker_status == "replaced"


def test_alpaca_replace_answers_exists_refused_or_unknown(
    unique_fake: FakeAlpacaTrading, alpaca: AlpacaBroker
) -> None:
    fake = unique_fake
    for name in ("ft-r-a", "ft-r-b"):
        alpaca.submit(OrderRequest(name, "AAPL", Side.SELL, qty=D(2), spec=LIMIT))
    with pytest.raises(OrderExists):
        alpaca.replace("ft-r-a", "ft-r-b", qty=D(3))  # the new id is used already
    assert fake.by_client_id["ft-r-a"].status == "new"
    with pytest.raises(OrderRefused, match="whole share"):
        alpaca.replace("ft-r-a", "ft-r-a-r1", qty=D("1.5"))
    with pytest.raises(OrderRefused, match="not open"):
        alpaca.replace("ft-no-such-order", "ft-x-r1", qty=D(3))  # Alpaca's 404 on the look-up
    with pytest.raises(OrderRefused, match="HTTP 422"):
        alpaca.replace("ft-r-a", "ft-r-a-r1", stop_price=D(90))  # a limit order has no stop
    assert "ft-r-a-r1" not in fake.by_client_id
    assert fake.by_client_id["ft-r-a"].status == "new"  # nothing refused changed anything

    old = fake.by_client_id["ft-r-b"]
    fake.answer_with(502, method="PATCH", path=f"/v2/orders/{old.id}")
    with pytest.raises(OutcomeUnknown, match="HTTP 502"):
        alpaca.replace("ft-r-b", "ft-r-b-r1", qty=D(4))
    assert alpaca.get_order("ft-r-b-r1") is None  # the gateway's page replaced nothing
    assert alpaca.replace("ft-r-b", "ft-r-b-r1", qty=D(4)).qty == D(4)  # asked again: safe
    with pytest.raises(OrderRefused, match="not open"):
        alpaca.replace("ft-r-b", "ft-r-b-r2", qty=D(6))  # replaced already: over
    assert fake.by_client_id["ft-r-b-r1"].qty == D(4)
