"""alpaca-py's TradingClient and TradingStream against the fake's order model over HTTP and
WebSocket: every order class with its legs through alpaca-py's request classes, Alpaca's refusals
as alpaca-py's APIError (code and message), legs going live and cancelling each other on the
trade_updates stream, a trailing stop's moving mark, replace, and nested order listings."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    OrderClass,
    OrderSide,
    OrderStatus,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Order, TradeUpdate
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from alpaca.trading.stream import TradingStream

from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

pytestmark = pytest.mark.integration

D = Decimal


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading(fill_price=D(100)) as f:
        yield f


@pytest.fixture
def client(fake: FakeAlpacaTrading) -> TradingClient:
    return TradingClient(fake.key_id, fake.secret_key, url_override=fake.base_url)


class Updates:
    """alpaca-py's TradingStream on its own thread, collecting (event, client_order_id)."""

    def __init__(self, fake: FakeAlpacaTrading) -> None:
        self.fake = fake
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.stream = TradingStream(fake.key_id, fake.secret_key, url_override=fake.stream_url)
        self.stream.subscribe_trade_updates(self._on_update)
        self.thread = threading.Thread(target=self.stream.run, daemon=True)

    async def _on_update(self, update: TradeUpdate) -> None:
        with self._lock:
            self.seen.append((str(update.event), update.order.client_order_id))

    def events(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.seen)

    def wait_for(self, *wanted: tuple[str, str]) -> None:
        """Wait until every ``wanted`` (event, client_order_id) has arrived."""
        self.fake.wait_for(
            lambda _: all(w in self.events() for w in wanted), what=f"trade updates {wanted}"
        )


@pytest.fixture
def updates(fake: FakeAlpacaTrading) -> Iterator[Updates]:
    watcher = Updates(fake)
    watcher.thread.start()
    fake.wait_for(lambda f: f.stream_listeners == 1, what="the stream listening")
    yield watcher
    watcher.stream.stop()
    fake.disconnect_stream()  # else alpaca-py notices the stop only after its 5 s receive timeout
    watcher.thread.join(10)
    assert not watcher.thread.is_alive()


def bracket_buy(**fields: Any) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="AAPL", qty=10, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
        order_class=OrderClass.BRACKET, client_order_id="entry-1",
        take_profit=TakeProfitRequest(limit_price=110),
        stop_loss=StopLossRequest(stop_price=95), **fields,
    )  # fmt: skip


def submitted(client: TradingClient, request: Any) -> Order:
    order = client.submit_order(request)
    assert isinstance(order, Order)
    return order


def test_a_bracket_fills_its_entry_then_its_stop_loss_cancels_the_take_profit(
    fake: FakeAlpacaTrading, client: TradingClient, updates: Updates
) -> None:
    entry = submitted(client, bracket_buy())
    assert entry.order_class == OrderClass.BRACKET and entry.legs is not None
    take, stop = entry.legs
    assert (take.status, stop.status) == (OrderStatus.HELD, OrderStatus.HELD)
    assert (take.limit_price, stop.stop_price) == ("110", "95")
    assert len({entry.id, take.id, stop.id}) == 3
    assert entry.client_order_id not in (take.client_order_id, stop.client_order_id)

    updates.wait_for(
        ("fill", "entry-1"), ("new", take.client_order_id), ("new", stop.client_order_id)
    )
    fake.push_price("AAPL", D("94.5"))
    updates.wait_for(("fill", stop.client_order_id), ("canceled", take.client_order_id))
    assert client.get_order_by_id(take.id).status == OrderStatus.CANCELED
    filled = client.get_order_by_id(stop.id)
    assert (filled.status, filled.filled_avg_price) == (OrderStatus.FILLED, "94.5")
    assert fake.position_qty() == {}


def test_nested_listing_rolls_legs_up_under_their_parent(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    fake.auto_fill = False
    entry = submitted(client, bracket_buy())
    flat = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert len(flat) == 3 and all(o.legs is None for o in flat if isinstance(o, Order))
    (nested,) = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True))
    assert isinstance(nested, Order) and nested.id == entry.id and nested.legs is not None
    assert [leg.status for leg in nested.legs] == [OrderStatus.HELD, OrderStatus.HELD]
    one = client.get_order_by_id(entry.id, GetOrderByIdRequest(nested=True))
    assert isinstance(one, Order) and one.legs is not None and len(one.legs) == 2

    client.cancel_order_by_id(entry.id)
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []
    legs = [client.get_order_by_id(leg.id) for leg in one.legs]
    assert [leg.status for leg in legs if isinstance(leg, Order)] == [OrderStatus.CANCELED] * 2


def test_an_oco_exit_pair_and_an_oto_are_accepted_with_their_legs(
    fake: FakeAlpacaTrading, client: TradingClient, updates: Updates
) -> None:
    fake.set_position("MSFT", D(5))
    oco = submitted(
        client,
        LimitOrderRequest(
            symbol="MSFT", qty=5, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO, client_order_id="exit-1",
            take_profit=TakeProfitRequest(limit_price=120),
            stop_loss=StopLossRequest(stop_price=90, limit_price=89),
        ),
    )  # fmt: skip
    assert (oco.order_class, oco.type, oco.limit_price) == (OrderClass.OCO, "limit", "120")
    assert oco.legs is not None
    (stop,) = oco.legs
    assert (stop.type, stop.stop_price, stop.limit_price) == ("stop_limit", "90", "89")
    fake.push_price("MSFT", D(121))
    updates.wait_for(("fill", "exit-1"), ("canceled", stop.client_order_id))
    assert fake.position_qty() == {}

    oto = submitted(
        client,
        LimitOrderRequest(
            symbol="NVDA", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
            limit_price=50, order_class=OrderClass.OTO,
            stop_loss=StopLossRequest(stop_price=45),
        ),
    )  # fmt: skip
    assert oto.order_class == OrderClass.OTO and oto.legs is not None and len(oto.legs) == 1


@pytest.mark.parametrize(
    "request_",
    [
        StopOrderRequest(
            symbol="AMD", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, stop_price=105
        ),
        StopLimitOrderRequest(
            symbol="AMD",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            stop_price=105,
            limit_price=106,
        ),
        LimitOrderRequest(
            symbol="AMD",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=99.5,
            extended_hours=True,
        ),
        MarketOrderRequest(
            symbol="AMD", notional=250, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        ),
        MarketOrderRequest(
            symbol="AMD", qty=0.5, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        ),
    ],
    ids=["stop", "stop_limit", "extended_limit", "notional", "fractional"],
)
def test_each_order_type_is_accepted(client: TradingClient, request_: Any) -> None:
    order = submitted(client, request_)
    assert order.symbol == "AMD" and order.order_class == OrderClass.SIMPLE
    assert order.type == request_.type


def test_a_trailing_stop_answers_its_mark_and_moves_it(
    fake: FakeAlpacaTrading, client: TradingClient, updates: Updates
) -> None:
    fake.set_position("TSLA", D(3))
    order = submitted(
        client,
        TrailingStopOrderRequest(
            symbol="TSLA", qty=3, side=OrderSide.SELL, time_in_force=TimeInForce.GTC,
            trail_percent=5, client_order_id="trail-1",
        ),
    )  # fmt: skip
    assert (order.hwm, order.stop_price, order.trail_percent) == ("100", "95", "5")
    fake.push_price("TSLA", D(120))
    moved = client.get_order_by_id(order.id)
    assert isinstance(moved, Order) and (moved.hwm, moved.stop_price) == ("120", "114")
    fake.push_price("TSLA", D(113))
    updates.wait_for(("fill", "trail-1"))
    assert client.get_order_by_id(order.id).filled_avg_price == "113"


def test_replace_gives_a_new_order_that_replaces_the_old_one(
    fake: FakeAlpacaTrading, client: TradingClient, updates: Updates
) -> None:
    old = submitted(
        client,
        LimitOrderRequest(
            symbol="META", qty=4, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
            limit_price=90, client_order_id="limit-1",
        ),
    )  # fmt: skip
    new = client.replace_order_by_id(
        old.id, ReplaceOrderRequest(qty=6, limit_price=95, client_order_id="limit-2")
    )
    assert isinstance(new, Order)
    assert (new.replaces, new.qty, new.limit_price) == (old.id, "6", "95")
    gone = client.get_order_by_id(old.id)
    assert isinstance(gone, Order)
    assert (gone.status, gone.replaced_by) == (OrderStatus.REPLACED, new.id)
    updates.wait_for(("replaced", "limit-1"), ("new", "limit-2"))
    with pytest.raises(APIError) as unchanged:
        client.replace_order_by_id(new.id, ReplaceOrderRequest())
    assert (unchanged.value.status_code, unchanged.value.code) == (403, 40310000)
    assert unchanged.value.message == "order parameters are not changed"


# Bodies alpaca-py's request classes would refuse before sending go through its ``post``: the
# client still parses the fake's answer into its APIError.
@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"order_class": "bracket", "take_profit": {"limit_price": "110"}}, 40010001,
         "bracket orders must specify both take_profit and stop_loss"),
        ({"type": "limit", "limit_price": "11.055"}, 42210000,
         "invalid limit_price 11.055. sub-penny increment does not fulfill minimum pricing"
         " criteria"),
        ({"qty": "0.5", "time_in_force": "gtc"}, 42210000,
         "fractional orders must be DAY orders"),
        ({"extended_hours": True}, 42210000,
         "extended hours order must be DAY or GTC limit orders"),
        ({"qty": None}, 40010001, "qty or notional is required"),
        ({"type": "trailing_stop"}, 40010001,
         "trailing stop orders must specify one of trail_price or trail_percent"),
        ({"order_class": "bracket", "time_in_force": "gtc", "take_profit": {"limit_price": "99"},
          "stop_loss": {"stop_price": "95"}}, 42210000,
         "take_profit.limit_price must be >= base_price + 0.01"),
    ],
)  # fmt: skip
def test_refusals_surface_as_alpaca_py_api_errors(
    fake: FakeAlpacaTrading, client: TradingClient, body: dict[str, Any], code: int, message: str
) -> None:
    base = {"symbol": "AAPL", "side": "buy", "qty": "1", "type": "market", "time_in_force": "day"}
    with pytest.raises(APIError) as refused:
        client.post("/orders", {k: v for k, v in {**base, **body}.items() if v is not None})
    assert (refused.value.status_code, refused.value.code) == (422, code)
    assert refused.value.message == message
    assert fake.orders_created() == 0


def test_a_refused_request_class_surfaces_as_api_error(client: TradingClient) -> None:
    request = LimitOrderRequest(
        symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=1.005
    )
    with pytest.raises(APIError) as refused:
        client.submit_order(request)
    assert refused.value.code == 42210000
    assert "sub-penny increment" in refused.value.message


def test_another_process_pushes_prices_over_the_fakes_control_route(
    fake: FakeAlpacaTrading, client: TradingClient
) -> None:
    order = submitted(
        client,
        LimitOrderRequest(
            symbol="IBM", qty=2, side=OrderSide.SELL, time_in_force=TimeInForce.DAY,
            limit_price=101,
        ),
    )  # fmt: skip
    request = urllib.request.Request(
        f"{fake.base_url}/fake/prices",
        data=json.dumps({"ibm": "101.5"}).encode(),
        headers={"APCA-API-KEY-ID": fake.key_id, "APCA-API-SECRET-KEY": fake.secret_key},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.load(answer) == {"IBM": "101.5"}
    filled = client.get_order_by_id(order.id)
    assert isinstance(filled, Order)
    assert (filled.status, filled.filled_avg_price) == (OrderStatus.FILLED, "101.5")


def test_cancel_all_takes_the_legs_along(fake: FakeAlpacaTrading, client: TradingClient) -> None:
    fake.auto_fill = False
    entry = submitted(client, bracket_buy())
    answers = client.cancel_orders()
    assert isinstance(answers, list) and len(answers) == 3
    assert {str(a.id) for a in answers} == {
        str(entry.id),
        *(str(leg.id) for leg in entry.legs or []),
    }
    assert all(a.status == 200 for a in answers)
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []
