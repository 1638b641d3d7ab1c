"""The Alpaca trading client (alpaca-py underneath) against the loopback fake, on every kind of
answer a real network gives: each ends as one of the outcomes of ``brokers/base.py``.

An order's answer decides between OrderRefused (surely not placed), OrderExists and
OutcomeUnknown (look it up); a read raises TransientError; nothing else ever escapes. Each case
also checks what the fake booked, so "refused" really means no order and "unknown" is used when
the order may exist.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from flinktrade.errors import TransientError
from flinktrade.events import OrderStatus, Side
from flinktrade.execution.brokers.alpaca import AlpacaBroker, RequestBudget
from flinktrade.execution.brokers.base import (
    OrderExists,
    OrderRefused,
    OrderRequest,
    OutcomeUnknown,
)
from flinktrade.testing.fake_alpaca_trading import GATEWAY_PAGE, FakeAlpacaTrading

TIMEOUT_S = 1.0


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading(fill_price=Decimal("100.25"), enforce_unique=True) as f:
        yield f


@pytest.fixture
def make_broker(fake: FakeAlpacaTrading) -> Iterator[Callable[..., AlpacaBroker]]:
    made: list[AlpacaBroker] = []

    def make(**options: Any) -> AlpacaBroker:
        options.setdefault("timeout_s", TIMEOUT_S)
        options.setdefault("max_rate_limit_wait_s", 5.0)
        broker = AlpacaBroker(
            fake.key_id,
            fake.secret_key,
            base_url=fake.base_url,
            stream_url=fake.stream_url,
            **options,
        )
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


def posts(fake: FakeAlpacaTrading) -> int:
    """POST /v2/orders that reached the fake, whatever it answered."""
    with fake.lock:
        return fake.requests.count(("POST", "/v2/orders"))


def order(coid: str = "ft-test-1", qty: int = 3) -> OrderRequest:
    return OrderRequest(client_order_id=coid, symbol="AAPL", side=Side.BUY, qty=Decimal(qty))


def html(status: int) -> dict[str, Any]:
    return {"status": status, "body": GATEWAY_PAGE, "content_type": "text/html"}


# (name, fault arguments for answer_with, does the fake book the order first?, expected outcome)
FOREIGN_ORDER_ANSWERS: list[tuple[str, dict[str, Any], bool, type[Exception]]] = [
    ("502 html page, order booked", html(502), True, OutcomeUnknown),
    ("503 html page, nothing booked", html(503), False, OutcomeUnknown),
    ("504 html page, order booked", html(504), True, OutcomeUnknown),
    ("500 empty body", {"status": 500, "body": b"", "content_type": None}, True, OutcomeUnknown),
    ("200 empty body", {"status": 200, "body": b"", "content_type": None}, True, OutcomeUnknown),
    ("200 html page", html(200), True, OutcomeUnknown),
    (
        "200 json that is not an order",
        {"status": 200, "body": b'{"ok": true}', "content_type": "application/json"},
        True,
        OutcomeUnknown,
    ),
    (
        "200 json list",
        {"status": 200, "body": b"[]", "content_type": "text/plain"},
        True,
        OutcomeUnknown,
    ),
    ("302 redirect page", html(302), True, OutcomeUnknown),
    ("403 proxy page (not Alpaca's json)", html(403), True, OutcomeUnknown),
    (
        "429 without any header",
        {"status": 429, "body": b"Too Many Requests", "content_type": "text/plain"},
        False,
        OrderRefused,
    ),
    (
        "403 Alpaca json: a refusal",
        {
            "status": 403,
            "body": b'{"code": 40310000, "message": "insufficient buying power"}',
            "content_type": "application/json",
        },
        False,
        OrderRefused,
    ),
]


@pytest.mark.parametrize(
    ("fault", "booked", "outcome"),
    [pytest.param(f, b, o, id=name) for name, f, b, o in FOREIGN_ORDER_ANSWERS],
)
def test_every_answer_to_an_order_maps_to_a_documented_outcome(
    fake: FakeAlpacaTrading,
    make_broker: Callable[..., AlpacaBroker],
    fault: dict[str, Any],
    booked: bool,
    outcome: type[Exception],
) -> None:
    broker = make_broker(rate_limit_retries=0)
    fake.answer_with(**fault, method="POST", path="/v2/orders", accept=booked)
    with pytest.raises(outcome):
        broker.submit(order())
    assert posts(fake) == 1
    assert fake.orders_created("ft-test-1") == (1 if booked else 0)
    # The client is still usable and the look-up tells the truth.
    found = broker.get_order("ft-test-1")
    assert (found is not None) == booked


@pytest.mark.parametrize("accept", [True, False], ids=["booked", "not-booked"])
def test_a_reset_connection_or_a_timeout_on_an_order_is_outcome_unknown(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker], accept: bool
) -> None:
    broker = make_broker()
    fake.reset_connection(method="POST", path="/v2/orders", accept=accept)
    with pytest.raises(OutcomeUnknown):
        broker.submit(order("ft-reset"))
    fake.hang(TIMEOUT_S * 3, method="POST", path="/v2/orders", accept=accept)
    with pytest.raises(OutcomeUnknown, match="timeout"):
        broker.submit(order("ft-hang"))
    assert fake.orders_created("ft-reset") == fake.orders_created("ft-hang") == int(accept)


def test_429_with_alpaca_headers_is_waited_out_and_sent_again(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker]
) -> None:
    broker = make_broker()
    fake.rate_limit(times=1, reset_in_s=1.0)
    placed = broker.submit(order())
    assert placed.client_order_id == "ft-test-1"
    assert posts(fake) == 2
    assert fake.orders_created("ft-test-1") == 1


def test_429_without_headers_is_waited_out_and_sent_again(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker]
) -> None:
    broker = make_broker()
    fake.answer_with(429, b"", content_type=None, method="POST", path="/v2/orders")
    placed = broker.submit(order())
    assert placed.status in (OrderStatus.ACCEPTED, OrderStatus.NEW, OrderStatus.FILLED)
    assert posts(fake) == 2 and fake.orders_created("ft-test-1") == 1


READS: list[tuple[str, str, Callable[[AlpacaBroker], object]]] = [
    ("account", "/v2/account", lambda b: b.account()),
    ("clock", "/v2/clock", lambda b: b.market_open()),
    ("positions", "/v2/positions", lambda b: b.positions()),
    ("open orders", "/v2/orders", lambda b: b.open_orders()),
    ("look-up", "/v2/orders:by_client_order_id", lambda b: b.get_order("ft-x")),
]

FOREIGN_READ_ANSWERS: list[tuple[str, dict[str, Any]]] = [
    ("502 html", html(502)),
    ("503 html", html(503)),
    ("504 empty", {"status": 504, "body": b"", "content_type": None}),
    ("200 html", html(200)),
    ("200 empty", {"status": 200, "body": b"", "content_type": None}),
    ("200 wrong json", {"status": 200, "body": b'"hello"', "content_type": "application/json"}),
    ("200 wrong shape", {"status": 200, "body": b'[{"x": 1}]', "content_type": "application/json"}),
    ("404 proxy page", html(404)),
    ("429 no headers", {"status": 429, "body": b"slow down", "content_type": "text/plain"}),
]


@pytest.mark.parametrize(("path", "read"), [pytest.param(p, r, id=name) for name, p, r in READS])
@pytest.mark.parametrize("fault", [pytest.param(f, id=name) for name, f in FOREIGN_READ_ANSWERS])
def test_every_foreign_answer_to_a_read_is_a_transient_error(
    fake: FakeAlpacaTrading,
    make_broker: Callable[..., AlpacaBroker],
    path: str,
    read: Callable[[AlpacaBroker], object],
    fault: dict[str, Any],
) -> None:
    broker = make_broker(rate_limit_retries=0)
    fake.answer_with(**fault, method="GET", path=path)
    with pytest.raises(TransientError):
        read(broker)
    read(broker)  # the next answer is the fake's own: the client goes on


@pytest.mark.parametrize(("path", "read"), [pytest.param(p, r, id=name) for name, p, r in READS])
def test_a_reset_or_a_timeout_on_a_read_is_a_transient_error(
    fake: FakeAlpacaTrading,
    make_broker: Callable[..., AlpacaBroker],
    path: str,
    read: Callable[[AlpacaBroker], object],
) -> None:
    broker = make_broker()
    fake.reset_connection(method="GET", path=path)
    with pytest.raises(TransientError):
        read(broker)
    fake.hang(TIMEOUT_S * 3, method="GET", path=path)
    with pytest.raises(TransientError, match="timeout"):
        read(broker)


def test_a_look_up_is_none_only_on_alpacas_own_404(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker]
) -> None:
    broker = make_broker()
    assert broker.get_order("ft-never-sent") is None  # the fake's JSON 404
    fake.answer_with(404, GATEWAY_PAGE, path="/v2/orders:by_client_order_id")
    with pytest.raises(TransientError):
        broker.get_order("ft-never-sent")


# ---------------------------------------------------------------- the kill switch (may_send)


class Guard:
    """A kill switch read before every send: answers None ``allow`` times, then "halted"."""

    def __init__(self, allow: int) -> None:
        self.allow = allow
        self.calls = 0

    def __call__(self) -> str | None:
        self.calls += 1
        return None if self.calls <= self.allow else "halted: daily loss limit"


def test_a_halt_before_the_first_send_sends_nothing(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker]
) -> None:
    broker = make_broker()
    with pytest.raises(OrderRefused, match="halted"):
        broker.submit(order(), may_send=Guard(allow=0))
    assert posts(fake) == 0


def test_a_halt_during_a_429_wait_stops_the_retry(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker]
) -> None:
    broker = make_broker(max_rate_limit_wait_s=60.0)
    fake.rate_limit(times=1, reset_in_s=30.0)  # a long reset
    guard = Guard(allow=1)  # the first send goes; the guard flips while we wait
    with pytest.raises(OrderRefused, match="halted"):
        broker.submit(order(), may_send=guard)
    assert posts(fake) == 1
    assert fake.orders_created() == 0
    assert guard.calls == 2


def test_the_guard_is_asked_before_every_retry(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker]
) -> None:
    broker = make_broker()
    fake.answer_with(429, b"", content_type=None, method="POST", path="/v2/orders", times=2)
    sends: list[int] = []

    def guard() -> str | None:
        sends.append(posts(fake))
        return None

    broker.submit(order(), may_send=guard)
    assert posts(fake) == 3
    # Asked before each of the three sends (and possibly while waiting between them).
    assert sends[0] == 0 and {0, 1, 2} <= set(sends)


def test_a_guard_that_raises_means_do_not_send(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker]
) -> None:
    broker = make_broker()

    def broken() -> str | None:
        raise RuntimeError("store closed")

    with pytest.raises(OrderRefused):
        broker.submit(order(), may_send=broken)
    assert posts(fake) == 0


# ---------------------------------------------------------------- 422 + stale look-up


def test_a_repeated_order_exists_and_a_stale_look_up_never_makes_a_second(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker]
) -> None:
    broker = make_broker()
    fake.error_after_accept(times=1, status=504)
    with pytest.raises(OutcomeUnknown):
        broker.submit(order())
    fake.stale_lookup(times=1)
    assert broker.get_order("ft-test-1") is None  # stale: Alpaca has not indexed it yet
    with pytest.raises(OrderExists):
        broker.submit(order())  # a re-send is refused with 422: the order exists
    adopted = broker.get_order("ft-test-1")
    assert adopted is not None and adopted.client_order_id == "ft-test-1"
    assert fake.orders_created("ft-test-1") == 1


# ---------------------------------------------------------------- the request budget


def most_in_any_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_a_burst_never_exceeds_the_budget_in_any_rolling_window_at_the_fake(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker]
) -> None:
    limit, window_s = 8, 1.0
    broker = make_broker(budget=RequestBudget(limit, window_s))
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            for _ in range(6):
                broker.positions()
                broker.open_orders()
        except BaseException as exc:
            errors.append(exc)

    def place() -> None:
        try:
            for i in range(4):
                broker.submit(order(f"ft-budget-{i}", qty=1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=poll) for _ in range(3)] + [threading.Thread(target=place)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert fake.request_count == 3 * 12 + 4
    assert most_in_any_window(fake.request_times, window_s) <= limit
    assert fake.orders_created() == 4


def test_an_order_goes_before_waiting_polls(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker]
) -> None:
    limit, window_s = 10, 1.0
    broker = make_broker(budget=RequestBudget(limit, window_s, reserve=2))
    for _ in range(limit - 2):  # the reads' share of the window is used up
        broker.market_open()
    polls_done: list[float] = []

    def poll() -> None:
        broker.market_open()
        polls_done.append(time.monotonic())

    poller = threading.Thread(target=poll)
    poller.start()
    placed = broker.submit(order("ft-first"))  # the reserve is there for it: no wait
    assert placed.client_order_id == "ft-first"
    assert fake.requests[limit - 2] == ("POST", "/v2/orders")
    poller.join(10)
    assert polls_done and fake.requests[-1] == ("GET", "/v2/clock")


# ---------------------------------------------------------------- the trade updates stream


def test_the_stream_reconnects_with_growing_capped_jittered_waits(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker]
) -> None:
    broker = make_broker(reconnect_initial_s=0.05, reconnect_max_s=0.2)
    fake.refuse_stream(5)
    connected = threading.Event()
    fills: list[str] = []
    broker.start_updates(lambda u: fills.append(u.event), connected.set)
    assert connected.wait(30), "the stream never connected"
    assert fake.stream_connections == 6
    assert broker._stream is not None
    delays = list(broker._stream.delays)
    assert len(delays) == 5
    for attempt, delay in enumerate(delays):
        capped = min(0.2, 0.05 * 2**attempt)
        assert capped / 2 <= delay <= capped, (attempt, delays)
    broker.submit(order("ft-after-reconnect"))  # and it delivers once connected
    fake.wait_for(lambda f: f.position_qty() == {"AAPL": Decimal(3)}, 30)
    deadline = time.monotonic() + 30
    while "fill" not in fills:
        assert time.monotonic() < deadline, fills
        time.sleep(0.02)


def test_a_stop_closes_the_stream_at_once_and_a_lost_connection_still_reconnects(
    fake: FakeAlpacaTrading, make_broker: Callable[..., AlpacaBroker]
) -> None:
    """alpaca-py looks at a stop only between receives of up to 5 s; ours closes the socket under
    the pending receive, so a quiet stream's thread ends with the close handshake (every
    executor's stop took ~4 s). A connection the server drops is no stop: it reconnects."""
    broker = make_broker(reconnect_initial_s=0.05, reconnect_max_s=0.2)
    connected = threading.Event()
    updates: list[str] = []
    broker.start_updates(lambda u: updates.append(u.event), connected.set)
    assert connected.wait(30), "the stream never connected"
    fake.wait_for(lambda f: f.stream_listeners == 1, 30)
    connected.clear()
    fake.disconnect_stream()  # the server's close: alpaca-py's loop connects again
    assert connected.wait(30), "the stream did not reconnect"
    fake.wait_for(lambda f: f.stream_listeners == 1, 30)
    broker.submit(order("ft-before-the-stop"))
    deadline = time.monotonic() + 30
    while "fill" not in updates:  # the last message: the stream now waits in a fresh receive
        assert time.monotonic() < deadline, updates
        time.sleep(0.02)
    stream, thread = broker._stream, broker._stream_thread
    assert stream is not None and thread is not None and thread.is_alive()
    stream.stop()  # what ``close`` asks first, before it waits (5 s at most) for the thread
    thread.join(3)  # no message comes: only the close can end the receive before its 5 s
    assert not thread.is_alive(), "the stream waited out its receive"
    fake.wait_for(lambda f: f.stream_listeners == 0, 30)
    assert fake.stream_connections == 2
    broker.close()


# ---------------------------------------------------------------- through the executor


def test_executor_adopts_an_order_that_exists_behind_a_stale_look_up(
    env: Any, fake: FakeAlpacaTrading, start_executor: Callable[..., Any]
) -> None:
    """The POST's answer is lost, stream events too, and look-ups miss the order for a while: the
    executor's late
    re-send meets 422 (the order exists), it looks up again and adopts it. One order, filled."""
    from exec_helpers import coid, make_signals, wait_until

    (signal,) = make_signals(1)
    fake.drop_after_accept(times=1)
    fake.stale_lookup(times=10_000)
    fake.drop_events(10_000)  # no stream event gives the order away either
    running = start_executor(env.settings())
    running.started()
    env.produce([signal])
    wait_until(lambda: posts(fake) >= 2, 60, "the re-send after the grace period")
    fake.stale_lookup(times=0)  # Alpaca's index caught up
    store = env.store()
    try:
        wait_until(lambda: store.open_orders() == [], 60, "the order adopted and filled")
        (stored,) = store.orders()
        assert stored.client_order_id == coid(signal)
        assert stored.status == OrderStatus.FILLED
    finally:
        store.close()
    running.finish()
    assert fake.orders_created(coid(signal)) == 1
    assert fake.orders_created() == 1
