"""The order model on the live path: alpaca-py against the loopback fake of Alpaca's trading API,
and a real ``flinktrade execute`` process on the session's Kafka broker.

What the fake books is what Alpaca would have been sent (type, prices, time in force, size); a
percentage exit is placed by the executor when the entry fills, under the id derived from the
entry's, and a SIGKILL between the entry's fill and its exit places the exit exactly once on
restart. Prices are computed by hand from the contract (fill 100.25, +4 % on the cent: 104.26).
"""

from __future__ import annotations

import contextlib
import signal as signals
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from exec_helpers import (
    Env,
    Running,
    coid,
    make_signals,
    run_until_killed,
    spawn_executor,
    wait_until,
)

from flinktrade import bus
from flinktrade.events import OrderSpec, Side
from flinktrade.execution.brokers.alpaca import AlpacaBroker
from flinktrade.execution.brokers.base import OrderRefused, OrderRequest
from flinktrade.execution.settings import SimBrokerSettings
from flinktrade.execution.store import Phase
from flinktrade.orders import Leg, leg_client_order_id
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

D = Decimal


def test_a_limit_and_a_notional_order_reach_alpaca_as_asked(
    fake: FakeAlpacaTrading, alpaca: AlpacaBroker
) -> None:
    limit = OrderSpec(type="limit", limit_price=D("99.5"), time_in_force="gtc")
    placed = alpaca.submit(
        OrderRequest("ft-limit-1", "AAPL", Side.BUY, qty=D(3), spec=limit), may_send=lambda: None
    )
    assert placed.client_order_id == "ft-limit-1" and placed.type == "limit"
    booked = fake.by_client_id["ft-limit-1"]
    assert (booked.type, booked.limit_price, booked.time_in_force, booked.qty) == (
        "limit", D("99.5"), "gtc", D(3),
    )  # fmt: skip
    alpaca.submit(OrderRequest("ft-notional-1", "AAPL", Side.BUY, qty=None, notional=D("250.5")))
    booked = fake.by_client_id["ft-notional-1"]
    assert (booked.type, booked.notional, booked.qty) == ("market", D("250.5"), None)


def test_a_request_alpaca_py_refuses_is_refused_before_anything_is_sent(
    fake: FakeAlpacaTrading, alpaca: AlpacaBroker
) -> None:
    bad = OrderSpec.model_construct(type="trailing_stop")  # no trail: alpaca-py refuses it
    with pytest.raises(OrderRefused, match="invalid order"):
        alpaca.submit(OrderRequest("ft-bad-1", "AAPL", Side.BUY, qty=D(1), spec=bad))
    assert fake.orders_created() == 0


def test_sigkill_between_the_entrys_fill_and_its_exit_places_the_exit_once(
    env: Env, fake: FakeAlpacaTrading
) -> None:
    [plain] = make_signals(1)
    entry = plain.model_copy(update={"order": OrderSpec(take_profit_pct=D(4))})
    env.produce([entry])
    exit_id = leg_client_order_id(coid(entry), Leg.TAKE_PROFIT)

    run_until_killed(spawn_executor(env, FLINKTRADE_EXECUTOR_CRASH_AT="entry_final:1"), 60)
    assert fake.orders_created(coid(entry)) == 1 and fake.orders_created(exit_id) == 0

    proc = spawn_executor(env)
    try:
        wait_until(lambda: fake.orders_created(exit_id) == 1, 60, "the exit placed")
        store = env.store()
        try:
            wait_until(
                lambda: (o := store.get(exit_id)) is not None and o.phase == Phase.ACKED,
                60,
                "the exit acknowledged",
            )
            leg = store.get(exit_id)
            assert leg is not None and leg.parent == coid(entry) and leg.leg == "take_profit"
            assert store.positions() == fake.position_qty() == {"AAPL": D(1)}
        finally:
            store.close()
    finally:
        proc.send_signal(signals.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
    booked = fake.by_client_id[exit_id]
    assert (booked.side, booked.type, booked.limit_price, booked.qty) == (
        "sell", "limit", D("104.26"), D(1),
    )  # fmt: skip
    assert fake.orders_created(exit_id) == 1 and fake.orders_created(coid(entry)) == 1


def settle(env: Env, fake: FakeAlpacaTrading, what: str) -> None:
    """Wait until the store's positions equal the fake's and nothing is open in the store."""
    store = env.store()
    try:
        wait_until(
            lambda: store.positions() == fake.position_qty() and store.open_orders() == [],
            60,
            what,
        )
    finally:
        store.close()


def test_a_bracket_goes_to_alpaca_as_one_order_and_its_legs_are_followed(
    env: Env, fake: FakeAlpacaTrading, start_executor: Callable[..., Running]
) -> None:
    running = start_executor(env.settings())
    running.started()
    [plain] = make_signals(1)
    entry = plain.model_copy(
        update={"order": OrderSpec(take_profit_price=D(110), stop_loss_price=D(95))}
    )
    env.produce([entry])
    store = env.store()
    try:
        wait_until(lambda: len(store.legs(coid(entry))) == 2, 60, "both legs stored")
        wait_until(lambda: store.positions() == {"AAPL": D(1)}, 60, "the entry filled")
    finally:
        store.close()
    fake.push_price("AAPL", D(94))  # gaps through the stop loss: the take profit is canceled
    settle(env, fake, "the stop loss filled and the take profit canceled")
    stats = running.finish()
    assert stats.error is None
    with fake.lock:
        assert fake.requests.count(("POST", "/v2/orders")) == 1  # the legs are Alpaca's
    store = env.store()
    try:
        legs = {o.leg: o for o in store.legs(coid(entry))}
        assert legs["stop_loss"].status == "filled" and legs["take_profit"].status == "canceled"
        assert legs["stop_loss"].order.stop_price == D(95)
        assert store.positions() == {} == fake.position_qty()
    finally:
        store.close()


def test_percentage_exits_are_an_oco_pair_at_alpaca_after_the_fill(
    env: Env, fake: FakeAlpacaTrading, start_executor: Callable[..., Running]
) -> None:
    running = start_executor(env.settings())
    running.started()
    [plain] = make_signals(1)
    spec = OrderSpec(take_profit_pct=D(4), stop_loss_pct=D(2))
    entry = plain.model_copy(update={"order": spec})
    env.produce([entry])
    pair = leg_client_order_id(coid(entry), Leg.TAKE_PROFIT)
    wait_until(lambda: fake.orders_created(pair) == 1, 60, "the exit pair placed")
    booked = fake.by_client_id[pair]
    # fill 100.25: take profit +4 % = 104.26, stop loss -2 % = 98.245 -> 98.24 (never closer)
    assert (booked.side, booked.type, booked.limit_price) == ("sell", "limit", D("104.26"))
    store = env.store()
    try:
        wait_until(lambda: len(store.legs(pair)) == 1, 60, "the oco's stop leg stored")
        [stop] = store.legs(pair)
        assert stop.leg == "stop_loss" and stop.order.stop_price == D("98.24")
    finally:
        store.close()
    fake.push_price("AAPL", D(98))
    settle(env, fake, "the stop loss filled and the take profit canceled")
    assert running.finish().error is None
    store = env.store()
    try:
        take = store.get(pair)
        assert take is not None and take.status == "canceled"
        assert store.positions() == {} == fake.position_qty()
    finally:
        store.close()


def test_percentage_exits_in_the_simulated_broker_fill_through_the_matching_model(
    env: Env, start_executor: Callable[..., Running]
) -> None:
    """The executor with ``--broker sim``: the entry fills at the next price (100 + 5 bps), its
    oco exit pair is matched by the matching model, and a price through the stop closes it."""
    sim = SimBrokerSettings(price_topics=env.topics.prices)
    running = start_executor(env.settings(sim=sim), "sim")
    running.started()
    [plain] = make_signals(1)
    entry = plain.model_copy(update={"order": OrderSpec(take_profit_pct=D(4), stop_loss_pct=D(2))})
    env.produce([entry])
    pair = leg_client_order_id(coid(entry), Leg.TAKE_PROFIT)
    producer = bus.EventProducer(env.kafka.bootstrap_servers)
    store = env.store()
    try:
        wait_until(lambda: store.get(coid(entry)) is not None, 60, "the entry stored")
        # The first price after the entry fills it. The simulated broker follows prices from the
        # end offsets it reads once started, on a thread of its own: a price sent before that
        # read is not one it sees (under load it took longer than the entry's placing, and the
        # only price was missed). A live feed keeps ticking; so does this one, at 100, until the
        # fill (further prices at 100 leave the exits alone).
        deadline = time.monotonic() + 60
        while len(store.legs(pair)) != 1:
            assert time.monotonic() < deadline, "timed out waiting for the exit pair and its leg"
            env.send_price(producer, "AAPL", D(100))
            producer.flush()
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: len(store.legs(pair)) == 1, 1, "the exit pair and its stop leg")
        take = store.get(pair)
        [stop] = store.legs(pair)
        # fill 100.05: take profit +4 % = 104.052 -> 104.06, stop loss -2 % = 98.049 -> 98.04
        assert take is not None and take.order.take_profit_price == D("104.06")
        assert stop.order.stop_price == D("98.04")
        env.send_price(producer, "AAPL", D(97))  # through the stop: at 97 - 5 bps
        producer.flush()
        wait_until(
            lambda: store.positions() == {} and store.open_orders() == [], 60, "the stop filled"
        )
        take, stop = store.get(pair), store.legs(pair)[0]
        assert take is not None and take.status == "canceled" and stop.status == "filled"
        assert stop.filled_avg_price == D("96.9515")
    finally:
        store.close()
    assert running.finish().error is None
