"""The demo's order model, without Kafka: the bracketed example it adds beside the configured
strategies, the counts its summary reports from ``trading.orders``, and which broker URL is fed
the simulator's prices."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from flinktrade import strategies
from flinktrade.config import Settings, StrategySettings
from flinktrade.demo import (
    BRACKET_STRATEGY,
    FakePrices,
    order_model_counts,
    with_bracket_example,
)
from flinktrade.events import OrderEvent, OrderStatus, Side

REPOSITORY = Path(__file__).resolve().parents[2]


def order(
    coid: str,
    status: OrderStatus,
    *,
    order_class: str | None = None,
    parent: str | None = None,
    leg: str | None = None,
) -> OrderEvent:
    return OrderEvent(
        ts=1,
        ingest_ts=1,
        event_id=f"{coid}-{status.value}",
        id=coid,
        client_order_id=coid,
        symbol="AAPL",
        side=Side.SELL if parent else Side.BUY,
        status=status,
        order_class=order_class,
        parent_client_order_id=parent,
        leg=leg,
    )


def test_the_summary_counts_each_order_once_by_what_it_became() -> None:
    events = [
        # a bracket entry, written at every state, whose take profit filled
        order("e1", OrderStatus.PENDING, order_class="bracket"),
        order("e1", OrderStatus.NEW, order_class="bracket"),
        order("e1", OrderStatus.FILLED, order_class="bracket"),
        order("e1-tp", OrderStatus.PENDING, order_class="oco", parent="e1", leg="take_profit"),
        order("e1-tp", OrderStatus.NEW, order_class="oco", parent="e1", leg="take_profit"),
        order("e1-sl", OrderStatus.NEW, order_class="oco", parent="e1", leg="stop_loss"),
        order("e1-tp", OrderStatus.FILLED, order_class="oco", parent="e1", leg="take_profit"),
        order("e1-tp", OrderStatus.FILLED, order_class="oco", parent="e1", leg="take_profit"),
        order("e1-sl", OrderStatus.CANCELED, order_class="oco", parent="e1", leg="stop_loss"),
        # one whose stop loss filled
        order("e2", OrderStatus.FILLED, order_class="bracket"),
        order("e2-tp", OrderStatus.NEW, parent="e2", leg="take_profit"),
        order("e2-sl", OrderStatus.FILLED, parent="e2", leg="stop_loss"),
        # one still open, an OTO entry, and entries no broker took
        order("e3", OrderStatus.NEW, order_class="bracket"),
        order("e4", OrderStatus.ACCEPTED, order_class="oto"),
        order("e5", OrderStatus.DENIED, order_class="bracket"),
        order("e6", OrderStatus.PENDING, order_class="bracket"),
        order("e7", OrderStatus.REJECTED, order_class="bracket"),
        # plain orders of the built-in strategies
        order("m1", OrderStatus.FILLED),
        order("m2", OrderStatus.FILLED, order_class="simple"),
    ]
    assert order_model_counts(events) == {
        "bracket_entries": 4,
        "bracket_entries_filled": 2,
        "exit_legs": 4,
        "exits_filled": {"stop_loss": 1, "take_profit": 1},
    }


def test_a_run_without_orders_with_exits_counts_zero() -> None:
    assert order_model_counts([order("m1", OrderStatus.FILLED)]) == {
        "bracket_entries": 0,
        "bracket_entries_filled": 0,
        "exit_legs": 0,
        "exits_filled": {},
    }


def test_the_bracket_example_joins_the_configured_strategies_and_is_importable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(REPOSITORY))])
    monkeypatch.chdir("/")  # not the repository: the demo finds examples/ by itself
    settings = Settings()
    with_example = with_bracket_example(settings)
    names = [s.name for s in with_example.strategies]
    assert names == [*(s.name for s in settings.strategies), BRACKET_STRATEGY]
    assert os.environ["PYTHONPATH"].split(os.pathsep) == ["/somewhere", str(REPOSITORY)]
    assert str(REPOSITORY) in sys.path
    added = with_example.strategies[-1]
    built = strategies.build(added.name, added.params)  # imports it; its checks pass
    assert built.name == "bracket_breakout"
    # Once is enough: a second call, or a configuration naming it already, adds nothing.
    assert with_bracket_example(with_example) == with_example
    own = settings.model_copy(update={"strategies": [StrategySettings(name=BRACKET_STRATEGY)]})
    assert with_bracket_example(own) == own


@pytest.mark.parametrize(
    ("broker", "url", "fed"),
    [
        ("alpaca", "http://127.0.0.1:8766", True),
        ("alpaca", "http://localhost:8766/", True),
        ("alpaca", "https://paper-api.alpaca.markets", False),
        ("alpaca", None, False),
        ("sim", "http://127.0.0.1:8766", False),
    ],
)
def test_only_a_fake_on_loopback_is_fed_prices(broker: str, url: str | None, fed: bool) -> None:
    settings = Settings().model_copy(update={"alpaca_api_base_url": url})
    assert FakePrices.target(settings, broker) == (url if fed else None)


def test_the_price_feed_keeps_each_symbols_last_price_and_skips_what_is_no_trade() -> None:
    latest: dict[str, str] = {}
    for raw in [
        b'{"ts":1,"ingest_ts":1,"id":"a","symbol":"AAPL","price":190.5,"size":3}',
        b'{"ts":2,"ingest_ts":2,"id":"b","symbol":"MSFT","price":410.0,"size":1}',
        b'{"ts":3,"ingest_ts":3,"id":"c","symbol":"AAPL","price":190.25,"size":3}',
        b"not json",
        b'{"symbol":"IBM"}',
        b'{"symbol":"IBM","price":-1}',
        b'{"symbol":"IBM","price":"abc"}',
        None,
    ]:
        FakePrices._note(latest, raw)
    assert latest == {"AAPL": "190.25", "MSFT": "410.0"}
