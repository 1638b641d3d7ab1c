"""The order model's rules (``orders``) and the order a signal carries (``events.OrderSpec``)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from flinktrade import events, orders
from flinktrade.errors import ConfigError
from flinktrade.events import OrderClass, OrderSpec, OrderType, Side, TimeInForce
from flinktrade.orders import Leg
from flinktrade.strategies import BarView, build

D = Decimal


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"type": "limit"}, "a limit order needs limit_price"),
        ({"type": "stop_limit", "stop_price": 10}, "a stop_limit order needs limit_price"),
        ({"type": "stop", "limit_price": 10, "stop_price": 9}, "a stop order takes no limit_price"),
        ({"type": "market", "limit_price": 10}, "a market order takes no limit_price"),
        ({"type": "stop"}, "a stop order needs stop_price"),
        (
            {"type": "limit", "limit_price": 10, "stop_price": 9},
            "a limit order takes no stop_price",
        ),
        ({"type": "trailing_stop"}, "exactly one of trail_percent and trail_price"),
        (
            {"type": "trailing_stop", "trail_percent": 1, "trail_price": 2},
            "exactly one of trail_percent and trail_price",
        ),
        ({"trail_percent": 1}, "a market order takes no trail_percent"),
        ({"qty": 2, "notional": 100}, "a qty or a notional, not both"),
        ({"type": "limit", "limit_price": 10, "notional": 100}, "notional orders must be market"),
        ({"notional": 100, "time_in_force": "gtc"}, "notional orders must be market"),
        ({"qty": "1.5", "time_in_force": "gtc"}, "fractional orders must have time_in_force day"),
        ({"extended_hours": True}, "extended hours orders must be limit orders"),
        (
            {"type": "limit", "limit_price": 10, "extended_hours": True, "time_in_force": "ioc"},
            "extended hours orders must be limit orders",
        ),
        ({"take_profit_price": 11, "take_profit_pct": 2}, "a price or a percentage, not both"),
        ({"stop_loss_price": 9, "stop_loss_pct": 2}, "a price or a percentage, not both"),
        ({"stop_loss_limit_price": 9}, "stop_loss_limit_price needs stop_loss_price"),
        ({"trail_pct": 1, "stop_loss_pct": 2}, "stands alone"),
        ({"oco": True, "take_profit_price": 11}, "needs take_profit_price and stop_loss_price"),
        (
            {"oco": True, "take_profit_price": 11, "stop_loss_price": 9},
            "an oco order is of type limit",
        ),
        ({"stop_loss_pct": 2, "time_in_force": "ioc"}, "exits must have time_in_force day or gtc"),
        (
            {
                "type": "limit",
                "limit_price": 10,
                "extended_hours": True,
                "stop_loss_pct": 2,
            },
            "cannot trade in extended hours",
        ),
        ({"notional": 100, "take_profit_pct": 2}, "needs a qty, not a notional"),
        ({"type": "limit", "limit_price": "10.001"}, "limit_price 10.001: sub-penny increment"),
        ({"stop_loss_price": "0.50001"}, "stop_loss_price 0.50001: sub-penny"),
    ],
)
def test_a_bad_combination_is_named(fields: dict[str, object], problem: str) -> None:
    found = orders.order_problem(OrderSpec.model_validate(fields))
    assert found is not None and problem in found


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"type": "limit", "limit_price": "10.25", "time_in_force": "gtc"},
        {"type": "stop", "stop_price": 9},
        {"type": "stop_limit", "stop_price": 9, "limit_price": "8.9"},
        {"type": "trailing_stop", "trail_percent": "1.5", "time_in_force": "gtc"},
        {"type": "trailing_stop", "trail_price": 2},
        {"qty": "0.5"},
        {"notional": 250},
        {"type": "limit", "limit_price": 10, "extended_hours": True, "time_in_force": "gtc"},
        {"take_profit_pct": 4, "stop_loss_pct": 2},
        {"take_profit_price": 12, "stop_loss_price": 9, "stop_loss_limit_price": "8.9"},
        {"trail_pct": 3, "time_in_force": "gtc"},
        {
            "oco": True,
            "type": "limit",
            "limit_price": 11,
            "take_profit_price": 11,
            "stop_loss_price": 9,
        },
        {"time_in_force": "opg"},
        {"time_in_force": "fok", "qty": 10},
        {"type": "limit", "limit_price": "0.5001"},
    ],
)
def test_a_valid_order_has_no_problem(fields: dict[str, object]) -> None:
    assert orders.order_problem(OrderSpec.model_validate(fields)) is None


def test_prices_go_on_the_tick_in_either_direction() -> None:
    assert orders.to_tick(D("10.001"), up=True) == D("10.01")
    assert orders.to_tick(D("10.009"), up=False) == D("10.00")
    assert orders.to_tick(D("0.50001"), up=False) == D("0.5000")


def test_whole_shares_only_where_the_broker_says_so() -> None:
    spec = OrderSpec(qty=D("0.5"))
    assert orders.order_problem(spec, fractional=True) is None
    problem = orders.order_problem(spec, fractional=False)
    assert problem is not None and "whole shares" in problem
    assert orders.order_problem(OrderSpec(qty=D(3)), fractional=False) is None


def test_the_order_class_follows_the_exits() -> None:
    assert OrderSpec().order_class is OrderClass.SIMPLE
    assert OrderSpec(take_profit_pct=D(4), stop_loss_pct=D(2)).order_class is OrderClass.BRACKET
    assert OrderSpec(stop_loss_price=D(9)).order_class is OrderClass.OTO
    assert OrderSpec(trail_pct=D(3)).order_class is OrderClass.OTO
    assert OrderSpec(oco=True).order_class is OrderClass.OCO
    assert OrderSpec().is_plain and not OrderSpec(qty=D(1)).is_plain


def test_a_field_the_order_does_not_know_is_refused_not_dropped() -> None:
    # a misspelt exit must not decode as a plain market order without its exits
    wire = (
        b'{"ts":60000,"id":"s","strategy":"x","symbol":"AAPL","side":"buy","price":10,'
        b'"bar_ts":0,"order":{"takeprofit_pct":4}}'
    )
    with pytest.raises(events.DecodeError, match=r"^order\.takeprofit_pct: Extra inputs"):
        events.decode(events.Signal, wire)


@pytest.mark.parametrize("bad", [{"take_profit_pct": 0}, {"stop_loss_pct": 100}, {"trail_pct": -1}])
def test_a_percentage_is_between_0_and_100(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        OrderSpec.model_validate(bad)


def test_exits_of_a_long_entry_are_measured_from_its_fill_and_rounded_away_from_it() -> None:
    spec = OrderSpec(take_profit_pct=D(4), stop_loss_pct=D(2))
    legs = orders.exit_legs(spec, Side.BUY, D("100.37"))
    # 100.37 * 1.04 = 104.3848 -> up to 104.39; 100.37 * 0.98 = 98.3626 -> down to 98.36
    assert legs == [
        orders.ExitLeg(Leg.TAKE_PROFIT, Side.SELL, OrderType.LIMIT, limit_price=D("104.39")),
        orders.ExitLeg(Leg.STOP_LOSS, Side.SELL, OrderType.STOP, stop_price=D("98.36")),
    ]


def test_exits_of_a_short_entry_mirror_those_of_a_long_one() -> None:
    spec = OrderSpec(take_profit_pct=D(4), stop_loss_pct=D(2))
    legs = orders.exit_legs(spec, Side.SELL, D("100.37"))
    # 100.37 * 0.96 = 96.3552 -> down to 96.35; 100.37 * 1.02 = 102.3774 -> up to 102.38
    assert [(leg.leg, leg.side, leg.limit_price, leg.stop_price) for leg in legs] == [
        (Leg.TAKE_PROFIT, Side.BUY, D("96.35"), None),
        (Leg.STOP_LOSS, Side.BUY, None, D("102.38")),
    ]


def test_a_sub_dollar_exit_is_rounded_to_a_hundredth_of_a_cent() -> None:
    legs = orders.exit_legs(OrderSpec(stop_loss_pct=D(3)), Side.BUY, D("0.5"))
    assert legs[0].stop_price == D("0.4850")  # 0.5 * 0.97


def test_absolute_exits_and_a_trailing_stop_are_taken_as_given() -> None:
    spec = OrderSpec(take_profit_price=D(12), stop_loss_price=D(9), stop_loss_limit_price=D("8.9"))
    legs = orders.exit_legs(spec, Side.BUY, D(10))
    assert legs[1] == orders.ExitLeg(
        Leg.STOP_LOSS, Side.SELL, OrderType.STOP_LIMIT, limit_price=D("8.9"), stop_price=D(9)
    )
    trail = orders.exit_legs(OrderSpec(trail_pct=D("2.5")), Side.BUY, D(10))
    assert trail == [
        orders.ExitLeg(
            Leg.TRAILING_STOP, Side.SELL, OrderType.TRAILING_STOP, trail_percent=D("2.5")
        )
    ]
    oco = OrderSpec(oco=True, type=OrderType.LIMIT, limit_price=D(11), take_profit_price=D(11))
    assert orders.exit_legs(oco, Side.SELL, D(10)) == []


def test_leg_ids_are_derived_distinct_and_within_alpacas_128_characters() -> None:
    coid = "ft-" + "a" * 125
    ids = {leg: orders.leg_client_order_id(coid, leg) for leg in Leg}
    assert ids[Leg.ENTRY] == coid
    assert len(set(ids.values())) == len(Leg)
    assert all(len(value) <= 128 for value in ids.values())
    assert ids == {leg: orders.leg_client_order_id(coid, leg) for leg in Leg}


def test_a_signal_carries_its_order_through_the_codec_and_a_plain_one_is_unchanged() -> None:
    plain = events.Signal(
        id="s", strategy="x", symbol="AAPL", side=Side.BUY, price=D(10), bar_ts=0, ts=60_000
    )
    assert b"order" not in events.encode(plain)
    bracket = plain.model_copy(
        update={"order": OrderSpec(take_profit_pct=D(4), stop_loss_pct=D("2.5"))}
    )
    wire = events.encode(bracket)
    assert json.loads(wire)["order"] == {
        "type": "market",
        "time_in_force": "day",
        "extended_hours": False,
        "oco": False,
        "take_profit_pct": 4.0,
        "stop_loss_pct": 2.5,
    }
    back = events.decode(events.Signal, wire)
    assert back.order == bracket.order
    assert back.order is not None and back.order.time_in_force is TimeInForce.DAY


def test_a_built_in_strategy_with_exit_parameters_puts_them_on_every_intent() -> None:
    strategy = build("sma_cross", {"fast": 2, "slow": 3, "stop_loss_pct": 2, "take_profit_pct": 4})
    plain = build("sma_cross", {"fast": 2, "slow": 3})
    state, intents = strategy.initial_state(), []
    plain_state, plain_intents = plain.initial_state(), []
    for ts, (fast, slow) in enumerate([(1.0, 2.0), (3.0, 2.0), (1.0, 2.0)]):
        bar = BarView(
            symbol="AAPL",
            ts=ts * 60_000,
            end_ts=(ts + 1) * 60_000,
            open=D(10),
            high=D(10),
            low=D(10),
            close=D(10),
            volume=1,
            vwap=None,
            indicators={"sma_2": fast, "sma_3": slow},
        )
        out, state = strategy.on_bar(bar, state)
        intents += out
        out, plain_state = plain.on_bar(bar, plain_state)
        plain_intents += out
    assert [i.side for i in intents] == [Side.BUY, Side.SELL]
    assert all(i.order == OrderSpec(take_profit_pct=D(4), stop_loss_pct=D(2)) for i in intents)
    assert [i.order for i in plain_intents] == [None, None]


def test_a_bad_exit_parameter_is_refused_when_the_strategy_is_built() -> None:
    with pytest.raises(
        ConfigError, match=r": stop_loss_pct must be between 0 and 100 \(percent\), got 0$"
    ):
        build("rsi_reversion", {"stop_loss_pct": 0})
    with pytest.raises(ConfigError, match=r": trail_pct must be a number, got 'x'$"):
        build("sma_cross", {"trail_pct": "x"})
