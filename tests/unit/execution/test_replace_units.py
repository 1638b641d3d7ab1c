"""Replacing an order, without Kafka (issue 19): the simulated broker's ``replace``, the store's
replace intents, and the executor replacing its own exits as a limit entry fills in parts.

The old order ends canceled and is reported ``replaced``; the new one works under the new id with
the old spec and the new fields (an OCO pair gets a new stop leg at the new qty); a replace it
refuses (not open, a leg, an id in use, a field the type has no use for) changes nothing. The
store keeps a replace as the new exit's row (``replaces``) before any request. The executor places
its exits at the entry's first part and replaces them at the next; an entry filled while it was
down gets them once at the final qty; a crash at each replace step leaves one live exit at the
full qty after the restart, never a second order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from exec_core_fakes import BookBroker, Rig, make_rig, signal

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
from flinktrade.execution.store import OrderStore, Phase, StoredOrder, replace_id
from flinktrade.orders import Leg, leg_client_order_id

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


# ---------------------------------------------------------------------- the store


def _entry_and_exit(store: OrderStore) -> StoredOrder:
    store.add_intent(
        client_order_id="ft-e", signal=None, strategy="s1", symbol="AAPL", side=Side.BUY,
        qty=D(5), notional=None, price=D(100), exits="placed",
    )  # fmt: skip
    return store.add_intent(
        client_order_id="ft-e-tp", signal=None, strategy="s1", symbol="AAPL", side=Side.SELL,
        qty=D(2), notional=None, price=D(100), parent="ft-e", leg="take_profit",
    )  # fmt: skip


def test_the_store_keeps_each_replace_as_the_new_exits_row_before_any_request(
    tmp_path: Path,
) -> None:
    store = OrderStore(tmp_path / "orders.sqlite")
    first = _entry_and_exit(store)
    assert replace_id("ft-e-tp", 1) == "ft-e-tp-r1"
    assert [o.client_order_id for o in store.current_exits("ft-e")] == ["ft-e-tp"]
    assert store.replaces_of("ft-e", "take_profit") == 0
    assert [o.client_order_id for o in store.entries_with_open_exits()] == ["ft-e"]

    store.add_replace(first, "ft-e-tp-r1", D(4))
    reopened = OrderStore(tmp_path / "orders.sqlite")  # committed: another connection sees it
    stored = reopened.get("ft-e-tp-r1")
    assert stored is not None and stored.replaces == "ft-e-tp" and stored.qty == D(4)
    assert (stored.parent, stored.leg, stored.side, stored.phase) == (
        "ft-e", "take_profit", Side.SELL, Phase.INTENT,
    )  # fmt: skip
    assert [o.client_order_id for o in reopened.current_exits("ft-e")] == ["ft-e-tp-r1"]
    assert reopened.replaces_of("ft-e", "take_profit") == 1
    reopened.transition("ft-e-tp-r1", OrderStatus.CANCELED, reason="refused: not open")
    assert [o.client_order_id for o in reopened.current_exits("ft-e")] == ["ft-e-tp"]  # again
    second = reopened.add_replace(first, "ft-e-tp-r2", D(5))
    reopened.transition("ft-e-tp-r2", OrderStatus.NEW, broker_order_id="b-r2")
    assert reopened.replaces_of("ft-e", "take_profit") == 2 and second.qty == D(5)
    assert [o.client_order_id for o in reopened.current_exits("ft-e")] == ["ft-e-tp-r2"]

    for coid_ in ("ft-e-tp", "ft-e-tp-r2"):
        reopened.transition(coid_, OrderStatus.CANCELED, reason="gone")
    assert reopened.entries_with_open_exits() == []  # nothing left open to check


# ---------------------------------------------------------------------- the executor


PCT = {"type": "limit", "limit_price": "100", "take_profit_pct": "4", "stop_loss_pct": "2"}


def _fill(rig: Rig, entry: str, filled: str, *, final: bool = False) -> None:
    """The broker reports ``entry`` filled ``filled`` shares at 100 (a stream update)."""
    order = rig.broker.orders[entry]
    status = OrderStatus.FILLED if final else OrderStatus.PARTIALLY_FILLED
    now = dataclasses.replace(
        order, status=status, broker_status=status.value, filled_qty=D(filled),
        filled_avg_price=D(100),
    )  # fmt: skip
    rig.broker.orders[entry] = now
    rig.broker.fill_held(order.symbol, order.side, D(filled) - order.filled_qty)
    rig.core.orders.updates.put(TradeUpdate(event="fill", order=now, execution_id=f"x-{filled}"))
    rig.core.orders.apply_updates()


def test_the_exits_are_placed_at_the_first_part_and_replaced_at_the_next(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, partial_exits=True)
    s = signal(order={**PCT, "qty": "5"})
    rig.decide(s)
    entry, pair = "ft-" + s.id, leg_client_order_id("ft-" + s.id, Leg.TAKE_PROFIT)
    assert rig.broker.submitted == [entry]  # a limit entry: working, nothing filled yet

    _fill(rig, entry, "2")
    assert rig.broker.submitted == [entry, pair]  # the first part is protected at once
    assert rig.broker.requests[-1].qty == D(2)
    assert rig.broker.requests[-1].spec.stop_loss_price == D("98.00")

    _fill(rig, entry, "5", final=True)
    assert rig.broker.submitted == [entry, pair]  # replaced, not placed a second time
    replaced = rig.broker.orders[pair + "-r1"]
    assert replaced.qty == D(5) and not replaced.status.final
    stored = rig.store.get(pair + "-r1")
    assert stored is not None and stored.replaces == pair and stored.phase == Phase.ACKED
    rig.core.follow_open_orders()  # the old one's end (Alpaca: the "replaced" update)
    assert rig.store.get(pair).status == OrderStatus.CANCELED  # type: ignore[union-attr]
    assert [o.client_order_id for o in rig.store.open_exits("AAPL")] == [pair + "-r1"]
    assert rig.core.reconcile() == []
    rig.core.close()


def test_by_default_the_exits_wait_for_the_entry_to_be_final_and_nothing_is_replaced(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path)  # exits_on_partial_fill off, the default
    s = signal(order={**PCT, "qty": "5"})
    rig.decide(s)
    entry, pair = "ft-" + s.id, leg_client_order_id("ft-" + s.id, Leg.TAKE_PROFIT)
    _fill(rig, entry, "2")
    assert rig.broker.submitted == [entry]  # a part filled: no exit yet
    _fill(rig, entry, "5", final=True)
    assert rig.broker.submitted == [entry, pair]  # final: the exits, once, for all 5
    assert rig.broker.requests[-1].qty == D(5)
    assert not any(c.endswith("-r1") for c in rig.broker.orders)
    rig.core.close()


def test_an_entry_filled_while_the_executor_was_down_gets_its_exits_once_at_the_final_qty(
    tmp_path: Path,
) -> None:
    broker = BookBroker()
    first = make_rig(tmp_path, broker=broker, partial_exits=True)
    s = signal(order={**PCT, "qty": "5"})
    first.decide(s)
    first.core.close()
    entry, pair = "ft-" + s.id, leg_client_order_id("ft-" + s.id, Leg.TAKE_PROFIT)
    broker.orders[entry] = dataclasses.replace(
        broker.orders[entry], status=OrderStatus.FILLED, broker_status="filled",
        filled_qty=D(5), filled_avg_price=D(100),
    )  # fmt: skip
    broker.fill_held("AAPL", Side.BUY, D(5))
    second = make_rig(tmp_path, broker=broker, partial_exits=True)
    second.core.follow_open_orders()
    assert broker.submitted == [entry, pair] and broker.requests[-1].qty == D(5)
    assert not any(c.endswith("-r1") for c in broker.orders)
    second.core.close()


def test_a_refused_replace_keeps_the_old_exit_and_is_tried_again_a_few_times(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path, partial_exits=True)
    s = signal(order={**PCT, "qty": "5"})
    rig.decide(s)
    entry, pair = "ft-" + s.id, leg_client_order_id("ft-" + s.id, Leg.TAKE_PROFIT)
    _fill(rig, entry, "2")
    rig.broker.replace_refusal = "HTTP 422: order is not replaceable yet"
    _fill(rig, entry, "5", final=True)
    assert rig.broker.replaced == [pair + "-r1"]
    refused = rig.store.get(pair + "-r1")
    assert refused is not None and refused.status == OrderStatus.CANCELED
    assert "not replaceable" in (refused.reason or "")
    assert [o.client_order_id for o in rig.store.current_exits(entry)] == [pair]
    assert "executor.order_rejected" in rig.alerts()
    for _ in range(4):
        rig.core.reconcile()
    assert rig.broker.replaced == [pair + "-r1", pair + "-r2", pair + "-r3"]  # then left alone

    rig.broker.replace_refusal = None
    rig.decide()  # nothing new: the exit stays at 2 until the operator acts
    assert rig.broker.orders[pair].qty == D(2) and not rig.broker.orders[pair].status.final
    rig.core.close()


class Crash(BaseException):
    """The process dies here (a BaseException: no handler of the core catches it)."""


@pytest.mark.parametrize(("step", "nth"), [("replace_stored", 1), ("request_sent", 3),
                                           ("response_received", 3)])  # fmt: skip
def test_a_crash_in_the_replace_leaves_one_live_exit_at_the_full_qty(
    tmp_path: Path, step: str, nth: int
) -> None:
    broker = BookBroker()
    seen: dict[str, int] = {}

    def die(at: str) -> None:
        seen[at] = seen.get(at, 0) + 1
        if at == step and seen[at] == nth:  # the entry's, the exit's, then the replace's
            raise Crash(at)

    first = make_rig(tmp_path, broker=broker, checkpoint=die, partial_exits=True)
    s = signal(order={**PCT, "qty": "5"})
    first.decide(s)
    entry, pair = "ft-" + s.id, leg_client_order_id("ft-" + s.id, Leg.TAKE_PROFIT)
    _fill(first, entry, "2")
    with pytest.raises(Crash):
        _fill(first, entry, "5", final=True)
    first.store._db.close()  # the process is gone: nothing more is written
    sent_replace = step != "replace_stored" and step != "request_sent"
    assert (pair + "-r1" in broker.orders) is sent_replace

    second = make_rig(
        tmp_path, broker=broker, partial_exits=True
    )  # start-up: look-ups, then what is left
    second.core.follow_open_orders()
    live = [o for o in broker.orders.values() if not o.status.final and o.client_order_id != entry]
    assert [(o.client_order_id, o.qty) for o in live] == [(pair + "-r1", D(5))]
    assert broker.submitted == [entry, pair]  # the replace never became a second order
    open_exits = second.store.open_exits("AAPL")
    assert [o.client_order_id for o in open_exits] == [pair + "-r1"]
    assert second.core.reconcile() == []
    second.core.close()
