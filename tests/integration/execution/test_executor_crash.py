"""SIGKILL the executor (a real ``flinktrade execute`` process) at every step, then restart it.

Judged against a no-fault run of the same signals: exactly one broker order per signal, nothing
at the broker the store does not know, the store's positions equal the broker's. After every kill
the published topics are checked too: never two fills (distinct execution ids) for one order of
one share, never two different final states for one order; at the end, N fills and one final
state per order.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from decimal import Decimal

import pytest
from exec_helpers import Env, coid, make_signals, run_until_killed, spawn_executor, wait_until

from flinktrade.events import Fill, OrderEvent, OrderStatus
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

N = 6


def check_topics(env: Env, signals: list, *, final: bool) -> None:
    """What ``trading.fills`` and ``trading.orders`` hold so far (repeats of one record allowed:
    publishing is at least once, and consumers drop them by id)."""
    expected = {coid(s) for s in signals}
    fills = {f.id: f for f in env.read("fills", Fill)}.values()
    per_order = Counter(f.client_order_id for f in fills)
    assert set(per_order) <= expected and set(per_order.values()) <= {1}, per_order
    finals: dict[str, set[str]] = {}
    for o in {o.event_id: o for o in env.read("orders", OrderEvent)}.values():
        assert o.client_order_id in expected
        if o.status.final:
            finals.setdefault(o.client_order_id, set()).add(o.status.value)
    assert all(len(states) == 1 for states in finals.values()), finals
    if final:
        assert len(fills) == N and set(per_order) == expected
        assert finals == {c: {"filled"} for c in expected}


def finish_clean_run(env: Env, fake: FakeAlpacaTrading, signals: list) -> None:
    proc = spawn_executor(env)
    try:
        expected = {"AAPL": Decimal(N // 2), "MSFT": Decimal(N // 2)}
        wait_until(lambda: fake.position_qty() == expected, 60, "every signal filled")
        store = env.store()
        try:
            wait_until(
                lambda: store.open_orders() == [] and store.positions() == expected,
                60,
                "store final",
            )
        finally:
            store.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-3000:]
    expected_ids = {coid(s) for s in signals}
    assert set(fake.created) == expected_ids  # no orphans, nothing missing
    assert fake.duplicates() == {} and all(n == 1 for n in fake.created.values())
    store = env.store()
    try:
        assert store.positions() == fake.position_qty()
        assert {o.client_order_id for o in store.orders()} == expected_ids
        assert {o.status for o in store.orders()} == {OrderStatus.FILLED}
        assert len(store.fills()) == N
    finally:
        store.close()
    check_topics(env, signals, final=True)


def crash_run(env: Env, step: str, n: int) -> None:
    run_until_killed(spawn_executor(env, FLINKTRADE_EXECUTOR_CRASH_AT=f"{step}:{n}"), 60)


@pytest.mark.parametrize(
    "step", ["intent_stored", "offset_committed", "request_sent", "response_received"]
)
def test_sigkill_at_each_step_then_restart(env: Env, fake: FakeAlpacaTrading, step: str) -> None:
    signals = make_signals(N)
    env.produce(signals)
    crash_run(env, step, 2)  # dies at the 2nd order
    check_topics(env, signals, final=False)
    crash_run(env, step, 2)  # and again, two orders further
    check_topics(env, signals, final=False)
    finish_clean_run(env, fake, signals)


def test_sigkill_while_the_request_hangs_at_the_broker(env: Env, fake: FakeAlpacaTrading) -> None:
    """The broker took the order and the process dies before the answer comes."""
    signals = make_signals(N)
    fake.hang_after_accept(times=1, seconds=20)
    env.produce(signals)
    proc = spawn_executor(env)
    try:
        wait_until(lambda: fake.orders_created() >= 1, 60, "the first order reached the broker")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert fake.orders_created() == 1
    check_topics(env, signals, final=False)
    finish_clean_run(env, fake, signals)
