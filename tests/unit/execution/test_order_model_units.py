"""The executor's order model without Kafka (issue 19): one test per branch.

A signal's ``order`` becomes the order placed; a bad one is denied before anything is sent; the
exits the executor owns are placed when the entry fills, under derived ids, and a crash between
the fill and the exits places them once on restart; while halted only reducing orders leave;
Alpaca's request classes carry the spec; the store migrates. Prices below are computed by hand
from the contract (a percentage of the fill price, on the cent), never by the code under test.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from exec_core_fakes import BookBroker, make_rig, signal

from flinktrade import events
from flinktrade.config import KafkaSettings, Settings
from flinktrade.events import OrderEvent, OrderSpec, OrderStatus, Side
from flinktrade.execution.brokers.alpaca.order_requests import to_alpaca
from flinktrade.execution.brokers.alpaca.parse import parse_order
from flinktrade.execution.brokers.base import BrokerOrder, OrderRefused, OrderRequest, TradeUpdate
from flinktrade.execution.brokers.simulated import SimulatedBroker
from flinktrade.execution.exits import broker_spec
from flinktrade.execution.settings import ExecutionSettings, SimBrokerSettings
from flinktrade.execution.store import OrderStore, Phase
from flinktrade.orders import Leg, leg_client_order_id

D = Decimal


def coid(s: events.Signal) -> str:
    return "ft-" + s.id


def order_events(rig: Any, client_order_id: str) -> list[OrderEvent]:
    rig.core.publish()
    found = [events.decode(OrderEvent, v) for t, v in rig.sink.sent if t == "trading.orders"]
    return [e for e in found if e.client_order_id == client_order_id]


# ---------------------------------------------------------------------- the order placed


def test_a_limit_signal_is_placed_as_that_limit_order(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    s = signal(order={"type": "limit", "limit_price": "99.5", "time_in_force": "gtc"})
    rig.decide(s)
    [request] = rig.broker.requests
    assert request.client_order_id == coid(s) and request.qty == D(1)
    assert request.spec.type == "limit" and request.spec.limit_price == D("99.5")
    assert request.spec.time_in_force == "gtc"
    stored = rig.store.get(coid(s))
    assert stored is not None and stored.status == OrderStatus.NEW and stored.order == s.order
    pending = order_events(rig, coid(s))[0]
    assert pending.status == OrderStatus.PENDING
    assert (pending.type, pending.limit_price, pending.time_in_force) == ("limit", D("99.5"), "gtc")


def test_the_signals_qty_or_notional_replaces_the_executors_sizing(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.broker.fractional = True
    by_qty = signal(order={"qty": "2.5"})
    by_notional = signal(order={"notional": "250"})
    rig.decide(by_qty, by_notional)
    first, second = rig.broker.requests
    assert (first.qty, first.notional) == (D("2.5"), None)
    assert (second.qty, second.notional) == (None, D(250))
    stored = rig.store.get(coid(by_notional))
    assert stored is not None and stored.notional == D(250) and stored.qty is None


def test_fractional_shares_are_denied_where_the_broker_takes_whole_shares(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)  # BookBroker: fractional = False
    s = signal(order={"qty": "0.5"})
    rig.decide(s)
    denied = rig.store.get(coid(s))
    assert denied is not None and denied.status == OrderStatus.DENIED
    assert denied.rule == "invalid_order" and denied.reason is not None
    assert "whole shares only" in denied.reason
    assert rig.broker.requests == []


@pytest.mark.parametrize(
    ("order", "words"),
    [
        ({"type": "limit"}, "needs limit_price"),
        ({"type": "stop", "stop_price": "90", "limit_price": "91"}, "takes no limit_price"),
        ({"extended_hours": True}, "extended hours"),
        ({"notional": "100", "time_in_force": "gtc"}, "notional orders must be market"),
        ({"take_profit_price": "110", "time_in_force": "ioc"}, "must have time_in_force day"),
        ({"type": "limit", "limit_price": "99.123"}, "sub-penny"),
        ({"oco": True, "take_profit_price": "110"}, "needs take_profit_price and stop_loss"),
        ({"trail_pct": "1", "stop_loss_pct": "2"}, "stands alone"),
    ],
)
def test_an_order_the_broker_would_refuse_is_denied_with_the_reason_and_alerted(
    tmp_path: Path, order: dict[str, Any], words: str
) -> None:
    rig = make_rig(tmp_path)
    s = signal(order=order)
    rig.decide(s)
    denied = rig.store.get(coid(s))
    assert denied is not None and denied.status == OrderStatus.DENIED
    assert denied.rule == "invalid_order" and words in (denied.reason or "")
    assert rig.broker.requests == []
    assert "executor.order_denied" in rig.alerts()
    [event] = order_events(rig, coid(s))
    assert event.status == OrderStatus.DENIED and words in (event.reason or "")
    rig.decide(signal())  # and the next signal is ordered
    assert len(rig.broker.requests) == 1


# ---------------------------------------------------------------------- exits


def test_absolute_exits_go_to_the_broker_with_the_entry_and_its_legs_are_adopted(
    tmp_path: Path,
) -> None:
    broker = BracketBroker()
    rig = make_rig(tmp_path, broker=broker)
    s = signal(order={"take_profit_price": "110", "stop_loss_price": "95"})
    rig.decide(s)
    [request] = broker.requests
    assert request.spec.order_class == "bracket"
    assert (request.spec.take_profit_price, request.spec.stop_loss_price) == (D(110), D(95))
    legs = rig.store.legs(coid(s))
    assert sorted((o.leg, o.client_order_id, o.phase) for o in legs) == [
        ("stop_loss", "leg-sl", Phase.ACKED),
        ("take_profit", "leg-tp", Phase.ACKED),
    ]
    assert len(broker.requests) == 1  # the broker made the legs: nothing more sent
    assert rig.core.reconcile() == []  # the legs open at the broker are known


def test_percentage_exits_are_an_oco_pair_placed_when_the_entry_fills(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)  # fills market orders at 100
    s = signal(order={"take_profit_pct": "4", "stop_loss_pct": "2"})
    rig.decide(s)
    entry, exit_pair = rig.broker.requests
    assert entry.spec.order_class == "simple" and entry.spec.take_profit_pct is None
    assert exit_pair.client_order_id == leg_client_order_id(coid(s), Leg.TAKE_PROFIT)
    assert exit_pair.side == Side.SELL and exit_pair.qty == D(1)
    spec = exit_pair.spec
    assert spec.oco and spec.type == "limit" and spec.time_in_force == "gtc"
    assert (spec.limit_price, spec.take_profit_price, spec.stop_loss_price) == (
        D("104.00"),
        D("104.00"),
        D("98.00"),
    )
    [leg] = rig.store.legs(coid(s))
    assert leg.leg == "take_profit" and leg.parent == coid(s) and leg.order.oco
    stored_entry = rig.store.get(coid(s))
    assert stored_entry is not None and stored_entry.exits == "placed"
    [opened] = [e for e in order_events(rig, exit_pair.client_order_id) if e.status == "new"]
    assert opened.parent_client_order_id == coid(s) and opened.leg == "take_profit"
    assert opened.order_class == "oco"


def test_a_short_entrys_stop_loss_alone_is_one_stop_order_above_the_fill(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, allow_short=True)
    s = signal(Side.SELL, order={"stop_loss_pct": "2.5"})
    rig.decide(s)
    _entry, stop = rig.broker.requests
    assert stop.client_order_id == leg_client_order_id(coid(s), Leg.STOP_LOSS)
    assert stop.side == Side.BUY
    assert (stop.spec.type, stop.spec.stop_price) == ("stop", D("102.50"))


def test_a_trailing_exit_is_a_trailing_stop_order(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    s = signal(order={"trail_pct": "1.5"})
    rig.decide(s)
    _entry, trailing = rig.broker.requests
    assert trailing.client_order_id == leg_client_order_id(coid(s), Leg.TRAILING_STOP)
    assert (trailing.spec.type, trailing.spec.trail_percent) == ("trailing_stop", D("1.5"))


def test_exits_of_a_fractional_fill_are_day_orders(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.broker.fractional = True
    s = signal(order={"qty": "2.5", "stop_loss_pct": "2"})
    rig.decide(s)
    _entry, stop = rig.broker.requests
    assert (stop.qty, stop.spec.time_in_force, stop.spec.stop_price) == (
        D("2.5"), "day", D("98.00"),
    )  # fmt: skip


def test_an_entry_that_never_fills_gets_no_exits(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    s = signal(order={"type": "limit", "limit_price": "99", "take_profit_pct": "4"})
    rig.decide(s)
    [entry] = rig.broker.requests
    canceled = BrokerOrder(
        id="b-1", client_order_id=coid(s), symbol="AAPL", side=Side.BUY, qty=D(1),
        status=OrderStatus.CANCELED, filled_qty=D(0), filled_avg_price=None,
        broker_status="canceled",
    )  # fmt: skip
    rig.core.orders.apply(canceled, None)
    stored = rig.store.get(coid(s))
    assert stored is not None and stored.exits == "none"
    assert rig.broker.requests == [entry]


def _filled(order: BrokerOrder, qty: str, avg: str) -> BrokerOrder:
    status = OrderStatus.FILLED if D(qty) == order.qty else OrderStatus.PARTIALLY_FILLED
    return dataclasses.replace(
        order, status=status, filled_qty=D(qty), filled_avg_price=D(avg), broker_status=status.value
    )


def _commissions(rig: Any) -> dict[str, Decimal]:
    return {f.id: f.commission for f in rig.store.fills()}


def test_a_fill_learned_over_rest_gets_the_commission_of_the_update_that_arrives_after_it(
    tmp_path: Path,
) -> None:
    """A market order's fill is first known from the submit's answer (REST: no commission); the
    broker's fill update for the same shares, arriving later, adds its commission to that fill,
    once, and the shares are not counted twice."""
    rig = make_rig(tmp_path)
    s = signal(order={"qty": "10"})
    rig.decide(s)
    order = rig.broker.orders[coid(s)]
    assert _commissions(rig) == {"b-1:10": D(0)}
    update = TradeUpdate(
        event="fill", order=order, execution_id="x-1", price=D(100), qty=D(10),
        commission=D("1.25"),
    )  # fmt: skip
    rig.core.orders.apply(order, update)
    rig.core.orders.apply(order, update)  # the update again (a stream replay): nothing more
    assert _commissions(rig) == {"b-1:10": D("1.25")}
    assert rig.store.positions() == {"AAPL": D(10)}
    rig.store.close()
    again = OrderStore(tmp_path / "orders.sqlite", broker="book")
    assert again.has_fill("x-1")
    assert [(f.id, f.qty, f.commission) for f in again.fills()] == [("b-1:10", D(10), D("1.25"))]


def test_late_commissions_go_to_the_rest_fill_that_holds_their_shares(tmp_path: Path) -> None:
    """A limit order fills 4 then 6; REST learns the 4 first. The update of the 4 (already held)
    adds its commission to that fill; the update of the 6 is a fill of its own, with its own."""
    rig = make_rig(tmp_path)
    s = signal(order={"qty": "10", "type": "limit", "limit_price": "101"})
    rig.decide(s)
    order = rig.broker.orders[coid(s)]
    first, second = _filled(order, "4", "100"), _filled(order, "10", "100.60")
    rig.core.orders.apply(first, None)  # a lookup over REST
    assert _commissions(rig) == {"b-1:4": D(0)}
    rig.core.orders.apply(
        first, TradeUpdate(event="partial_fill", order=first, execution_id="x-1", commission=D(1))
    )
    rig.core.orders.apply(
        second, TradeUpdate(event="fill", order=second, execution_id="x-2", commission=D("1.5"))
    )
    fills = {f.id: (f.qty, f.price, f.commission) for f in rig.store.fills()}
    assert fills == {"b-1:4": (D(4), D(100), D(1)), "x-2": (D(6), D(101), D("1.5"))}
    assert rig.store.positions() == {"AAPL": D(10)}


def test_both_late_commissions_go_to_one_rest_fill_of_the_whole_order(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    s = signal(order={"qty": "10", "type": "limit", "limit_price": "101"})
    rig.decide(s)
    order = rig.broker.orders[coid(s)]
    first, second = _filled(order, "4", "100"), _filled(order, "10", "100.60")
    rig.core.orders.apply(second, None)  # REST saw the order whole before either update
    for execution_id, update_order, commission in (("x-1", first, "1"), ("x-2", second, "1.5")):
        update = TradeUpdate(
            event="fill", order=update_order, execution_id=execution_id, commission=D(commission)
        )
        rig.core.orders.apply(update_order, update)
    assert {f.id: (f.qty, f.commission) for f in rig.store.fills()} == {"b-1:10": (D(10), D("2.5"))}


class Crash(BaseException):
    """The process dies here (a BaseException: no handler of the core catches it)."""


@pytest.mark.parametrize("step", ["entry_final", "exits_stored"])
def test_a_crash_between_the_fill_and_the_exits_places_them_once_on_restart(
    tmp_path: Path, step: str
) -> None:
    broker = BookBroker()

    def die(at: str) -> None:
        if at == step:
            raise Crash(at)

    first = make_rig(tmp_path, broker=broker, checkpoint=die)
    s = signal(order={"take_profit_pct": "4", "stop_loss_pct": "2"})
    with pytest.raises(Crash):
        first.decide(s)
    assert broker.submitted == [coid(s)]  # the entry filled, no exit sent
    first.store._db.close()  # the process is gone: nothing more is written

    second = make_rig(tmp_path, broker=broker)  # start-up: reconciliation places the exits
    pair = leg_client_order_id(coid(s), Leg.TAKE_PROFIT)
    assert broker.submitted == [coid(s), pair]
    assert broker.requests[-1].spec.stop_loss_price == D("98.00")
    assert second.core.reconcile() == []
    second.core.close()

    third = make_rig(tmp_path, broker=broker)  # and never again
    assert broker.submitted == [coid(s), pair]
    third.core.close()


# ---------------------------------------------------------------------- halted


def test_while_halted_only_orders_that_reduce_a_position_leave(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.decide(signal(order={"qty": "3"}))  # long 3
    rig.store.halt("operator")
    buy = signal()
    too_much = signal(Side.SELL, order={"qty": "4"})
    with_exits = signal(Side.SELL, order={"qty": "1", "stop_loss_pct": "2"})
    reduce = signal(Side.SELL, order={"qty": "2"})
    rig.decide(buy, too_much, with_exits, reduce)
    for denied in (buy, too_much, with_exits):
        stored = rig.store.get(coid(denied))
        assert stored is not None and stored.rule == "kill_switch"
    sold = rig.store.get(coid(reduce))
    assert sold is not None and sold.status == OrderStatus.FILLED
    assert rig.store.positions() == {"AAPL": D(1)}


def test_exits_leave_while_halted(tmp_path: Path) -> None:
    halted_before_exits = {"done": False}
    rig_holder: list[Any] = []

    def halt_at_fill(at: str) -> None:
        if at == "entry_final" and not halted_before_exits["done"]:
            halted_before_exits["done"] = True
            rig_holder[0].store.halt("operator, right after the fill")

    rig = make_rig(tmp_path, checkpoint=halt_at_fill)
    rig_holder.append(rig)
    s = signal(order={"stop_loss_pct": "2"})
    rig.decide(s)
    assert rig.store.halted() is not None
    assert rig.broker.submitted == [coid(s), leg_client_order_id(coid(s), Leg.STOP_LOSS)]


# ---------------------------------------------------------------------- brokers and wire


def request(spec: dict[str, Any], *, qty: str | None = "3", notional: str | None = None) -> Any:
    return OrderRequest(
        client_order_id="ft-1", symbol="AAPL", side=Side.BUY,
        qty=None if qty is None else D(qty), notional=None if notional is None else D(notional),
        spec=OrderSpec.model_validate(spec),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "qty", "notional", "wire"),
    [
        ({}, "3", None, {"type": "market", "time_in_force": "day", "qty": 3.0}),
        ({}, None, "250.5", {"type": "market", "time_in_force": "day", "notional": 250.5}),
        (
            {"type": "limit", "limit_price": "99.5", "time_in_force": "gtc",
             "extended_hours": True},
            "0.5", None,
            {"type": "limit", "limit_price": 99.5, "time_in_force": "gtc",
             "extended_hours": True, "qty": 0.5},
        ),
        ({"type": "stop", "stop_price": "95"}, "3", None,
         {"type": "stop", "stop_price": 95.0, "time_in_force": "day", "qty": 3.0}),
        (
            {"type": "stop_limit", "stop_price": "95", "limit_price": "94.5"}, "3", None,
            {"type": "stop_limit", "stop_price": 95.0, "limit_price": 94.5,
             "time_in_force": "day", "qty": 3.0},
        ),
        ({"type": "trailing_stop", "trail_percent": "1.5"}, "3", None,
         {"type": "trailing_stop", "trail_percent": 1.5, "time_in_force": "day", "qty": 3.0}),
        ({"type": "trailing_stop", "trail_price": "2"}, "3", None,
         {"type": "trailing_stop", "trail_price": 2.0, "time_in_force": "day", "qty": 3.0}),
        (
            {"take_profit_price": "110", "stop_loss_price": "95", "stop_loss_limit_price": "94"},
            "3", None,
            {"type": "market", "time_in_force": "day", "qty": 3.0, "order_class": "bracket",
             "take_profit": {"limit_price": 110.0},
             "stop_loss": {"stop_price": 95.0, "limit_price": 94.0}},
        ),
        (
            {"type": "limit", "limit_price": "100", "stop_loss_price": "95"}, "3", None,
            {"type": "limit", "limit_price": 100.0, "time_in_force": "day", "qty": 3.0,
             "order_class": "oto", "stop_loss": {"stop_price": 95.0}},
        ),
        (
            {"type": "limit", "limit_price": "110", "oco": True, "take_profit_price": "110",
             "stop_loss_price": "95", "time_in_force": "gtc"},
            "3", None,
            {"type": "limit", "limit_price": 110.0, "time_in_force": "gtc", "qty": 3.0,
             "order_class": "oco", "take_profit": {"limit_price": 110.0},
             "stop_loss": {"stop_price": 95.0}},
        ),
    ],
)  # fmt: skip
def test_each_spec_maps_to_alpacas_request(
    spec: dict[str, Any], qty: str | None, notional: str | None, wire: dict[str, Any]
) -> None:
    fields = to_alpaca(request(spec, qty=qty, notional=notional)).to_request_fields()
    expected = {"symbol": "AAPL", "side": "buy", "client_order_id": "ft-1", **wire}
    assert json.loads(json.dumps(fields, default=str)) == expected


def test_percentage_exits_never_reach_the_broker() -> None:
    spec = OrderSpec.model_validate({"take_profit_pct": "4", "stop_loss_price": "95", "qty": "3"})
    sent = broker_spec(spec)
    assert sent.exits == 0 and sent.qty is None
    fields = to_alpaca(request(sent.model_dump())).to_request_fields()
    assert "order_class" not in fields and "take_profit" not in fields


def test_a_bracket_answer_is_parsed_with_its_legs() -> None:
    leg = {"id": "l1", "client_order_id": "c-l1", "symbol": "AAPL", "side": "sell", "qty": "3",
           "status": "held", "filled_qty": "0", "type": "stop", "stop_price": "95"}  # fmt: skip
    parent = {"id": "p1", "client_order_id": "ft-1", "symbol": "AAPL", "side": "buy", "qty": "3",
              "status": "filled", "filled_qty": "3", "filled_avg_price": "100",
              "order_class": "bracket", "type": "market", "legs": [leg]}  # fmt: skip
    order = parse_order(parent)
    assert order.order_class == "bracket" and order.status == OrderStatus.FILLED
    [child] = order.legs
    assert (child.client_order_id, child.type, child.stop_price) == ("c-l1", "stop", D(95))
    assert child.status == OrderStatus.ACCEPTED
    with pytest.raises(ValueError):  # a leg with legs is not Alpaca's
        parse_order({**parent, "legs": [{**leg, "legs": [leg]}]})


# ---------------------------------------------------------------------- store and events


OLD_SCHEMA = """
CREATE TABLE orders (
    client_order_id TEXT PRIMARY KEY, signal_id TEXT, strategy TEXT, symbol TEXT NOT NULL,
    side TEXT NOT NULL, qty TEXT, notional TEXT, price TEXT,
    order_type TEXT NOT NULL DEFAULT 'market', status TEXT NOT NULL, phase TEXT NOT NULL,
    broker_order_id TEXT, filled_qty TEXT NOT NULL DEFAULT '0', filled_avg_price TEXT, rule TEXT,
    reason TEXT, broker TEXT NOT NULL, created_ms INTEGER NOT NULL, sent_ms INTEGER,
    updated_ms INTEGER NOT NULL, signal_ts INTEGER
);
INSERT INTO orders (client_order_id, symbol, side, qty, status, phase, broker, created_ms,
    updated_ms) VALUES ('ft-old', 'AAPL', 'buy', '2', 'new', 'acked', 'sim', 1, 1);
"""


def test_a_store_written_before_the_order_model_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "orders.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    store = OrderStore(path)
    try:
        old = store.get("ft-old")
        assert old is not None and old.spec is None and old.order.type == "market"
        assert (old.parent, old.leg, old.exits) == (None, None, None)
        spec = OrderSpec(type="limit", limit_price=D("99.25"), take_profit_pct=D("4"))
        store.add_intent(
            client_order_id="ft-new", signal=None, strategy="s", symbol="AAPL", side=Side.BUY,
            qty=D(1), notional=None, price=D(99), spec=spec, exits="pending",
        )  # fmt: skip
    finally:
        store.close()
    again = OrderStore(path)
    try:
        new = again.get("ft-new")
        assert new is not None and new.spec == spec and new.exits == "pending"
    finally:
        again.close()


def test_an_order_event_written_before_the_new_fields_decodes() -> None:
    old = (
        b'{"ts": 1, "ingest_ts": 1, "event_id": "e", "id": "o", "client_order_id": "c",'
        b' "symbol": "AAPL", "side": "buy", "qty": 1, "type": "market", "status": "new"}'
    )
    event = events.decode(OrderEvent, old)
    assert event.stop_price is None and event.parent_client_order_id is None
    assert event.leg is None and event.order_class is None


class BracketBroker(BookBroker):
    """Fills the entry of a bracket at once and reports the two legs it made, open."""

    def _take(self, request: OrderRequest) -> BrokerOrder:
        order = super()._take(request)
        if request.spec.order_class != "bracket":
            return order
        legs = tuple(
            BrokerOrder(
                id=f"{order.id}-{name}", client_order_id=f"leg-{name}", symbol=request.symbol,
                side=Side.SELL, qty=order.qty, status=OrderStatus.NEW, filled_qty=D(0),
                filled_avg_price=None, broker_status="new", type=kind,
                limit_price=D(110) if name == "tp" else None,
                stop_price=D(95) if name == "sl" else None,
            )
            for name, kind in (("tp", "limit"), ("sl", "stop"))
        )  # fmt: skip
        for leg in legs:
            self.orders[leg.client_order_id] = leg
        parent = dataclasses.replace(order, legs=legs, order_class="bracket")
        self.orders[request.client_order_id] = parent
        return parent


def test_an_oco_exit_pair_for_a_held_position_leaves_while_halted(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.decide(signal(order={"qty": "2"}))  # long 2
    rig.store.halt("operator")
    pair = signal(
        Side.SELL,
        order={"type": "limit", "limit_price": "110", "oco": True, "take_profit_price": "110",
               "stop_loss_price": "95", "qty": "2"},
    )  # fmt: skip
    rig.decide(pair)
    sent = rig.store.get(coid(pair))
    assert sent is not None and sent.status == OrderStatus.NEW
    assert rig.broker.requests[-1].spec.order_class == "oco"


def test_exits_no_order_can_carry_are_marked_failed_and_alerted(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, broker=BookBroker(fill_price="0.0001"))
    rig.prices.set("PENNY", "0.0001")
    s = signal(symbol="PENNY", price="0.0001", order={"stop_loss_pct": "99"})
    rig.decide(s)  # the stop would be 0.000001, below the tick: no stop order can carry it
    entry = rig.store.get(coid(s))
    assert entry is not None and entry.status == OrderStatus.FILLED and entry.exits == "failed"
    assert rig.broker.submitted == [coid(s)]
    assert "executor.order_rejected" in rig.alerts()
    rig.core.reconcile()  # not retried
    assert rig.broker.submitted == [coid(s)]


def test_a_leg_the_broker_made_is_never_sent_by_the_executor(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, broker=BracketBroker())
    s = signal(order={"take_profit_price": "110", "stop_loss_price": "95"})
    rig.decide(s)
    leg = rig.store.get("leg-sl")
    assert leg is not None
    assert (
        rig.core.orders.resend_refusal(leg) == "a leg the broker made is never sent by the executor"
    )
    own = signal(order={"stop_loss_pct": "2"})
    rig.decide(own)
    exit_order = rig.store.get(leg_client_order_id(coid(own), Leg.STOP_LOSS))
    assert exit_order is not None and rig.core.orders.resend_refusal(exit_order) is None


# ---------------------------------------------------------------------- the simulated broker


def sim(tmp_path: Path) -> tuple[SimulatedBroker, list[Any]]:
    settings = Settings(
        state_dir=tmp_path,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),  # never contacted here
        execution=ExecutionSettings(
            sim=SimBrokerSettings(
                commission_per_share=D("0.005"), commission_min=D("1.00"), slippage_bps=D(5),
                starting_cash=D(100_000),
            )
        ),
    )  # fmt: skip
    broker = SimulatedBroker(settings)
    seen: list[Any] = []
    broker._on_update = seen.append  # what start_updates installs, without the Kafka thread
    return broker, seen


def price(broker: SimulatedBroker, value: str, ts: int) -> None:
    broker._on_price(f'{{"symbol": "AAPL", "price": {value}, "ts": {ts}}}'.encode())


def test_the_simulated_broker_fills_a_limit_order_through_the_matching_model(
    tmp_path: Path,
) -> None:
    broker, seen = sim(tmp_path)
    try:
        placed = broker.submit(request({"type": "limit", "limit_price": "99"}, qty="10"))
        assert placed.status == OrderStatus.NEW and placed.type == "limit"
        price(broker, "100", 1)  # above the limit: no fill
        assert broker.get_order("ft-1").status == OrderStatus.NEW  # type: ignore[union-attr]
        price(broker, "98.5", 2)  # through the limit: at that price, no slippage on a limit
        filled = broker.get_order("ft-1")
        assert filled is not None and filled.status == OrderStatus.FILLED
        assert filled.filled_avg_price == D("98.5") and filled.filled_qty == D(10)
        [fill] = [u for u in seen if u.is_fill]
        assert fill.commission == D("1.00")  # max(1.00, 10 x 0.005)
        assert broker.account().cash == D("99014.00")  # 100000 - 985 - 1
        assert broker.positions() == {"AAPL": D(10)}
    finally:
        broker.close()


def test_the_simulated_brokers_bracket_legs_cancel_each_other(tmp_path: Path) -> None:
    broker, seen = sim(tmp_path)
    try:
        broker.submit(request({"take_profit_price": "110", "stop_loss_price": "95"}, qty="10"))
        price(broker, "100", 1)  # the entry fills at 100 + 5 bps
        entry = broker.get_order("ft-1")
        assert entry is not None and entry.filled_avg_price == D("100.05")
        assert sorted((leg.type, leg.status.value) for leg in entry.legs) == [
            ("limit", "new"), ("stop", "new"),
        ]  # fmt: skip
        price(broker, "94", 2)  # gaps through the stop: at 94 - 5 bps, the take profit goes
        legs = {leg.type: leg for leg in broker.get_order("ft-1").legs}  # type: ignore[union-attr]
        assert legs["stop"].status == OrderStatus.FILLED
        assert legs["stop"].filled_avg_price == D("93.953")
        assert legs["limit"].status == OrderStatus.CANCELED
        assert broker.positions() == {}
        assert broker.account().cash == D("99937.03")  # 100000 - 1000.50 - 1 + 939.53 - 1
        assert broker.open_orders() == []
        assert [u.event for u in seen if u.order.client_order_id == legs["limit"].client_order_id][
            -1
        ] == "canceled"
    finally:
        broker.close()


def test_the_simulated_broker_puts_working_orders_back_after_a_restart(tmp_path: Path) -> None:
    broker, _ = sim(tmp_path)
    broker.submit(request({"type": "stop", "stop_price": "105"}, qty="2"))
    broker.close()
    again, seen = sim(tmp_path)
    try:
        price(again, "104", 1)
        assert again.get_order("ft-1").status == OrderStatus.NEW  # type: ignore[union-attr]
        price(again, "106", 2)  # a buy stop: triggered above 105, fills at 106 + 5 bps
        order = again.get_order("ft-1")
        assert order is not None and order.status == OrderStatus.FILLED
        assert order.filled_avg_price == D("106.053")
        assert [u.event for u in seen] == ["fill"]
    finally:
        again.close()


def test_the_simulated_broker_refuses_a_notional_and_never_fills_it_as_market(
    tmp_path: Path,
) -> None:
    broker, _ = sim(tmp_path)
    try:
        with pytest.raises(OrderRefused, match="qty"):
            broker.submit(request({}, qty=None, notional="100"))
        assert broker.get_order("ft-1") is None
    finally:
        broker.close()


def test_hostile_price_records_fill_nothing_and_the_simulated_broker_carries_on(
    tmp_path: Path,
) -> None:
    """Every hostile variant of a price record (not JSON, NaN / 1e400 / 0.0000001 prices, long
    and empty symbols, huge payloads, ...) reaches the simulated broker's price handler, which
    sees one per trade: none raises and none fills the waiting market order; the next valid price
    does. Two variants still carry a usable price and are left out: the valid record padded to
    1 MB, and its time written as a float with no fraction."""
    from flinktrade.testing.hostile import hostile_records

    broker, _seen = sim(tmp_path)
    ts = 1_704_205_800_000  # 2024-01-02 09:30 ET: in the regular session
    carry_a_price = {"one_mb", "ts_float"}
    records = hostile_records({"symbol": "AAPL", "price": 100, "ts": ts})
    assert carry_a_price <= {name for name, _ in records}
    try:
        placed = broker.submit(request({}))  # a simple market order, no price known yet
        assert placed.status == OrderStatus.NEW
        for name, raw in records:
            if name in carry_a_price:
                continue
            broker._on_price(raw)
            waiting = broker.get_order("ft-1")
            assert waiting is not None and waiting.status == OrderStatus.NEW, name
        price(broker, "100", ts)
        filled = broker.get_order("ft-1")
        assert filled is not None and filled.status == OrderStatus.FILLED
    finally:
        broker.close()
