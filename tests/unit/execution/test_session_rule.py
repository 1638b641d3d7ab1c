"""The ``session`` risk rule (the signal's event time on the market calendar) and the
``market_hours`` setting that decides where it applies."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from exec_core_fakes import make_rig

from flinktrade.events import OrderSpec, OrderStatus, OrderType, Side, Signal, TimeInForce
from flinktrade.execution import risk
from flinktrade.execution.settings import (
    ExecutionSettings,
    MarketHours,
    RiskSettings,
    SessionRule,
)


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


def signal_at(ts: int, order: OrderSpec | None = None) -> Signal:
    return Signal(
        id="b" * 32, strategy="s", symbol="AAPL", side=Side.BUY, price=Decimal(50),
        bar_ts=ts - 60_000, ts=ts, ingest_ts=ts, order=order,
    )  # fmt: skip


def judge(
    ts: int,
    rule: SessionRule,
    *,
    market_open: bool | None = True,
    allow: bool = True,
    order: OrderSpec | None = None,
) -> risk.Decision:
    limits = RiskSettings(allow_outside_market_hours=allow)
    snap = risk.Snapshot(
        now_ms=ts, market_prices={"AAPL": Decimal(50)}, market_open=market_open,
        session_rule=rule,
    )  # fmt: skip
    return risk.check(signal_at(ts, order), Decimal(1), snap, limits)


def extended(
    kind: OrderType = OrderType.LIMIT, tif: TimeInForce = TimeInForce.DAY, allow: bool = True
) -> OrderSpec:
    return OrderSpec(
        type=kind, time_in_force=tif, extended_hours=allow,
        limit_price=Decimal(50) if kind is OrderType.LIMIT else None,
    )  # fmt: skip


REGULAR = utc(2024, 3, 11, 15, 0)  # Monday 11:00 EDT
POST = utc(2024, 3, 11, 21, 0)  # 17:00 EDT
PRE = utc(2024, 3, 11, 9, 0)  # 05:00 EDT
GOOD_FRIDAY = utc(2024, 3, 29, 15, 0)


@pytest.mark.parametrize("ts", [POST, PRE, GOOD_FRIDAY, utc(2024, 3, 9, 15, 0)])
def test_enforced_a_plain_signal_outside_the_regular_session_is_denied(ts: int) -> None:
    decision = judge(ts, SessionRule.ALL)
    assert decision.rule == risk.Rule.SESSION
    assert decision.reason is not None and "ET" in decision.reason


def test_enforced_a_signal_in_the_regular_session_passes() -> None:
    assert judge(REGULAR, SessionRule.ALL).allowed


@pytest.mark.parametrize("ts", [POST, PRE, GOOD_FRIDAY])
@pytest.mark.parametrize("rule", [SessionRule.OFF, SessionRule.EXTENDED])
def test_a_plain_signal_is_not_judged_by_the_calendar_unless_enforced(
    ts: int, rule: SessionRule
) -> None:
    assert judge(ts, rule).allowed


def test_the_brokers_clock_rule_is_unchanged() -> None:
    for rule in SessionRule:
        decision = judge(REGULAR, rule, market_open=False, allow=False)
        assert decision.rule == risk.Rule.MARKET_HOURS
        assert decision.reason == "market is closed"
        assert judge(REGULAR, rule, market_open=True, allow=False).allowed
    assert judge(POST, SessionRule.EXTENDED, market_open=None, allow=False).rule == (
        risk.Rule.MARKET_HOURS
    )


NIGHT = utc(2024, 3, 12, 3, 0)  # 23:00 EDT


@pytest.mark.parametrize("rule", [SessionRule.EXTENDED, SessionRule.ALL])
@pytest.mark.parametrize("ts", [PRE, POST])
def test_an_extended_hours_limit_order_trades_in_pre_and_after_hours(
    rule: SessionRule, ts: int
) -> None:
    # the broker's clock says closed in those hours: the calendar's word counts for this order
    for tif in (TimeInForce.DAY, TimeInForce.GTC):
        order = extended(tif=tif)
        assert judge(ts, rule, market_open=False, allow=False, order=order).allowed


@pytest.mark.parametrize(
    ("ts", "order", "reason"),
    [
        (NIGHT, extended(), "the market is closed at 2024-03-11 23:00 ET"),
        (GOOD_FRIDAY, extended(), "the market is closed at 2024-03-29 11:00 ET"),
        (POST, extended(tif=TimeInForce.IOC), "only limit orders with time in force day or gtc"),
        (PRE, extended(OrderType.MARKET), "only limit orders with time in force day or gtc"),
    ],
)
def test_extended_hours_only_as_alpaca_takes_them(ts: int, order: OrderSpec, reason: str) -> None:
    decision = judge(ts, SessionRule.EXTENDED, market_open=False, allow=False, order=order)
    assert decision.rule == risk.Rule.SESSION
    assert decision.reason is not None and reason in decision.reason


def test_a_limit_order_without_extended_hours_keeps_to_the_regular_session() -> None:
    order = extended(allow=False)
    assert judge(POST, SessionRule.EXTENDED, order=order).allowed  # not judged by the calendar
    denied = judge(POST, SessionRule.ALL, order=order)
    assert denied.rule == risk.Rule.SESSION
    assert denied.reason is not None and "does not allow extended hours" in denied.reason
    assert judge(REGULAR, SessionRule.ALL, order=order).allowed


def test_off_leaves_extended_hours_orders_to_the_brokers_clock() -> None:
    decision = judge(POST, SessionRule.OFF, market_open=False, allow=False, order=extended())
    assert decision.rule == risk.Rule.MARKET_HOURS


@pytest.mark.parametrize(
    ("market_hours", "broker", "rule"),
    [
        (MarketHours.AUTO, "alpaca", SessionRule.EXTENDED),
        (MarketHours.AUTO, "sim", SessionRule.OFF),
        (MarketHours.ENFORCE, "sim", SessionRule.ALL),
        (MarketHours.ENFORCE, "alpaca", SessionRule.ALL),
        (MarketHours.OFF, "alpaca", SessionRule.OFF),
        (MarketHours.OFF, "sim", SessionRule.OFF),
    ],
)
def test_market_hours_setting(market_hours: MarketHours, broker: str, rule: SessionRule) -> None:
    assert ExecutionSettings(market_hours=market_hours).session_rule(broker) is rule


def test_market_hours_defaults_to_auto_and_reads_its_values() -> None:
    assert ExecutionSettings().market_hours == MarketHours.AUTO
    assert ExecutionSettings.model_validate({"market_hours": "enforce"}).market_hours == "enforce"
    with pytest.raises(ValueError, match="market_hours"):
        ExecutionSettings.model_validate({"market_hours": "sometimes"})


# ---------------------------------------------------------------- the executor, both ways


def _signal(ts: int, n: int) -> Signal:
    return Signal(
        id=Signal.make_id("unit", "AAPL", n), strategy="unit", symbol="AAPL", side=Side.BUY,
        price=Decimal(100), bar_ts=ts - 60_000, ts=ts, ingest_ts=ts,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("market_hours", "broker_name", "placed"),
    [
        (MarketHours.AUTO, "sim", True),  # the demo's broker: orders at any hour
        (MarketHours.AUTO, "alpaca", True),  # a plain order keeps to the broker's clock
        (MarketHours.ENFORCE, "sim", False),
        (MarketHours.ENFORCE, "alpaca", False),
        (MarketHours.OFF, "alpaca", True),
    ],
)
def test_the_executor_places_or_denies_an_after_hours_signal(
    tmp_path: Path, market_hours: MarketHours, broker_name: str, placed: bool
) -> None:
    now = [POST + 1_000]
    rig = make_rig(tmp_path, clock=lambda: now[0])
    rig.broker.name = broker_name  # the broker's clock (BookBroker) says open
    rig.core.desk.config = rig.core.config.model_copy(update={"market_hours": market_hours})
    s = _signal(POST, 1)
    rig.decide(s)
    order = rig.store.get("ft-" + s.id)
    assert order is not None
    if placed:
        assert order.status == OrderStatus.FILLED and len(rig.broker.submitted) == 1
    else:
        assert order.status == OrderStatus.DENIED and rig.broker.submitted == []
        assert rig.core.stats.denied_by_rule == {"session": 1}
    next_day = utc(2024, 3, 12, 15, 0)  # 11:00 EDT: the regular session passes every way
    now[0] = next_day + 1_000
    regular = _signal(next_day, 2)
    rig.decide(regular)
    after = rig.store.get("ft-" + regular.id)
    assert after is not None and after.status == OrderStatus.FILLED
