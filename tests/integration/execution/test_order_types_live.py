"""Every order type of the order model on the live path (issue 19): signals on the real Kafka
broker, the executor, alpaca-py, the loopback fake of Alpaca's trading API.

One executor takes one signal per case (each on its own symbol), the fake books what Alpaca would
have been sent (type, prices, time in force, class, extended hours, size), the prices pushed to
the fake then cross each working order, and the executor's store follows every order (and an
OTO's leg) to ``filled`` through ``trade_updates``. Expected values are written from the contract
(the spec the signal carries), not read back from the code under test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

import pytest
from exec_helpers import Env, Running, coid, wait_until

from flinktrade import bus, events
from flinktrade.events import OrderSpec, Side, Signal
from flinktrade.execution.settings import MarketHours, RiskSettings
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    symbol: str
    spec: dict[str, Any]
    booked: dict[str, Any]
    """What the fake must have booked (its order's attributes)."""
    pushes: tuple[str, ...] = ()
    """Prices pushed after the order is working; the last one fills it."""
    qty: D = D(1)
    legs: dict[str, str] = field(default_factory=dict)
    """Legs (kind -> status) the store must follow."""


CASES = (
    Case("MKT", {"qty": 2}, {"type": "market", "time_in_force": "day"}, qty=D(2)),
    Case(
        "LMT",
        {"type": "limit", "limit_price": "99.50", "time_in_force": "gtc", "qty": 2},
        {"type": "limit", "limit_price": D("99.50"), "time_in_force": "gtc", "qty": D(2)},
        pushes=("99.80", "99.40"),
        qty=D(2),
    ),
    Case(
        "STP",
        {"type": "stop", "stop_price": "101", "time_in_force": "gtc"},
        {"type": "stop", "stop_price": D(101), "time_in_force": "gtc"},
        pushes=("100.50", "101.20"),
    ),
    Case(
        "STL",
        {
            "type": "stop_limit",
            "stop_price": "101",
            "limit_price": "101.50",
            "time_in_force": "gtc",
        },
        {"type": "stop_limit", "stop_price": D(101), "limit_price": D("101.50")},
        pushes=("101.20",),
    ),
    Case(
        "TRL",
        {"type": "trailing_stop", "trail_price": "1", "time_in_force": "gtc"},
        {"type": "trailing_stop", "trail_price": D(1)},
        pushes=("99", "100.10"),  # the low-water mark 99 moves the buy stop to 100
    ),
    Case(
        "TRP",
        {"type": "trailing_stop", "trail_percent": "2", "time_in_force": "gtc"},
        {"type": "trailing_stop", "trail_percent": D(2)},
        pushes=("101", "102.50"),  # from 100: the stop is 102
    ),
    Case(
        "EXT",
        {"type": "limit", "limit_price": "99.90", "extended_hours": True},
        {"type": "limit", "extended_hours": True, "time_in_force": "day"},
        pushes=("99.80",),
    ),
    Case(
        "FRC",
        {"qty": "0.5"},
        {"type": "market", "qty": D("0.5")},
        qty=D("0.5"),
    ),
    Case("OPG", {"time_in_force": "opg"}, {"type": "market", "time_in_force": "opg"}),
    Case(
        "CLS",
        {"type": "limit", "limit_price": "99.70", "time_in_force": "cls"},
        {"type": "limit", "time_in_force": "cls"},
        pushes=("99.70",),
    ),
    Case(
        "OTO",
        {"take_profit_price": "110", "time_in_force": "gtc"},
        {"type": "market", "order_class": "oto"},
        legs={"take_profit": "filled"},
    ),
)


def _signal(case: Case, k: int) -> Signal:
    bar_ts = events.now_ms() - 65_000 + k
    return Signal(
        id=Signal.make_id("types", case.symbol, bar_ts),
        strategy="types",
        symbol=case.symbol,
        side=Side.BUY,
        price=D(100),
        bar_ts=bar_ts,
        ts=bar_ts + 60_000,
        order=OrderSpec.model_validate(case.spec),
    )


def test_every_order_type_reaches_alpaca_as_asked_and_is_followed_to_its_fill(
    env: Env, fake: FakeAlpacaTrading, start_executor: Callable[..., Running]
) -> None:
    risk = RiskSettings(allow_outside_market_hours=True, max_signal_age_s=600)
    running = start_executor(env.settings(risk=risk, market_hours=MarketHours.OFF))
    running.started()
    producer = bus.EventProducer(env.kafka.bootstrap_servers)
    signals = {case.symbol: _signal(case, k) for k, case in enumerate(CASES)}
    for case in CASES:
        fake.push_price(case.symbol, D(100))  # market orders fill at 100; the marks start there
        env.send_price(producer, case.symbol, D(100))
        producer.send(signals[case.symbol], env.topics.signals)
    producer.flush()

    store = env.store()
    try:
        for case in CASES:
            wait_until(lambda c=case: coid(signals[c.symbol]) in fake.by_client_id, 60, case.symbol)
            booked = fake.by_client_id[coid(signals[case.symbol])]
            expected = {"symbol": case.symbol, "side": "buy", "qty": case.qty, **case.booked}
            assert {name: getattr(booked, name) for name in expected} == expected, case.symbol
            for price in case.pushes:
                fake.push_price(case.symbol, D(price))
            if case.legs:  # the OTO's take profit leg, working once the entry filled
                wait_until(lambda c=case: len(store.legs(coid(signals[c.symbol]))) == 1, 60, "leg")
                fake.push_price(case.symbol, D(110))

        def done(case: Case) -> bool:
            order = store.get(coid(signals[case.symbol]))
            legs = {leg.leg: leg.status for leg in store.legs(coid(signals[case.symbol]))}
            return order is not None and order.status == "filled" and legs == case.legs

        for case in CASES:
            wait_until(lambda c=case: done(c), 60, f"{case.symbol} filled")
            order = store.get(coid(signals[case.symbol]))
            assert order is not None and order.filled_qty == case.qty, case.symbol
            fill_at = D(case.pushes[-1]) if case.pushes else D(100)
            assert order.filled_avg_price == fill_at, case.symbol
        held = store.positions()
    finally:
        store.close()
    expected_positions = {c.symbol: c.qty for c in CASES if not c.legs}
    assert held == expected_positions == fake.position_qty()
    assert running.finish().error is None
