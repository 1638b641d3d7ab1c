"""Happy path and injected broker faults: every signal becomes exactly one order, fills count once.

Each test is judged against what a no-fault run of the same signals must give: one order per
signal (client_order_id = 'ft-' + signal id), filled at the fake's price, positions equal to the
sum of the signals' quantities, at the broker and in the store alike. The fake runs with
``enforce_unique=False`` unless stated, so a blind re-send would show up as a duplicate order.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from exec_helpers import Env, coid, make_signals, wait_until

from flinktrade.events import Fill, OrderEvent, OrderStatus
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

N = 6


def expected_positions(n: int) -> dict[str, Decimal]:
    # make_signals alternates AAPL, MSFT; sizing qty 1 each; all buys.
    return {"AAPL": Decimal((n + 1) // 2), "MSFT": Decimal(n // 2)}


def assert_consistent(env: Env, signals: list, fake: FakeAlpacaTrading) -> None:
    expected_ids = {coid(s) for s in signals}
    assert fake.duplicates() == {}
    assert set(fake.created) == expected_ids  # one order per signal, no orphans
    assert all(n == 1 for n in fake.created.values())
    assert fake.position_qty() == expected_positions(len(signals))
    store = env.store()
    try:
        assert store.open_orders() == []
        assert store.positions() == fake.position_qty()
        assert {o.client_order_id for o in store.orders()} == expected_ids
        assert all(o.status == OrderStatus.FILLED for o in store.orders())
        assert len(store.fills()) == len(signals)
    finally:
        store.close()


def test_no_fault_run_places_one_order_per_signal_and_publishes_states(
    env: Env, fake: FakeAlpacaTrading, start_executor
) -> None:
    signals = make_signals(N)
    running = start_executor(env.settings())
    running.started()
    env.produce(signals)
    wait_until(lambda: fake.position_qty() == expected_positions(N), 30, "all fills at the fake")
    store = env.store()
    wait_until(lambda: store.open_orders() == [] and len(store.orders()) == N, 30, "store final")
    store.close()
    env.produce(signals[:2])  # at-least-once delivery: repeats place nothing
    wait_until(lambda: running.executor.stats.repeats == 2, 30, "repeats seen")
    stats = running.finish()
    assert stats.orders_sent == N and stats.fills == N
    assert_consistent(env, signals, fake)

    orders = env.read("orders", OrderEvent)
    by_order: dict[str, list[str]] = {}
    for o in orders:
        by_order.setdefault(o.client_order_id, []).append(o.status.value)
    assert set(by_order) == {coid(s) for s in signals}
    for statuses in by_order.values():
        assert statuses[0] == "pending" and statuses[-1] == "filled"
    fills = env.read("fills", Fill)
    assert len({f.id for f in fills}) == N
    assert all(f.price == Decimal("100.25") and f.qty == 1 for f in fills)


@pytest.mark.parametrize(
    "fault",
    [
        "error_after_accept",
        "drop_after_accept",
        "hang_after_accept",
        "error_before_accept",
        "rate_limit",
        "repeat_fills",
        "drop_events",
        "disconnect_stream",
    ],
)
def test_injected_fault_places_no_duplicate(
    env: Env, fake: FakeAlpacaTrading, start_executor, fault: str
) -> None:
    signals = make_signals(N)
    if fault == "error_after_accept":
        fake.error_after_accept(times=3, status=504)
    elif fault == "drop_after_accept":
        fake.drop_after_accept(times=3)
    elif fault == "hang_after_accept":
        fake.hang_after_accept(times=2, seconds=4.0)  # request timeout is 2 s
    elif fault == "error_before_accept":
        fake.error_before_accept(times=2, status=503)
    elif fault == "rate_limit":
        fake.rate_limit(times=2, reset_in_s=1.0)
    elif fault == "repeat_fills":
        fake.repeat_fills(3)
    elif fault == "drop_events":
        fake.drop_events(5)
    running = start_executor(env.settings())
    running.started()
    if fault == "disconnect_stream":
        env.produce(signals[:3])
        wait_until(lambda: fake.orders_created() >= 1, 30, "first order")
        fake.disconnect_stream()
        env.produce(signals[3:])
    else:
        env.produce(signals)
    wait_until(lambda: fake.position_qty() == expected_positions(N), 40, "all fills at the fake")
    store = env.store()
    wait_until(
        lambda: store.open_orders() == [] and store.positions() == expected_positions(N),
        40,
        "store caught up",
    )
    store.close()
    running.finish()
    assert_consistent(env, signals, fake)
    fills = env.read("fills", Fill)
    assert len({f.id for f in fills}) == N
    per_order = Counter(f.client_order_id for f in {f.id: f for f in fills}.values())
    assert set(per_order.values()) == {1}


def test_stream_reconnect_recovers_with_rest_polling_off(
    env: Env, fake: FakeAlpacaTrading, start_executor
) -> None:
    """Orders filled while the trade_updates stream is down reach their final state through the
    reconnect path alone: REST polling and reconciliation are set to 1000 s, so nothing else
    looks at open orders during the test. Orders before the drop and after the reconnect come
    through the stream. Each order ends filled once, in the store and on the topics."""
    signals = make_signals(N)
    settings = env.settings(order_poll_interval_s=1000.0, reconcile_interval_s=1000.0)
    running = start_executor(settings)
    running.started()
    store = env.store()

    def filled_in_store() -> int:
        return sum(o.status == OrderStatus.FILLED for o in store.orders())

    env.produce(signals[:2])
    wait_until(lambda: filled_in_store() == 2, 40, "orders before the drop filled via the stream")
    fake.refuse_stream(1_000_000)  # every reconnect attempt fails until released below
    fake.disconnect_stream()
    env.produce(signals[2:4])
    wait_until(lambda: fake.position_qty() == expected_positions(4), 40, "filled at the fake")
    # Filled while no connection was listening: their fill events went nowhere, and no REST
    # poll has looked since.
    assert filled_in_store() == 2
    connections = fake.stream_connections
    fake.refuse_stream(0)
    wait_until(lambda: filled_in_store() == 4, 60, "the reconnect path caught up")
    assert fake.stream_connections > connections  # it came back through a new connection
    env.produce(signals[4:])
    wait_until(lambda: filled_in_store() == N, 40, "orders after the reconnect filled")
    wait_until(lambda: store.open_orders() == [], 40, "nothing open")
    store.close()
    running.finish()
    assert_consistent(env, signals, fake)

    orders = env.read("orders", OrderEvent)
    assert len({o.event_id for o in orders}) == len(orders), "an order event was published twice"
    finals = Counter(o.client_order_id for o in orders if o.status == OrderStatus.FILLED)
    assert finals == {coid(s): 1 for s in signals}
    fills = env.read("fills", Fill)
    assert len({f.id for f in fills}) == len(fills) == N
    assert Counter(f.client_order_id for f in fills) == {coid(s): 1 for s in signals}
