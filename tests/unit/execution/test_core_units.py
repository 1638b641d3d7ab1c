"""The executor's core without Kafka: one test per decision branch.

Signals, prices and the outbox's sink are in memory (``exec_core_fakes``); the order store is the
real SQLite file. The same behaviour against the real broker is in tests/integration/execution.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from exec_core_fakes import BookBroker, Rig, make_rig, signal

from flinktrade import events
from flinktrade.errors import ConfigError, TransientError
from flinktrade.events import OrderStatus, Side
from flinktrade.execution import flatten, reconcile
from flinktrade.execution.brokers.base import BrokerOrder, OrderRefused, OutcomeUnknown
from flinktrade.execution.killswitch import KillSwitch, TradingState
from flinktrade.execution.lifecycle import Resolution
from flinktrade.execution.reconcile import (
    BrokerUnreachable,
    BrokerView,
    FinalButOpen,
    MissingAtBroker,
    PositionMismatch,
    UnknownOpenOrder,
    Unresolved,
)
from flinktrade.execution.reconciling import TRANSIENT_RECONCILE_S
from flinktrade.execution.store import OrderStore, Phase
from flinktrade.testing.hostile import hostile_records


def coid(s: events.Signal) -> str:
    return "ft-" + s.id


def intent(store: OrderStore, s: events.Signal, qty: str = "1") -> str:
    store.add_intent(
        client_order_id=coid(s), signal=s, symbol=s.symbol, side=s.side, qty=Decimal(qty),
        notional=None, price=s.price,
    )  # fmt: skip
    return coid(s)


# ---------------------------------------------------------------------- signals


def test_an_order_is_stored_then_its_offset_committed_then_sent(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.broker.on_submit = rig.source.log
    s = signal()
    rig.decide(s)
    assert rig.source.log == ["decided 0", "commit sync", f"submit {coid(s)}", "commit async"]
    order = rig.store.get(coid(s))
    assert order is not None and order.status == OrderStatus.FILLED
    assert order.phase == Phase.FINAL
    assert rig.store.positions() == {"AAPL": Decimal(1)}
    assert rig.core.book.positions == {"AAPL": Decimal(1)}
    rig.core.publish()
    topics = [topic for topic, _ in rig.sink.sent]
    assert topics.count("trading.fills") == 1 and "trading.orders" in topics


def test_an_undecodable_record_is_a_dead_letter_and_the_next_one_is_decided(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path)
    rig.source.add(b"{not json")
    rig.decide(signal())
    assert rig.source.decided_offsets == [0, 1]
    rig.core.publish()
    letters = [v for t, v in rig.sink.sent if t == "deadletter"]
    assert len(letters) == 1
    letter = events.decode(events.DeadLetter, letters[0])
    assert letter.reason.startswith("undecodable signal")
    assert rig.core.stats.invalid == 1 and len(rig.broker.submitted) == 1


def test_a_failure_on_one_signal_is_a_dead_letter(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)

    def broken(*_args: object, **_kw: object) -> None:
        raise ValueError("boom")

    rig.core.desk.snapshot = broken  # type: ignore[assignment,method-assign]
    rig.decide(signal())
    rig.core.publish()
    letters = [events.decode(events.DeadLetter, v) for t, v in rig.sink.sent if t == "deadletter"]
    assert [d.reason for d in letters] == ["executor failed on this signal: ValueError: boom"]
    assert rig.broker.submitted == []


def test_a_failure_of_the_source_itself_stops_the_core(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)

    def down(*, sync: bool) -> None:
        raise ConnectionError("bus down")

    rig.source.commit = down  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        rig.decide(signal())
    assert rig.broker.submitted == []  # stored, not sent: a restart resumes from the intent
    assert rig.store.open_orders()[0].phase == Phase.INTENT


def test_a_repeated_signal_is_skipped(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    s = signal()
    rig.decide(s)
    rig.decide(s)
    assert rig.core.stats.repeats == 1
    assert rig.broker.submitted == [coid(s)]
    assert rig.source.decided_offsets == [0, 1]


@pytest.mark.parametrize(
    ("case", "rule", "alerted"),
    [
        ("halted", "kill_switch", False),
        ("blocked", "reconciliation", False),
        ("old", "signal_age", True),
        ("no_price", "no_market_price", True),
        ("far_price", "price_deviation", True),
        ("sell_nothing", "nothing_to_sell", False),
        ("too_big", "max_order_qty", True),
    ],
)
def test_each_deny_reason_is_stored_and_alerted_unless_quiet(
    tmp_path: Path, case: str, rule: str, alerted: bool
) -> None:
    rig = make_rig(tmp_path, max_order_qty=Decimal("0.5") if case == "too_big" else Decimal(1000))
    s = signal()
    if case == "halted":
        rig.store.halt("test")
    elif case == "blocked":
        rig.core.guard.blocked = "position AAPL: broker 1, store 0"
    elif case == "old":
        s = signal(age_ms=700_000)
    elif case == "no_price":
        s = signal(symbol="MSFT")
    elif case == "far_price":
        s = signal(price="150")
    elif case == "sell_nothing":
        s = signal(Side.SELL)
    rig.decide(s)
    order = rig.store.get(coid(s))
    assert order is not None and order.status == OrderStatus.DENIED
    assert order.rule == rule
    assert rig.broker.submitted == []
    assert rig.core.stats.denied_by_rule == {rule: 1}
    assert ("executor.order_denied" in rig.alerts()) is alerted


def test_a_runaway_of_rate_denials_sets_the_kill_switch(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, max_orders_per_minute=1, halt_after_rate_denials=2)
    rig.decide(*(signal() for i in range(3)))
    assert len(rig.broker.submitted) == 1
    assert rig.core.stats.denied_by_rule == {"max_orders_per_minute": 2}
    halted = rig.store.halted()
    assert halted is not None and halted.startswith("runaway: 2 signals over the order rate")
    assert "executor.halt" in rig.alerts()


# ---------------------------------------------------------------------- placing, resolving


def test_a_refused_order_is_rejected_and_alerted(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    rig.broker.submit_error = OrderRefused("insufficient buying power")
    s = signal()
    rig.decide(s)
    order = rig.store.get(coid(s))
    assert order is not None and order.status == OrderStatus.REJECTED
    assert order.reason == "insufficient buying power"
    assert "executor.order_rejected" in rig.alerts()


@pytest.mark.parametrize("arrived", [True, False])
def test_an_unknown_outcome_is_looked_up_never_resent(tmp_path: Path, arrived: bool) -> None:
    rig = make_rig(tmp_path)
    rig.broker.submit_error = OutcomeUnknown("read timeout")
    rig.broker.accept_after_error = arrived
    s = signal()
    rig.decide(s)
    order = rig.store.get(coid(s))
    assert order is not None
    assert rig.broker.submitted == [coid(s)]  # one send, then look-ups only
    assert rig.core.stats.unknown == 1
    if arrived:
        assert order.status == OrderStatus.FILLED
    else:
        assert order.phase == Phase.UNKNOWN and order.open


def test_resend_refusal_kill_switch_age_and_flatten_orders(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    lifecycle = rig.core.orders
    fresh, old = signal(), signal(age_ms=700_000)
    intent(rig.store, fresh)
    intent(rig.store, old)
    stored_fresh, stored_old = rig.store.get(coid(fresh)), rig.store.get(coid(old))
    assert stored_fresh is not None and stored_old is not None
    assert lifecycle.resend_refusal(stored_fresh) is None
    why_old = lifecycle.resend_refusal(stored_old)
    assert why_old is not None and why_old.startswith("signal is 70")
    rig.store.halt("operator")
    assert lifecycle.resend_refusal(stored_fresh) == "kill switch is on (operator)"
    rig.store.add_intent(
        client_order_id="ft-flat-AAPL-20260101-1", signal=None, strategy=flatten.STRATEGY,
        symbol="AAPL", side=Side.SELL, qty=Decimal(1), notional=None, price=None,
    )  # fmt: skip
    flat = rig.store.get("ft-flat-AAPL-20260101-1")
    assert flat is not None and lifecycle.resend_refusal(flat) is None


def test_each_resolution(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    lifecycle, broker, store = rig.core.orders, rig.broker, rig.store
    found, missing, lost, sent, late = (signal() for i in range(5))
    for s in (found, missing, lost, sent, late):
        intent(store, s)
    broker.orders[coid(found)] = BrokerOrder(
        id="b-x", client_order_id=coid(found), symbol="AAPL", side=Side.BUY, qty=Decimal(1),
        status=OrderStatus.NEW, filled_qty=Decimal(0), filled_avg_price=None, broker_status="new",
    )  # fmt: skip
    store.transition(coid(missing), OrderStatus.NEW, broker_order_id="b-gone")

    assert lifecycle.resolve(coid(found), allow_resend=False) == Resolution.FOUND
    stored_found = store.get(coid(found))
    assert stored_found is not None and stored_found.phase == Phase.ACKED
    assert lifecycle.resolve(coid(missing), allow_resend=True) == Resolution.MISSING
    assert lifecycle.resolve(coid(lost), allow_resend=False) == Resolution.UNREACHABLE
    assert lifecycle.resolve(coid(sent), allow_resend=True) == Resolution.RESENT
    assert broker.submitted == [coid(sent)]
    broker.lookup_error = TransientError("connection reset")
    assert lifecycle.resolve(coid(late), allow_resend=True) == Resolution.UNREACHABLE
    broker.lookup_error = None
    store.halt("operator")
    assert lifecycle.resolve(coid(late), allow_resend=True) == Resolution.ABANDONED
    abandoned = store.get(coid(late))
    assert abandoned is not None and abandoned.status == OrderStatus.CANCELED
    assert abandoned.reason == "not sent: kill switch is on (operator)"
    assert broker.submitted == [coid(sent)]


# ---------------------------------------------------------------------- reconciliation


def _open(order_id: str, client_id: str, status: str = "new") -> BrokerOrder:
    return BrokerOrder(
        id=order_id, client_order_id=client_id, symbol="MSFT", side=Side.SELL, qty=Decimal(3),
        status=OrderStatus.NEW, filled_qty=Decimal(0), filled_avg_price=None, broker_status=status,
    )  # fmt: skip


def test_reconciliation_differences_are_typed_and_worded() -> None:
    found = reconcile.differences(
        [("a", Resolution.FOUND), ("b", Resolution.MISSING), ("c", Resolution.UNREACHABLE)],
        BrokerView(
            [_open("b-1", "x"), _open("b-2", "done", "accepted"), _open("b-3", "ok")],
            {"AAPL": Decimal(5), "TSLA": Decimal(1)},
        ),
        {"x": None, "done": OrderStatus.FILLED, "ok": OrderStatus.NEW},
        {"AAPL": Decimal(5), "MSFT": Decimal(2)},
    )
    assert found == [
        MissingAtBroker("b"),
        Unresolved("c"),
        UnknownOpenOrder("b-1", "x", Side.SELL, Decimal(3), "MSFT"),
        FinalButOpen("done", OrderStatus.FILLED, "accepted"),
        PositionMismatch("MSFT", Decimal(0), Decimal(2)),
        PositionMismatch("TSLA", Decimal(1), Decimal(0)),
    ]
    assert [str(d) for d in found] == [
        "order b was acknowledged but the broker has no record",
        "could not resolve order c (outcome unknown)",
        "open order b-1 (x: sell 3 MSFT) at the broker is not in the store",
        "order done is filled in the store but accepted at the broker",
        "position MSFT: broker 0, store 2",
        "position TSLA: broker 1, store 0",
    ]
    assert reconcile.any_transient(found)  # the unresolved order
    assert not reconcile.any_transient(found[2:])


def test_an_unreachable_broker_is_one_transient_difference() -> None:
    found = reconcile.differences(
        [("a", Resolution.FOUND)], BrokerUnreachable("timed out"), {}, {"AAPL": Decimal(1)}
    )
    assert found == [BrokerUnreachable("timed out")]
    assert reconcile.describe(found) == "could not reach the broker: timed out"
    assert reconcile.any_transient(found)
    assert reconcile.describe([]) is None


def test_a_position_mismatch_blocks_until_the_positions_are_adopted(tmp_path: Path) -> None:
    broker = BookBroker()
    broker.held = {"AAPL": Decimal(7)}
    rig = make_rig(tmp_path, broker=broker)
    assert rig.core.guard.blocked == "position AAPL: broker 7, store 0"
    assert rig.core.guard.state() == TradingState.BLOCKED
    rig.decide(signal())
    assert rig.broker.submitted == []
    rig.store.adopt_positions(broker.held)
    assert rig.core.reconcile() == []
    assert rig.core.guard.state() == TradingState.RUNNING
    assert rig.alerts() == ["executor.reconciliation_failed", "executor.reconciled"]


class Ticking:
    """A monotonic clock the test moves (the core's ``monotonic``)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def held_rig(tmp_path: Path, **risk: Any) -> tuple[Rig, Ticking]:
    """A rig whose broker cannot be read: start-up reconciliation leaves a transient block."""
    broker = BookBroker()
    broker.read_error = TransientError("timed out")
    rig = make_rig(tmp_path, broker=broker, **risk)
    assert rig.core.guard.blocked == "could not reach the broker: timed out"
    assert rig.core.guard.waiting
    clock = Ticking()
    rig.core.monotonic = clock
    return rig, clock


def test_signals_in_a_transient_block_are_held_then_placed_when_it_lifts(tmp_path: Path) -> None:
    rig, clock = held_rig(tmp_path)
    first, second = signal(), signal()
    rig.decide(first, second)
    assert rig.broker.submitted == [] and rig.source.decided_offsets == []  # undecided
    assert rig.store.get(coid(first)) is None and rig.core.stats.held == 2
    rig.core.tick()  # the next reconciliation is not due yet: still held
    assert rig.core.stats.held == 2
    rig.broker.read_error = None
    clock.now += TRANSIENT_RECONCILE_S - 0.5
    rig.core.tick()  # not sooner than a transient block's next reconciliation
    assert rig.core.stats.held == 2 and rig.core.guard.blocked is not None
    clock.now += 0.5
    rig.core.tick()
    assert rig.core.guard.blocked is None
    assert rig.broker.submitted == [coid(first), coid(second)]  # in arrival order
    assert rig.source.decided_offsets == [0, 1] and rig.core.stats.held == 0
    assert rig.core.stats.denied == 0


def test_a_signal_after_held_ones_waits_behind_them(tmp_path: Path) -> None:
    rig, _clock = held_rig(tmp_path)
    rig.decide(signal())
    rig.broker.read_error = None
    rig.core.guard.set_blocked(None)  # lifted, but the held one is not decided yet
    later = signal()
    rig.decide(later)  # offsets are committed in order: it may not pass the held one
    assert rig.broker.submitted == [] and rig.core.stats.held == 2
    rig.core.tick()
    assert rig.source.decided_offsets == [0, 1]
    assert rig.broker.submitted[-1] == coid(later)


@pytest.mark.parametrize("hardens", ["mismatch", "kill_switch"])
def test_held_signals_are_denied_when_the_block_is_not_transient_any_more(
    tmp_path: Path, hardens: str
) -> None:
    rig, clock = held_rig(tmp_path)
    s = signal()
    rig.decide(s)
    rig.broker.read_error = None
    if hardens == "mismatch":
        rig.broker.held = {"AAPL": Decimal(7)}  # someone traded on the account meanwhile
    else:
        rig.store.halt("operator")
        rig.store.commit()
    clock.now += TRANSIENT_RECONCILE_S
    rig.core.tick()
    order = rig.store.get(coid(s))
    rule = "reconciliation" if hardens == "mismatch" else "kill_switch"
    assert order is not None and order.status == OrderStatus.DENIED and order.rule == rule
    assert rig.broker.submitted == [] and rig.source.decided_offsets == [0]


def test_a_held_signal_is_decided_once_it_has_waited_its_max_age(tmp_path: Path) -> None:
    rig, clock = held_rig(tmp_path, max_signal_age_s=10.0)
    s = signal()
    rig.decide(s)
    clock.now += 9.0
    rig.core.tick()  # still transient, still young enough to wait
    assert rig.core.stats.held == 1
    clock.now += 1.0
    rig.core.tick()
    order = rig.store.get(coid(s))
    assert order is not None and order.status == OrderStatus.DENIED  # the block, or its age
    assert rig.core.stats.held == 0 and rig.broker.submitted == []


HELD_HOSTILE = (
    "not_json", "empty", "one_mb_garbage", "nested_deep", "price_nan", "price_1e400",
    "price_tiny", "symbol_empty", "symbol_long", "symbol_very_long",
)  # fmt: skip


def test_hostile_records_held_in_a_transient_block_end_as_dead_letters_when_it_lifts(
    tmp_path: Path,
) -> None:
    """Held records are decided by the same desk as any other: each hostile one (not JSON, a
    NaN / 1e400 / 0.0000001 price, empty or long symbols, 1 MB of garbage) ends as one dead
    letter with a reason, the valid signal among them is placed, the core goes on."""
    rig, clock = held_rig(tmp_path)
    valid = signal()
    variants = dict(hostile_records(json.loads(events.encode(valid))))
    for name in HELD_HOSTILE:
        rig.source.add(variants[name])
    rig.decide(valid)
    assert rig.core.stats.held == len(HELD_HOSTILE) + 1 and rig.source.decided_offsets == []
    rig.broker.read_error = None
    clock.now += TRANSIENT_RECONCILE_S
    rig.core.tick()
    assert rig.core.stats.held == 0
    assert rig.source.decided_offsets == list(range(len(HELD_HOSTILE) + 1))
    letters = [events.decode(events.DeadLetter, v) for t, v in rig.sink.sent if t == "deadletter"]
    assert len(letters) == len(HELD_HOSTILE) and all(d.reason for d in letters)
    assert rig.broker.submitted == [coid(valid)]
    after = signal()
    rig.decide(after)  # not held any more: decided at once
    assert rig.broker.submitted == [coid(valid), coid(after)]


def test_a_block_that_is_not_transient_denies_at_once(tmp_path: Path) -> None:
    broker = BookBroker()
    broker.held = {"AAPL": Decimal(7)}
    rig = make_rig(tmp_path, broker=broker)
    assert not rig.core.guard.waiting
    s = signal()
    rig.decide(s)
    order = rig.store.get(coid(s))
    assert order is not None and order.rule == "reconciliation" and rig.core.stats.held == 0


# ---------------------------------------------------------------------- trading state


def test_trading_state_the_kill_switch_wins() -> None:
    assert TradingState.of(None) == TradingState.RUNNING
    assert TradingState.of(None, "position differs") == TradingState.BLOCKED
    assert TradingState.of("operator", "position differs") == TradingState.HALTED


def test_the_kill_switch_refuses_a_store_that_does_not_exist(tmp_path: Path) -> None:
    switch = KillSwitch(tmp_path / "nowhere.sqlite")
    asked: list[str] = []

    def factory() -> BookBroker:
        asked.append("built")
        return BookBroker()

    assert switch.reason() is None and switch.state() == TradingState.RUNNING
    with pytest.raises(ConfigError, match="no order store at"):
        switch.halt("x")
    with pytest.raises(ConfigError, match="no order store at"):
        switch.resume(adopt_from=factory)
    assert asked == []
    assert not (tmp_path / "nowhere.sqlite").exists()


def test_halt_then_resume_adopting_the_broker_positions(tmp_path: Path) -> None:
    path = tmp_path / "orders.sqlite"
    OrderStore(path).close()
    switch = KillSwitch(path)
    switch.halt("from a test")
    assert switch.state() == TradingState.HALTED and switch.reason() == "from a test"
    broker = BookBroker()
    broker.held = {"AAPL": Decimal(4)}
    assert switch.resume(adopt_from=lambda: broker) == {"AAPL": Decimal(4)}
    assert switch.state() == TradingState.RUNNING
    store = OrderStore(path)
    try:
        assert store.positions() == {"AAPL": Decimal(4)}
    finally:
        store.close()


def test_the_executor_alerts_once_when_the_kill_switch_is_set_from_outside(
    tmp_path: Path,
) -> None:
    rig = make_rig(tmp_path)
    KillSwitch(rig.store.path).halt("operator")
    rig.core.guard.watch()
    rig.core.guard.watch()
    KillSwitch(rig.store.path).resume()
    rig.core.guard.watch()
    assert rig.alerts() == ["executor.kill_switch", "executor.kill_switch"]


def test_a_daily_loss_over_the_limit_halts(tmp_path: Path) -> None:
    broker = BookBroker()
    broker.equity = Decimal(94_000)
    rig = make_rig(tmp_path, broker=broker, daily_loss_limit=Decimal(5000))
    halted = rig.store.halted()
    assert halted == "daily_loss_limit: loss today 6000.00 >= daily_loss_limit 5000"
    assert rig.alerts() == ["executor.halt"]


# ---------------------------------------------------------------------- flatten


def test_flatten_plans_then_sells_the_position_and_stays_halted(tmp_path: Path) -> None:
    broker = BookBroker()
    rig = make_rig(tmp_path, broker=broker)
    rig.decide(signal(), signal())
    plan = rig.core.flatten_plan()
    day = flatten.utc_day(events.now_ms())
    assert [(c.symbol, c.side, c.qty, c.client_order_id) for c in plan.closes] == [
        ("AAPL", Side.SELL, Decimal(2), f"ft-flat-AAPL-{day}-1")
    ]
    path = rig.store.path
    done = rig.core.flatten(timeout_s=5.0)
    assert [(o.client_order_id, o.status) for o in done] == [
        (f"ft-flat-AAPL-{day}-1", OrderStatus.FILLED)
    ]
    assert broker.held == {}
    assert KillSwitch(path).reason() == "flatten requested by the operator"


# ---------------------------------------------------------------------- retention


def test_orders_final_past_the_retention_are_deleted_and_their_signals_stay_denied(
    tmp_path: Path,
) -> None:
    now = [events.now_ms()]
    rig = make_rig(tmp_path, clock=lambda: now[0])
    filled, denied = signal(), signal(Side.SELL, symbol="MSFT")  # no MSFT held: a denial
    rig.decide(filled, denied)
    waiting = signal(symbol="NVDA")
    intent(rig.store, waiting)  # stored, never sent: not final, must stay
    assert rig.store.get(coid(denied)) is not None
    day = 86_400_000

    now[0] += 89 * day
    assert rig.core.prune() == 0  # not yet: 90 days by default
    now[0] += 2 * day
    assert rig.core.prune() == 2
    assert rig.store.get(coid(filled)) is None and rig.store.get(coid(denied)) is None
    assert rig.store.get(coid(waiting)) is not None
    assert rig.store.positions() == {"AAPL": Decimal(1)}  # fills stay

    rig.decide(filled)  # replayed 91 days on: too old to order again
    assert rig.broker.submitted == [coid(filled)]
    again = rig.store.get(coid(filled))
    assert again is not None and again.rule == "signal_age"


def test_a_retention_not_longer_than_the_signal_age_limit_is_refused() -> None:
    from flinktrade.execution.settings import ExecutionSettings, RiskSettings

    with pytest.raises(ValueError, match="order_retention_days must be longer"):
        ExecutionSettings(order_retention_days=0.0001, risk=RiskSettings(max_signal_age_s=60))
    assert ExecutionSettings(order_retention_days=0).order_retention_days == 0
