"""Replacing an order, without Kafka (issue 19): the simulated broker's ``replace``.

The old order ends canceled and is reported ``replaced``; the new one works under the new id with
the old spec and the new fields (an OCO pair gets a new stop leg at the new qty); a replace it
refuses (not open, a leg, an id in use, a field the type has no use for) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from flinktrade.config import KafkaSettings, Settings
from flinktrade.events import OrderSpec, OrderStatus, Side
from flinktrade.execution.brokers.base import (
    OrderExists,
    OrderRefused,
    OrderRequest,
    TradeUpdate,
)
from flinktrade.execution.brokers.simulated import SimulatedBroker
from flinktrade.execution.settings import ExecutionSettings, SimBrokerSettings

D = Decimal


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[SimulatedBroker, list[TradeUpdate]]]:
    settings = Settings(
        state_dir=tmp_path,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),  # never contacted here
        execution=ExecutionSettings(sim=SimBrokerSettings(slippage_bps=D(0))),
    )
    broker = SimulatedBroker(settings)
    seen: list[TradeUpdate] = []
    broker._on_update = seen.append  # what start_updates installs, without the Kafka thread
    try:
        yield broker, seen
    finally:
        broker.close()


def test_the_simulated_broker_replaces_a_limit_order_and_reports_it_replaced(
    sim: tuple[SimulatedBroker, list[TradeUpdate]],
) -> None:
    broker, seen = sim
    spec = OrderSpec(type="limit", limit_price=D(110), time_in_force="gtc")
    broker.submit(OrderRequest("ft-s", "AAPL", Side.SELL, qty=D(2), spec=spec))
    broker._on_price(b'{"symbol": "AAPL", "price": 100, "ts": 5}')  # below the limit: works on
    new = broker.replace("ft-s", "ft-s-r1", qty=D(5), limit_price=D(108))
    assert (new.client_order_id, new.qty, new.limit_price) == ("ft-s-r1", D(5), D(108))
    assert new.status == OrderStatus.NEW and new.side == Side.SELL
    old = broker.get_order("ft-s")
    assert old is not None and old.status == OrderStatus.CANCELED
    assert [u.event for u in seen if u.order.client_order_id == "ft-s"][-1] == "replaced"
    assert [o.client_order_id for o in broker.open_orders()] == ["ft-s-r1"]
    broker._on_price(b'{"symbol": "AAPL", "price": 109, "ts": 6}')  # crosses the new limit only
    assert broker.get_order("ft-s-r1").filled_qty == D(5)  # type: ignore[union-attr]
    assert broker.get_order("ft-s").filled_qty == D(0)  # type: ignore[union-attr]


def test_the_simulated_broker_replaces_an_oco_pair_with_a_new_stop_leg(
    sim: tuple[SimulatedBroker, list[TradeUpdate]],
) -> None:
    broker, _seen = sim
    pair = OrderSpec(
        type="limit",
        limit_price=D(110),
        take_profit_price=D(110),
        stop_loss_price=D(95),
        oco=True,
        time_in_force="gtc",
    )
    broker.submit(OrderRequest("ft-p", "AAPL", Side.SELL, qty=D(2), spec=pair))
    before = broker.get_order("ft-p")
    assert before is not None and len(before.legs) == 1
    new = broker.replace("ft-p", "ft-p-r1", qty=D(3))
    assert new.qty == D(3) and len(new.legs) == 1 and new.legs[0].qty == D(3)
    assert new.legs[0].stop_price == D(95)
    old = broker.get_order("ft-p")
    assert old is not None and old.status == OrderStatus.CANCELED
    assert {leg.status for leg in old.legs} == {OrderStatus.CANCELED}
    assert sorted(o.client_order_id for o in broker.open_orders()) == sorted(
        ["ft-p-r1", new.legs[0].client_order_id]
    )
    broker._on_price(b'{"symbol": "AAPL", "price": 94, "ts": 5}')  # the new stop fires
    assert broker.positions() == {"AAPL": D(-3)}  # the new qty, once


def test_a_replace_the_simulated_broker_refuses_changes_nothing(
    sim: tuple[SimulatedBroker, list[TradeUpdate]],
) -> None:
    broker, _seen = sim
    spec = OrderSpec(type="limit", limit_price=D(110), time_in_force="gtc")
    broker.submit(OrderRequest("ft-a", "AAPL", Side.SELL, qty=D(2), spec=spec))
    broker.submit(OrderRequest("ft-b", "AAPL", Side.SELL, qty=D(2), spec=spec))
    with pytest.raises(OrderExists):
        broker.replace("ft-a", "ft-b", qty=D(3))
    with pytest.raises(OrderRefused, match="no stop_price"):
        broker.replace("ft-a", "ft-a-r1", stop_price=D(90))
    with pytest.raises(OrderRefused, match="not open"):
        broker.replace("ft-none", "ft-none-r1", qty=D(3))
    bracket = OrderSpec(take_profit_price=D(120), stop_loss_price=D(90))
    broker.submit(OrderRequest("ft-e", "AAPL", Side.BUY, qty=D(1), spec=bracket))
    broker._on_price(b'{"symbol": "AAPL", "price": 100, "ts": 5}')  # the entry fills: legs work
    leg = next(iter(broker.get_order("ft-e").legs))  # type: ignore[union-attr]
    with pytest.raises(OrderRefused, match="not legs"):
        broker.replace(leg.client_order_id, "ft-leg-r1", qty=D(1))
    with pytest.raises(OrderRefused, match="not open"):
        broker.replace("ft-e", "ft-e-r1", qty=D(1))  # filled: over
    assert broker.get_order("ft-a").status == OrderStatus.NEW  # type: ignore[union-attr]
    assert broker.get_order("ft-a-r1") is None and broker.get_order("ft-e-r1") is None
    assert sorted(o.client_order_id for o in broker.open_orders()) == [
        "ft-a", "ft-b", *sorted(leg.client_order_id for leg in broker.get_order("ft-e").legs),  # type: ignore[union-attr]
    ]  # fmt: skip
