"""Per-strategy books sum to the account (issue 19): two strategies trade one symbol through the
executor, the broker nets them, and ``flinktrade positions --by-strategy`` gives each strategy's
P&L; their sum is the change of the account's equity as the broker reports it.

Against the loopback fake of Alpaca (alpaca-py, no commission, fills at the price pushed) the
books are also hand-computed; against the simulated broker (slippage and a commission per order)
the unrounded sum must equal its account's equity change exactly."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal as D

import pytest
from exec_helpers import Env, Running, coid, wait_until

from flinktrade import bus, events
from flinktrade.books import ledger_of
from flinktrade.events import OrderSpec, Side, Signal
from flinktrade.execution.settings import RiskSettings, SimBrokerSettings
from flinktrade.testing.command import run_flinktrade

pytestmark = pytest.mark.integration

# (strategy, side, qty, price): trend buys 10 at 100 and sells 4 at 102.50; revert sells 4 at 101
# (from the account's long: the broker nets) and buys 2 back at 103. The mark is 104.
TRADES = (
    ("trend", Side.BUY, 10, "100"),
    ("revert", Side.SELL, 4, "101"),
    ("trend", Side.SELL, 4, "102.50"),
    ("revert", Side.BUY, 2, "103"),
)
MARK = D(104)
# By hand: trend realises 4 x 2.50 = 10 and holds 6 from 100: 6 x 4 = 24, pnl 34;
# revert realises 2 x (101 - 103) = -4 and is short 2 from 101: 2 x -3 = -6, pnl -10.
BY_HAND = {"trend": D("34.00"), "revert": D("-10.00")}


def _signals() -> list[Signal]:
    now = events.now_ms()
    out = []
    for k, (strategy, side, qty, price) in enumerate(TRADES):
        bar_ts = now - 65_000 + k
        out.append(
            Signal(
                id=Signal.make_id(strategy, "AAPL", bar_ts),
                strategy=strategy,
                symbol="AAPL",
                side=side,
                price=D(price),
                bar_ts=bar_ts,
                ts=bar_ts + 60_000,
                order=OrderSpec(qty=D(qty)),
            )
        )
    return out


def _books(env: Env) -> dict[str, D]:
    result = run_flinktrade(
        "positions", "--by-strategy", "--mark", f"AAPL={MARK}", "--json", env=env.env()
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout.strip().splitlines()[-1])
    assert body["total"] == {"AAPL": "4"}  # the account's net position
    return {view["strategy"]: D(view["pnl"]) for view in body["strategies"]}


@pytest.mark.parametrize("broker", ["alpaca", "sim"])
def test_per_strategy_pnl_sums_to_the_accounts_pnl(
    env: Env, start_executor: Callable[..., Running], broker: str
) -> None:
    risk = RiskSettings(allow_outside_market_hours=True, max_signal_age_s=600)
    sim = SimBrokerSettings(price_topics=env.topics.prices)
    running = start_executor(env.settings(risk=risk, sim=sim), broker)
    running.started()
    start_equity = running.executor.broker.account().equity
    producer = bus.EventProducer(env.kafka.bootstrap_servers)
    store = env.store()
    try:
        for signal in _signals():
            env.fake.push_price("AAPL", signal.price)  # the fake fills at the price pushed
            env.send_price(producer, "AAPL", signal.price)  # the executor's market price
            producer.send(signal, env.topics.signals)
            producer.flush()
            wait_until(lambda s=signal: store.get(coid(s)) is not None, 60, "the order stored")
            sent = [time.monotonic()]

            def filled(s: Signal = signal, sent: list[float] = sent) -> bool:
                order = store.get(coid(s))
                if order is not None and order.status == "filled":
                    return True
                if broker == "sim" and time.monotonic() - sent[0] > 0.5:
                    # the simulated broker fills at the next price after it took the order;
                    # the order is stored before it reaches the broker: price it again
                    env.send_price(producer, "AAPL", s.price)
                    producer.flush()
                    sent[0] = time.monotonic()
                return False

            wait_until(filled, 60, f"{signal.strategy} {signal.side} filled")
        env.fake.push_price("AAPL", MARK)
        env.send_price(producer, "AAPL", MARK)
        producer.flush()
        if broker == "sim":
            prices = running.executor.broker.prices  # type: ignore[attr-defined]
            wait_until(lambda: prices.get("AAPL") == MARK, 30, "the simulated broker's mark")
    finally:
        store.close()
    account = running.executor.broker.account()
    assert running.finish().error is None

    books = _books(env)  # the command a user runs, money to the cent
    assert set(books) == {"trend", "revert"}
    if broker == "alpaca":
        assert books == BY_HAND
    store = env.store()
    try:  # the same ledger unrounded: the sum is exact, not just to the cent of each book
        views = ledger_of(store.fills()).views({"AAPL": MARK})
    finally:
        store.close()
    assert {v.strategy: round(v.pnl, 2) for v in views} == books
    assert sum(v.pnl for v in views) == account.equity - start_equity
