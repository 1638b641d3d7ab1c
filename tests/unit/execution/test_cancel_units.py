"""Cancelling exits before an order that closes their position, without Kafka (issue 19).

The store's cancel states (``wanted`` before any request, then ``sent``) and fill marks; a sell
after a bracketed buy cancels the exits first and only then sells; unconfirmed cancels keep the
sell an intent until they are confirmed; an exit that fills meanwhile drops the sell; while
halted the cancels and the sell still leave; a crash after the cancel is stored, and after the
cancels are confirmed, sends the sell exactly once on restart and never places the exit again;
the simulated broker cancels a working bracket (and its legs) and a plain order.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest
from exec_core_fakes import BookBroker, make_rig, signal

from flinktrade import events
from flinktrade.config import KafkaSettings, Settings
from flinktrade.events import Fill, OrderSpec, OrderStatus, Side
from flinktrade.execution.brokers.base import OrderRequest, TradeUpdate
from flinktrade.execution.brokers.simulated import SimulatedBroker
from flinktrade.execution.settings import ExecutionSettings, SimBrokerSettings
from flinktrade.execution.store import OrderStore, Phase
from flinktrade.orders import Leg, leg_client_order_id

D = Decimal
EXITS = {"take_profit_pct": "4", "stop_loss_pct": "2"}


def coid(s: events.Signal) -> str:
    return "ft-" + s.id


def pair_of(s: events.Signal) -> str:
    """The id of the executor's own exit pair (an oco take profit) for the entry of ``s``."""
    return leg_client_order_id(coid(s), Leg.TAKE_PROFIT)


# ---------------------------------------------------------------------- the store


def _exit(store: OrderStore, coid_: str, *, parent: str, side: Side = Side.SELL) -> None:
    store.add_intent(
        client_order_id=coid_, signal=None, strategy="s1", symbol="AAPL", side=side,
        qty=D(2), notional=None, price=D(100), parent=parent, leg="take_profit",
    )  # fmt: skip


def _fill(store: OrderStore, coid_: str, exec_id: str, side: Side, qty: str) -> None:
    fill = Fill(
        ts=1, id=exec_id, order_id="b-" + exec_id, client_order_id=coid_, strategy="s1",
        symbol="AAPL", side=side, qty=D(qty), price=D(100),
    )  # fmt: skip
    assert store.add_fill(fill)


def test_the_store_keeps_the_cancel_of_an_exit_and_the_fill_mark_of_a_waiting_order(
    tmp_path: Path,
) -> None:
    store = OrderStore(tmp_path / "orders.sqlite")
    store.add_intent(
        client_order_id="entry", signal=None, strategy="s1", symbol="AAPL", side=Side.BUY,
        qty=D(2), notional=None, price=D(100),
    )  # fmt: skip
    _exit(store, "exit-1", parent="entry")
    _exit(store, "exit-2", parent="entry")
    assert [o.client_order_id for o in store.open_exits("AAPL")] == ["exit-1", "exit-2"]
    assert store.open_exits("MSFT") == []
    assert store.get("exit-1").cancel is None  # type: ignore[union-attr]

    store.want_cancel(["exit-1"])
    store.cancel_sent("exit-2")  # never wanted: nothing to mark sent
    reopened = OrderStore(tmp_path / "orders.sqlite")  # committed: another connection sees it
    assert reopened.get("exit-1").cancel == "wanted"  # type: ignore[union-attr]
    assert reopened.get("exit-2").cancel is None  # type: ignore[union-attr]
    store.cancel_sent("exit-1")
    store.want_cancel(["exit-1"])  # asked again after a restart: stays sent
    assert reopened.get("exit-1").cancel == "sent"  # type: ignore[union-attr]

    assert store.last_fill() == 0
    _fill(store, "entry", "x1", Side.BUY, "2")
    mark = store.last_fill()
    assert mark == 1
    store.add_intent(
        client_order_id="close", signal=None, strategy="s1", symbol="AAPL", side=Side.SELL,
        qty=D(2), notional=None, price=D(100), fill_mark=mark,
    )  # fmt: skip
    assert reopened.get("close").fill_mark == 1  # type: ignore[union-attr]
    store.set_fill_mark("close", 7)  # only the first mark is kept
    assert store.get("close").fill_mark == 1  # type: ignore[union-attr]
    assert store.exit_fills_after(mark, "AAPL", "sell", "s1") == 0
    _fill(store, "exit-1", "x2", Side.SELL, "1.5")
    assert store.exit_fills_after(mark, "AAPL", "sell", "s1") == D("1.5")
    assert store.exit_fills_after(mark, "AAPL", "sell", None) == D("1.5")
    assert store.exit_fills_after(mark, "AAPL", "sell", "other") == 0
    assert store.exit_fills_after(mark + 1, "AAPL", "sell", "s1") == 0
    assert store.exit_fills_after(mark, "AAPL", "buy", "s1") == 0  # the entry is no exit
    store.transition("exit-1", OrderStatus.CANCELED)
    assert [o.client_order_id for o in store.open_exits("AAPL")] == ["exit-2"]
    reopened.close()
    store.close()


# ---------------------------------------------------------------------- the executor


def test_a_sell_after_a_bracketed_buy_cancels_its_exits_first_then_sells(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    buy = signal(order=EXITS)
    rig.decide(buy)
    pair = pair_of(buy)
    assert rig.broker.submitted == [coid(buy), pair]
    position = rig.store.positions()["AAPL"]
    sell = signal(Side.SELL)
    rig.decide(sell)
    assert rig.broker.canceled == [pair]
    assert rig.broker.submitted == [coid(buy), pair, coid(sell)]  # the cancel came first
    exit_order, sold = rig.store.get(pair), rig.store.get(coid(sell))
    assert exit_order is not None and exit_order.status == OrderStatus.CANCELED
    assert exit_order.cancel == "sent"
    assert sold is not None and sold.status == OrderStatus.FILLED and sold.qty == position
    assert rig.store.positions() == {} == rig.broker.held
    assert rig.core.reconcile() == []
    rig.core.close()


def test_a_buy_that_adds_to_the_position_leaves_the_exits_alone(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    first = signal(order=EXITS)
    rig.decide(first, signal())
    assert rig.broker.canceled == []
    exit_order = rig.store.get(pair_of(first))
    assert exit_order is not None and exit_order.open and exit_order.cancel is None
    rig.core.close()


def test_an_unconfirmed_cancel_keeps_the_sell_waiting_until_it_is_confirmed(
    tmp_path: Path,
) -> None:
    broker = BookBroker()
    rig = make_rig(tmp_path, broker=broker)
    buy = signal(order=EXITS)
    rig.decide(buy)
    broker.cancel_confirms = False
    sell = signal(Side.SELL)
    rig.decide(sell)
    pending = rig.store.get(coid(sell))
    assert pending is not None and pending.phase == Phase.INTENT
    assert coid(sell) not in broker.submitted  # never sent into the shares the exit holds
    rig.core.follow_open_orders()  # tried again: still not confirmed
    assert coid(sell) not in broker.submitted and len(broker.canceled) >= 2

    pair = pair_of(buy)
    broker.orders[pair] = dataclasses.replace(broker.orders[pair], status=OrderStatus.CANCELED)
    rig.core.follow_open_orders()
    sold = rig.store.get(coid(sell))
    assert sold is not None and sold.status == OrderStatus.FILLED
    assert broker.submitted.count(coid(sell)) == 1
    assert rig.store.positions() == {} == broker.held
    rig.core.close()


class FillsInsteadOfCancelling(BookBroker):
    """The exit fills (its stop is hit) just as the cancel arrives: the cancel comes too late."""

    def cancel(self, client_order_id: str) -> bool:
        order = self.orders[client_order_id]
        assert order.qty is not None
        self.orders[client_order_id] = dataclasses.replace(
            order, status=OrderStatus.FILLED, filled_qty=order.qty,
            filled_avg_price=D("98"), broker_status="filled",
        )  # fmt: skip
        self.fill_held(order.symbol, order.side, order.qty)
        return False


def test_an_exit_that_fills_while_it_is_cancelled_drops_the_sell(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, broker=FillsInsteadOfCancelling())
    buy = signal(order=EXITS)
    rig.decide(buy)
    sell = signal(Side.SELL)
    rig.decide(sell)
    dropped = rig.store.get(coid(sell))
    assert dropped is not None and dropped.status == OrderStatus.CANCELED
    assert dropped.reason is not None and "position changed" in dropped.reason
    assert coid(sell) not in rig.broker.submitted  # no second sale of the same shares
    assert rig.store.positions() == {} == rig.broker.held
    assert "executor.order_rejected" in rig.alerts()
    rig.core.close()


def test_while_halted_the_exits_are_cancelled_and_the_closing_sell_leaves(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    buy = signal(order=EXITS)
    rig.decide(buy)
    rig.store.halt("operator")
    sell = signal(Side.SELL)
    rig.decide(sell)
    assert rig.broker.canceled == [pair_of(buy)]
    sold = rig.store.get(coid(sell))
    assert sold is not None and sold.status == OrderStatus.FILLED
    assert rig.store.positions() == {}
    rig.core.close()


class Crash(BaseException):
    """The process dies here (a BaseException: no handler of the core catches it)."""


@pytest.mark.parametrize("step", ["cancel_stored", "exits_canceled"])
def test_a_crash_in_the_cancel_sends_the_sell_once_on_restart(tmp_path: Path, step: str) -> None:
    broker = BookBroker()

    def die(at: str) -> None:
        if at == step:
            raise Crash(at)

    first = make_rig(tmp_path, broker=broker, checkpoint=die)
    buy = signal(order=EXITS)
    first.decide(buy)
    pair = pair_of(buy)
    sell = signal(Side.SELL)
    with pytest.raises(Crash):
        first.decide(sell)
    assert coid(sell) not in broker.submitted
    stored = first.store.get(pair)
    assert stored is not None and stored.cancel is not None  # decided before any request
    assert broker.canceled == ([] if step == "cancel_stored" else [pair])
    first.store._db.close()  # the process is gone: nothing more is written

    second = make_rig(tmp_path, broker=broker)  # start-up: the cancel finishes, the sell goes
    assert broker.submitted == [coid(buy), pair, coid(sell)]
    assert broker.orders[pair].status == OrderStatus.CANCELED
    assert second.store.positions() == {} == broker.held
    assert second.core.reconcile() == []
    second.core.close()

    third = make_rig(tmp_path, broker=broker)  # and nothing more
    assert broker.submitted == [coid(buy), pair, coid(sell)]
    third.core.close()


# ---------------------------------------------------------------------- the simulated broker


def test_the_simulated_broker_cancels_a_working_bracket_with_its_legs(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),  # never contacted here
        execution=ExecutionSettings(sim=SimBrokerSettings(slippage_bps=D(0))),
    )
    broker = SimulatedBroker(settings)
    seen: list[TradeUpdate] = []
    broker._on_update = seen.append  # what start_updates installs, without the Kafka thread
    try:
        spec = OrderSpec(
            type="limit", limit_price=D(99), take_profit_price=D(110), stop_loss_price=D(95)
        )
        broker.submit(OrderRequest("ft-b", "AAPL", Side.BUY, qty=D(2), spec=spec))
        plain = OrderRequest("ft-m", "AAPL", Side.BUY, qty=D(1))  # waits for its first price
        broker.submit(plain)
        assert broker.cancel("ft-b") is True
        entry = broker.get_order("ft-b")
        assert entry is not None and entry.status == OrderStatus.CANCELED
        assert {leg.status for leg in entry.legs} <= {OrderStatus.CANCELED}
        assert "canceled" in {u.event for u in seen if u.order.client_order_id == "ft-b"}
        assert broker.cancel("ft-b") is False  # final already
        assert broker.cancel("ft-none") is False  # no such order
        assert broker.cancel("ft-m") is True
        assert broker.get_order("ft-m").status == OrderStatus.CANCELED  # type: ignore[union-attr]
        broker._on_price(b'{"symbol": "AAPL", "price": 90, "ts": 5}')  # through every price
        assert broker.positions() == {}  # nothing cancelled filled
        assert broker.open_orders() == []
    finally:
        broker.close()


def test_an_oco_exit_pair_for_the_position_leaves_the_exits_alone(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    buy = signal(order={"qty": "2", **EXITS})
    rig.decide(buy)
    oco = {"qty": "1", "oco": True, "type": "limit", "limit_price": "110"}
    oco |= {"take_profit_price": "110", "stop_loss_price": "95"}
    pair = signal(Side.SELL, order=oco)
    rig.decide(pair)
    assert rig.broker.canceled == []
    kept = rig.store.get(pair_of(buy))
    assert kept is not None and kept.open and kept.cancel is None
    judged = rig.store.get(coid(pair))  # as before: the open exits already close the shares
    assert judged is not None and judged.rule == "nothing_to_sell"
    rig.core.close()
