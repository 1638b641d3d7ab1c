"""Replace on the live path (issue 19): ``AlpacaBroker.replace`` through alpaca-py against the
loopback fake of Alpaca's trading API, and the executor (on the session's real Kafka broker)
replacing its own exits as a day limit entry fills in two parts.

The old order is looked up by its ``client_order_id`` and ``PATCH``ed with the new id and fields;
the fake books a new order under the new id and ends the old one ``replaced`` (CANCELED to us).
The answers map as a submit's: an id already used is ``OrderExists``, an order that is not open
(or unknown, or a fractional qty alpaca-py cannot carry) is ``OrderRefused`` with nothing
changed, a gateway's 502 is ``OutcomeUnknown`` and the new id's look-up says what happened.
The executor places its percentage exits (an OCO pair) at the entry's first part and replaces
the pair's take-profit parent for the full qty at the second; a SIGKILL after the replace intent
is stored (before the request) and after the request (before its answer is applied) ends, after
a restart, with exactly one live exit pair, its parent at the full qty, and no second order.
(The fake keeps the stop leg's qty on a replace of its parent; what Alpaca does with it is not
checked here.)
"""

from __future__ import annotations

import signal as signals
from collections.abc import Callable, Iterator
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

from flinktrade.events import OrderSpec, OrderStatus, Side, Signal
from flinktrade.execution.brokers.alpaca import AlpacaBroker
from flinktrade.execution.brokers.base import (
    OrderExists,
    OrderRefused,
    OrderRequest,
    OutcomeUnknown,
)
from flinktrade.orders import Leg, leg_client_order_id
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

D = Decimal
PARTIAL = {"FLINKTRADE_EXECUTION__EXITS_ON_PARTIAL_FILL": "true"}
"""The executor places its exits at the first fill and replaces them (off by default)."""
LIMIT = OrderSpec(type="limit", limit_price=D(105), time_in_force="gtc")  # above the price


@pytest.fixture
def unique_fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading(fill_price=D("100.25"), enforce_unique=True) as f:
        yield f


@pytest.fixture
def alpaca_unique(unique_fake: FakeAlpacaTrading) -> Iterator[AlpacaBroker]:
    """The Alpaca adapter on a fake that refuses a used client_order_id, as Alpaca does."""
    fake = unique_fake
    broker = AlpacaBroker(
        fake.key_id, fake.secret_key, base_url=fake.base_url, stream_url=fake.stream_url,
        timeout_s=2.0,
    )  # fmt: skip
    yield broker
    broker.close()


def test_alpaca_replace_books_the_new_id_with_the_new_fields_and_ends_the_old(
    unique_fake: FakeAlpacaTrading, alpaca_unique: AlpacaBroker
) -> None:
    fake, alpaca = unique_fake, alpaca_unique
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
    unique_fake: FakeAlpacaTrading, alpaca_unique: AlpacaBroker
) -> None:
    fake, alpaca = unique_fake, alpaca_unique
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


ENTRY = OrderSpec(
    type="limit", limit_price=D(99), time_in_force="day", qty=D(5),
    take_profit_pct=D(4), stop_loss_pct=D(2),
)  # fmt: skip
"""A day limit buy below the fake's price (it rests), with the executor's own exit pair."""


def entry_signal() -> Signal:
    [s] = make_signals(1, symbols=("AAPL",))
    return s.model_copy(update={"order": ENTRY})


def pair_id(entry: Signal) -> str:
    return leg_client_order_id(coid(entry), Leg.TAKE_PROFIT)


def fill_part(fake: FakeAlpacaTrading, entry: Signal, qty: str) -> None:
    wait_until(lambda: coid(entry) in fake.by_client_id, 60, "the entry placed")
    fake.fill(fake.by_client_id[coid(entry)].id, D(qty), D(99))


def live_exits(fake: FakeAlpacaTrading, entry: Signal) -> list[tuple[str, Decimal | None]]:
    """The open orders at the fake other than the entry: (client_order_id, qty)."""
    with fake.lock:
        return sorted(
            (o.client_order_id, o.qty)
            for o in fake.orders.values()
            if o.status in ("new", "accepted", "held", "partially_filled")
            and o.client_order_id != coid(entry)
        )


def check_one_pair_at_full_qty(env: Env, fake: FakeAlpacaTrading, entry: Signal) -> None:
    new = pair_id(entry) + "-r1"
    wait_until(lambda: new in fake.by_client_id, 60, "the replace booked")
    store = env.store()
    try:
        wait_until(
            lambda: [o.client_order_id for o in store.current_exits(coid(entry))] == [new]
            and (o := store.get(pair_id(entry))) is not None
            and o.status == OrderStatus.CANCELED,
            60,
            "the store moved to the replacement",
        )
        stored = store.get(new)
        assert stored is not None and stored.qty == D(5) and stored.replaces == pair_id(entry)
        assert store.positions() == {"AAPL": D(5)}
    finally:
        store.close()
    booked = fake.by_client_id[new]
    assert booked.qty == D(5) and booked.replaces == fake.by_client_id[pair_id(entry)].id
    assert fake.by_client_id[pair_id(entry)].status == "replaced"
    live = live_exits(fake, entry)
    legs = [leg.client_order_id for leg in booked.legs]
    assert [c for c, _ in live] == sorted([new, *legs]) and len(legs) == 1  # one pair
    assert fake.orders_created(pair_id(entry)) == 1 and fake.duplicates() == {}
    assert fake.position_qty() == {"AAPL": D(5)}


def test_exits_are_placed_at_the_first_part_and_replaced_at_the_second(
    env: Env, fake: FakeAlpacaTrading, start_executor: Callable[..., Running]
) -> None:
    running = start_executor(env.settings(exits_on_partial_fill=True))
    running.started()
    entry = entry_signal()
    env.produce([entry])
    fill_part(fake, entry, "2")
    wait_until(lambda: pair_id(entry) in fake.by_client_id, 60, "the exits of the first part")
    assert fake.by_client_id[pair_id(entry)].qty == D(2)
    assert fake.by_client_id[pair_id(entry)].order_class == "oco"
    fill_part(fake, entry, "3")
    check_one_pair_at_full_qty(env, fake, entry)
    assert running.finish().error is None


@pytest.mark.parametrize("step", ["replace_stored:1", "response_received:3"])
def test_sigkill_in_the_replace_leaves_one_exit_pair_at_the_full_qty_after_the_restart(
    env: Env, fake: FakeAlpacaTrading, step: str
) -> None:
    entry = entry_signal()
    proc = spawn_executor(env, FLINKTRADE_EXECUTOR_CRASH_AT=step, **PARTIAL)
    try:
        env.produce([entry])
        fill_part(fake, entry, "2")
        wait_until(lambda: pair_id(entry) in fake.by_client_id, 60, "the exits of the first part")
        wait_until(lambda: fake.by_client_id[pair_id(entry)].status == "new", 60, "exits working")
        fill_part(fake, entry, "3")
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    run_until_killed(proc, 90)
    replaced = pair_id(entry) + "-r1" in fake.by_client_id
    assert replaced is step.startswith("response_received")  # stored before any request
    store = env.store()
    try:
        intent = store.get(pair_id(entry) + "-r1")
        assert intent is not None and intent.replaces == pair_id(entry) and intent.qty == D(5)
    finally:
        store.close()

    proc = spawn_executor(env, **PARTIAL)
    try:
        check_one_pair_at_full_qty(env, fake, entry)
    finally:
        proc.send_signal(signals.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
