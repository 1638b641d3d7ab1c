"""Unit tests of the Alpaca trading client's pure parts: the request budget, the reconnect
back-off, what a rate-limit answer teaches, and reading answers that are not Alpaca's."""

from __future__ import annotations

import random
import threading
import time

import pytest
import requests
from alpaca.common.exceptions import APIError

from flinktrade.errors import ConfigError
from flinktrade.execution.brokers.alpaca import (
    NotSent,
    Priority,
    RequestBudget,
    answers,
    parse_order,
    reconnect_backoff,
    session,
)
from flinktrade.execution.brokers.alpaca.parse import (
    parse_account,
    parse_clock,
    parse_orders,
    parse_positions,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_allows_limit_per_rolling_window_counted_from_the_answers() -> None:
    clock = Clock()
    budget = RequestBudget(5, 60.0, reserve=0, clock=clock)
    for _ in range(5):
        assert budget.try_acquire(Priority.ORDER) == 0.0
        clock.now += 1.0
        budget.release(sent=True)  # answers at 1001 .. 1005
    wait = budget.try_acquire(Priority.ORDER)
    assert wait == pytest.approx(1001.0 + 60.0 - clock.now)
    clock.now = 1061.0  # the first answer leaves the window
    assert budget.try_acquire(Priority.ORDER) == 0.0
    assert budget.try_acquire(Priority.ORDER) > 0


def test_budget_counts_requests_in_flight_and_frees_unsent_slots() -> None:
    clock = Clock()
    budget = RequestBudget(2, 10.0, reserve=0, clock=clock)
    assert budget.try_acquire(Priority.READ) == 0.0
    assert budget.try_acquire(Priority.READ) == 0.0
    assert budget.try_acquire(Priority.READ) > 0  # both in flight
    budget.release(sent=False)  # the guard stopped it: it never counted
    assert budget.used() == 1
    assert budget.try_acquire(Priority.READ) == 0.0


def test_reads_leave_the_reserve_to_orders() -> None:
    clock = Clock()
    budget = RequestBudget(10, 60.0, reserve=3, clock=clock)
    for _ in range(7):
        assert budget.try_acquire(Priority.READ) == 0.0
        budget.release(sent=True)
    assert budget.try_acquire(Priority.READ) > 0
    for _ in range(3):
        assert budget.try_acquire(Priority.ORDER) == 0.0
    assert budget.try_acquire(Priority.ORDER) > 0


def test_default_reserve_is_a_tenth() -> None:
    assert RequestBudget(200).reserve == 20
    assert RequestBudget(5).reserve == 0


def test_a_read_yields_while_an_order_waits() -> None:
    clock = Clock()
    budget = RequestBudget(1, 60.0, reserve=0, clock=clock)
    assert budget.try_acquire(Priority.READ) == 0.0  # in flight: the window is full
    waiting = threading.Thread(target=budget.acquire, args=(Priority.ORDER, None, 600.0))
    waiting.start()
    try:
        deadline = time.monotonic() + 10
        while budget._orders_waiting != 1:  # the order thread is waiting for a slot
            assert time.monotonic() < deadline
            time.sleep(0.01)
        budget.release(sent=False)  # a slot is free: the read must not take it
        assert budget.try_acquire(Priority.READ) > 0
    finally:
        waiting.join(10)
    assert not waiting.is_alive()
    assert budget.used() == 1  # the order got it


def test_acquire_gives_up_when_the_wait_is_longer_than_allowed() -> None:
    clock = Clock()
    budget = RequestBudget(1, 60.0, reserve=0, clock=clock)
    budget.try_acquire(Priority.ORDER)
    budget.release(sent=True)
    with pytest.raises(NotSent, match="budget"):
        budget.acquire(Priority.ORDER, None, max_wait_s=5.0)


def test_acquire_stops_waiting_when_the_guard_says_no() -> None:
    budget = RequestBudget(1, 60.0, reserve=0)
    budget.try_acquire(Priority.ORDER)
    budget.release(sent=True)
    with pytest.raises(NotSent, match="halted"):
        budget.acquire(Priority.ORDER, lambda: "halted", max_wait_s=120.0)


@pytest.mark.parametrize("bad", [(0, 60.0), (10, 0.0)])
def test_budget_rejects_nonsense(bad: tuple[int, float]) -> None:
    with pytest.raises(ConfigError, match="budget"):
        RequestBudget(*bad)


def test_reconnect_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    for retries, capped in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 30.0), (50, 30.0)]:
        for _ in range(50):
            delay = reconnect_backoff(retries, 1.0, 30.0, rng)
            assert capped / 2 <= delay <= capped
    spread = {round(reconnect_backoff(3, 1.0, 30.0, rng), 6) for _ in range(20)}
    assert len(spread) > 1  # jittered, not a fixed wait


def response(status: int, headers: dict[str, str], body: bytes = b"") -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers)
    r._content = body
    return r


def test_rate_limit_learns_nothing_from_a_page_without_headers() -> None:
    rate = session.RateLimit(30.0)
    rate.observe(response(502, {"Content-Type": "text/html"}))  # raised KeyError before
    assert rate.remaining is None and rate.reset_at is None
    rate.observe(response(200, {"X-Ratelimit-Remaining": "oops", "X-Ratelimit-Reset": "nan"}))
    assert rate.remaining is None and rate.reset_at is None


def test_rate_limit_429_without_headers_waits_a_little() -> None:
    rate = session.RateLimit(30.0)
    rate.observe(response(429, {}))
    assert rate.remaining == 0 and rate.reset_at is not None


def test_rate_limit_wait_too_long_is_not_sent() -> None:
    rate = session.RateLimit(5.0)
    rate.observe(response(429, {"Retry-After": "600"}))
    with pytest.raises(NotSent, match="resets in"):
        rate.wait()


def api_error(status: int, body: bytes, content_type: str | None) -> APIError:
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = response(status, headers, body)
    try:
        r.raise_for_status()
    except requests.HTTPError as exc:
        return APIError(r.text, exc)
    raise AssertionError("not an error status")


def test_an_error_answer_is_alpacas_only_with_its_json() -> None:
    own = answers.error_answer(
        api_error(422, b'{"code": 40010001, "message": "client_order_id must be unique"}', None)
    )
    assert own.from_alpaca and own.status == 422
    assert own.message == "client_order_id must be unique"
    page = answers.error_answer(api_error(502, b"<html>Bad Gateway" + b"x" * 5000, "text/html"))
    assert not page.from_alpaca and page.status == 502
    assert "text/html" in page.message and len(page.message) < 100
    assert "Bad Gateway" not in page.message  # never a page in logs or reasons
    for body in (b"", b"[1, 2]", b'"text"', b'{"code": 1}'):
        assert not answers.error_answer(api_error(500, body, None)).from_alpaca


@pytest.mark.parametrize(
    "raw",
    [None, "", [], {"client_order_id": "x"}, {"id": "1", "side": "sideways"},
     {"id": "1", "qty": "lots"}],
)  # fmt: skip
def test_parse_order_refuses_what_is_not_an_order(raw: object) -> None:
    with pytest.raises((TypeError, KeyError, ValueError, ArithmeticError)):
        parse_order(raw)


@pytest.mark.parametrize(
    ("parse", "raw"),
    [
        (parse_positions, None),
        (parse_positions, {"symbol": "AAPL"}),
        (parse_positions, [{"symbol": "AAPL"}]),
        (parse_orders, None),
        (parse_account, None),
        (parse_account, {"cash": "1"}),
        (parse_clock, {"is_open": "yes"}),
        (parse_clock, []),
    ],
)
def test_read_parsers_refuse_foreign_shapes(parse: object, raw: object) -> None:
    assert callable(parse)
    with pytest.raises((TypeError, KeyError, ValueError, ArithmeticError)):
        parse(raw)
