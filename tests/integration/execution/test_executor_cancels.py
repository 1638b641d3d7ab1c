"""Cancels on the live path (issue 19): alpaca-py against the loopback fake of Alpaca's trading
API, and the executor on the session's real Kafka broker.

``AlpacaBroker.cancel`` answers "taken" or "nothing to cancel" (Alpaca's 404 and 422), and an
unclear answer (a gateway's 502) is a ``TransientError``; a sell signal after a bracketed buy
cancels the bracket's legs before the sell is posted; ``flatten`` cancels them before it plans,
so it sells the whole position; a SIGKILL after the cancel is stored (before any request; the legs
are cancelled at the broker while the executor is down) and after the cancels are confirmed
(before the sell) ends, after a restart, with one sell, no leg placed again, and the store equal
to the broker.
"""

from __future__ import annotations

import signal as signals
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

from flinktrade.errors import TransientError
from flinktrade.events import OrderSpec, OrderStatus, Side, Signal
from flinktrade.execution.brokers import make_broker
from flinktrade.execution.brokers.alpaca import AlpacaBroker
from flinktrade.execution.brokers.base import OrderRequest
from flinktrade.execution.loop import Executor
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

D = Decimal
BRACKET = OrderSpec(take_profit_price=D(110), stop_loss_price=D(95))


def test_alpaca_cancel_answers_taken_nothing_to_cancel_or_unclear(
    fake: FakeAlpacaTrading, alpaca: AlpacaBroker
) -> None:
    limit = OrderSpec(type="limit", limit_price=D("99.5"), time_in_force="gtc")
    for name in ("ft-c-1", "ft-c-2"):
        alpaca.submit(OrderRequest(name, "AAPL", Side.BUY, qty=D(1), spec=limit))
    assert alpaca.cancel("ft-c-1") is True
    assert fake.by_client_id["ft-c-1"].status == "canceled"
    assert alpaca.cancel("ft-c-1") is False  # final already: nothing to cancel
    assert alpaca.cancel("ft-no-such-order") is False  # Alpaca's 404 on the look-up

    booked = fake.by_client_id["ft-c-2"]
    fake.answer_with(502, method="DELETE", path=f"/v2/orders/{booked.id}")
    with pytest.raises(TransientError, match="HTTP 502"):
        alpaca.cancel("ft-c-2")
    assert fake.by_client_id["ft-c-2"].status == "new"  # the gateway's page took nothing
    assert alpaca.cancel("ft-c-2") is True  # asking again is safe
    assert fake.by_client_id["ft-c-2"].status == "canceled"


def bracketed_buy_then_sell() -> tuple[Signal, Signal]:
    buy, sell = make_signals(2, symbols=("AAPL",))
    buy = buy.model_copy(update={"order": BRACKET})
    sell = sell.model_copy(update={"side": Side.SELL})
    return buy, sell


def wait_for_legs(env: Env, entry: Signal) -> None:
    store = env.store()
    try:
        wait_until(lambda: len(store.legs(coid(entry))) == 2, 60, "both legs stored")
        wait_until(lambda: store.positions() == {"AAPL": D(1)}, 60, "the entry filled")
    finally:
        store.close()


def leg_ids(fake: FakeAlpacaTrading, entry: Signal) -> list[str]:
    with fake.lock:
        parent = fake.by_client_id[coid(entry)]
        return [leg.client_order_id for leg in parent.legs]


def cancels_before_the_last_post(fake: FakeAlpacaTrading) -> bool:
    with fake.lock:
        methods = [method for method, path in fake.requests if path.startswith("/v2/orders")]
    posts = [i for i, m in enumerate(methods) if m == "POST"]
    deletes = [i for i, m in enumerate(methods) if m == "DELETE"]
    return bool(deletes) and len(posts) == 2 and max(deletes) < posts[-1]


def check_closed(env: Env, fake: FakeAlpacaTrading, entry: Signal, sell: Signal) -> None:
    """One sell, the legs cancelled (never placed again), the store equal to the broker."""
    store = env.store()
    try:
        wait_until(
            lambda: store.positions() == {} and store.open_orders() == [], 60, "the store settled"
        )
        legs = store.legs(coid(entry))
        assert {o.status for o in legs} == {OrderStatus.CANCELED}
        sold = store.get(coid(sell))
        assert sold is not None and sold.status == OrderStatus.FILLED and sold.qty == D(1)
    finally:
        store.close()
    assert fake.position_qty() == {}
    assert fake.orders_created(coid(sell)) == 1 and fake.orders_created(coid(entry)) == 1
    assert fake.duplicates() == {}
    assert all(fake.by_client_id[c].status == "canceled" for c in leg_ids(fake, entry))


def test_a_sell_after_a_bracketed_buy_cancels_the_legs_before_it_is_sent(
    env: Env, fake: FakeAlpacaTrading, start_executor: Callable[..., Running]
) -> None:
    running = start_executor(env.settings())
    running.started()
    buy, sell = bracketed_buy_then_sell()
    env.produce([buy])
    wait_for_legs(env, buy)
    env.produce([sell])
    wait_until(lambda: fake.orders_created(coid(sell)) == 1, 60, "the sell placed")
    check_closed(env, fake, buy, sell)
    assert cancels_before_the_last_post(fake)
    assert running.finish().error is None


def test_flatten_cancels_the_open_legs_then_sells_the_whole_position(
    env: Env, fake: FakeAlpacaTrading, start_executor: Callable[..., Running]
) -> None:
    running = start_executor(env.settings())
    running.started()
    [buy] = make_signals(1)
    buy = buy.model_copy(update={"order": BRACKET})
    env.produce([buy])
    wait_for_legs(env, buy)
    assert running.finish().error is None

    settings = env.settings()
    [closed] = Executor(settings, make_broker(settings, "alpaca")).flatten(timeout_s=30.0)
    # before, the open legs counted as "already closing": nothing was sold
    assert (closed.side, closed.qty, closed.status) == (Side.SELL, D(1), OrderStatus.FILLED)
    assert fake.position_qty() == {}
    assert all(fake.by_client_id[c].status == "canceled" for c in leg_ids(fake, buy))
    assert cancels_before_the_last_post(fake)
    store = env.store()
    try:
        assert {o.status for o in store.legs(coid(buy))} == {OrderStatus.CANCELED}
        assert store.positions() == {} and store.open_orders() == []
    finally:
        store.close()


@pytest.mark.parametrize("step", ["cancel_stored", "exits_canceled"])
def test_sigkill_in_the_cancel_sells_once_after_the_restart(
    env: Env, fake: FakeAlpacaTrading, step: str
) -> None:
    buy, sell = bracketed_buy_then_sell()
    proc = spawn_executor(env, FLINKTRADE_EXECUTOR_CRASH_AT=f"{step}:1")
    try:
        env.produce([buy])
        wait_for_legs(env, buy)
        env.produce([sell])
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    run_until_killed(proc, 90)
    assert fake.orders_created(coid(sell)) == 0  # died before the sell was sent
    with fake.lock:
        deleted = any(method == "DELETE" for method, _ in fake.requests)
    store = env.store()
    try:
        legs = store.legs(coid(buy))
        assert {o.cancel for o in legs} <= {"wanted", "sent"} and len(legs) == 2
    finally:
        store.close()
    if step == "cancel_stored":
        assert not deleted  # the cancel was stored before any request
        first_leg = fake.by_client_id[leg_ids(fake, buy)[0]]
        fake.cancel(first_leg.id)  # the legs go while the executor is down (one takes both)
    else:
        assert deleted

    proc = spawn_executor(env)
    try:
        wait_until(lambda: fake.orders_created(coid(sell)) == 1, 60, "the sell placed")
        check_closed(env, fake, buy, sell)
    finally:
        proc.send_signal(signals.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert fake.orders_created(coid(sell)) == 1
