"""The executor's send guard through a real broker client: an order held back by a 429 never
leaves once the kill switch is set, or once its signal is too old, however long the rate-limit
wait (the broker asks ``may_send`` before every attempt)."""

from __future__ import annotations

import pytest
from exec_helpers import Env, coid, make_signals, wait_until

from flinktrade import events
from flinktrade.events import OrderStatus
from flinktrade.execution.settings import RiskSettings
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading


def posts(fake: FakeAlpacaTrading) -> int:
    """POST /v2/orders that reached the fake, whatever it answered."""
    with fake.lock:
        return fake.requests.count(("POST", "/v2/orders"))


@pytest.mark.parametrize("why", ["kill_switch", "signal_age"])
def test_an_order_waiting_out_a_429_does_not_leave_after_a_halt_or_once_too_old(
    env: Env, fake: FakeAlpacaTrading, start_executor, why: str
) -> None:
    age_s = 12.0 if why == "signal_age" else 600.0
    risk = RiskSettings(allow_outside_market_hours=True, max_signal_age_s=age_s)
    running = start_executor(env.settings(risk=risk, max_rate_limit_wait_s=120.0))
    running.started()
    fake.rate_limit_reset_s = 60.0  # the first POST is told to come back in a minute
    fake.answer_with(
        429,
        b'{"code": 42910000, "message": "rate limit exceeded"}',
        content_type="application/json",
        rate_headers=True,
        method="POST",
        path="/v2/orders",
    )
    [template] = make_signals(1)
    signal = template.model_copy(update={"ts": events.now_ms(), "ingest_ts": events.now_ms()})
    env.produce([signal])
    wait_until(lambda: posts(fake) == 1, 30, "the first, rate-limited POST")
    store = env.store()
    try:
        if why == "kill_switch":
            store.halt("operator test")
        # well before the minute is up: the guard is asked while waiting, not only after it
        # (the signal_age case turns too old 12 s after it was made)
        wait_until(
            lambda: (o := store.get(coid(signal))) is not None and o.status.final, 30, "refused"
        )
        order = store.get(coid(signal))
        assert order is not None and order.status == OrderStatus.REJECTED
        expected = "kill switch is on" if why == "kill_switch" else "old"
        assert order.reason is not None and expected in order.reason, order.reason
    finally:
        store.close()
    running.finish()
    assert posts(fake) == 1 and fake.orders_created() == 0  # nothing left after the first 429
