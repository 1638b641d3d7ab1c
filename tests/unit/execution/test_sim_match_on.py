"""The simulated broker's ``match_on`` and ``market_hours``: whole bars as the backtester matches
them, and prices outside the chosen sessions filling nothing. No Kafka: records are handed to the
broker's price handler as its feed thread would. Expected fills are worked out by hand from the
matching rules (docs/backtest.md, "Order model") and the costs below (5 bps, 0.005/share, 1.00
minimum)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from flinktrade.config import KafkaSettings, Settings
from flinktrade.events import OrderSpec, OrderStatus, Side
from flinktrade.execution.brokers.base import OrderRequest, TradeUpdate
from flinktrade.execution.brokers.simulated import SimulatedBroker
from flinktrade.execution.settings import (
    ExecutionSettings,
    SimBrokerSettings,
    SimMarketHours,
    SimMatchOn,
)

D = Decimal
OPEN_MS = 1_704_205_800_000  # 2024-01-02 14:30 UTC: 09:30 ET, the regular session opens
PRE_MS = 1_704_204_000_000  # 2024-01-02 14:00 UTC: 09:00 ET, pre-market
MINUTE = 60_000


def sim(
    tmp_path: Path,
    match_on: SimMatchOn = SimMatchOn.BARS,
    hours: SimMarketHours = SimMarketHours.ALL,
) -> tuple[SimulatedBroker, list[TradeUpdate]]:
    settings = Settings(
        state_dir=tmp_path,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),  # never contacted here
        execution=ExecutionSettings(
            sim=SimBrokerSettings(
                commission_per_share=D("0.005"),
                commission_min=D("1.00"),
                slippage_bps=D(5),
                match_on=match_on,
                market_hours=hours,
            )
        ),
    )
    broker = SimulatedBroker(settings)
    seen: list[TradeUpdate] = []
    broker._on_update = seen.append  # what start_updates installs, without the Kafka thread
    return broker, seen


def raw_bar(
    broker: SimulatedBroker, ts: int, o: str, h: str, lo: str, c: str, interval_ms: int = MINUTE
) -> None:
    """A bar record with its prices as JSON numbers (as the job writes them)."""
    broker._on_price(
        f'{{"symbol": "AAPL", "ts": {ts}, "open": {o}, "high": {h}, "low": {lo}, "close": {c},'
        f' "volume": 1000, "interval_ms": {interval_ms}}}'.encode()
    )


def trade(broker: SimulatedBroker, price: str, ts: int) -> None:
    broker._on_price(f'{{"symbol": "AAPL", "price": {price}, "ts": {ts}}}'.encode())


def order(spec: dict[str, Any] | None = None, coid: str = "ft-1") -> OrderRequest:
    return OrderRequest(
        client_order_id=coid,
        symbol="AAPL",
        side=Side.BUY,
        qty=D(10),
        spec=OrderSpec.model_validate(spec or {}),
    )


def fills(seen: list[TradeUpdate]) -> list[tuple[str, Decimal | None, int]]:
    return [(u.order.client_order_id, u.price, u.ts) for u in seen if u.is_fill]


def test_on_bars_a_market_order_fills_at_the_next_bars_open_and_trades_do_not_fill(
    tmp_path: Path,
) -> None:
    broker, seen = sim(tmp_path)
    try:
        raw_bar(broker, OPEN_MS, "100", "101", "99", "100.5")  # before the order: never its fill
        broker.submit(order())
        trade(broker, "100.7", OPEN_MS + MINUTE + 1)  # trades only move the last price
        assert fills(seen) == []
        assert broker.prices["AAPL"] == D("100.7")
        raw_bar(broker, OPEN_MS + MINUTE, "102", "103", "101", "102.5")
        # the open 102 + 5 bps = 102.051, stamped with the bar's start (the backtest's fill time)
        assert fills(seen) == [("ft-1", D("102.051"), OPEN_MS + MINUTE)]
        filled = broker.get_order("ft-1")
        assert filled is not None and filled.status == OrderStatus.FILLED
        assert broker.account().cash == D("98978.49")  # 100000 - 1020.51 - 1.00
    finally:
        broker.close()


def test_on_bars_a_limit_fills_at_its_price_inside_the_bar_where_the_close_would_not(
    tmp_path: Path,
) -> None:
    for match_on, expected in (
        (SimMatchOn.BARS, [("ft-1", D("99"), OPEN_MS)]),  # the low 98.8 touches 99: at 99
        (SimMatchOn.TRADES, []),  # the bar is one price, its close 100.2: above the limit
    ):
        broker, seen = sim(tmp_path / match_on.value, match_on)
        try:
            broker.submit(order({"type": "limit", "limit_price": "99"}))
            raw_bar(broker, OPEN_MS, "100", "100.5", "98.8", "100.2")
            assert [(c, p, t if match_on is SimMatchOn.BARS else 0) for c, p, t in fills(seen)] == (
                expected
            ), match_on
        finally:
            broker.close()


def test_on_bars_a_brackets_stop_meets_the_bars_low_and_wins_over_the_take_profit(
    tmp_path: Path,
) -> None:
    broker, seen = sim(tmp_path)
    try:
        spec = {"take_profit_price": "103", "stop_loss_price": "98"}
        broker.submit(order(spec))
        raw_bar(broker, OPEN_MS, "100", "100.5", "99.5", "100")  # entry at 100 + 5 bps
        raw_bar(broker, OPEN_MS + MINUTE, "100", "103.5", "97.5", "101")  # touches both exits
        entry = broker.get_order("ft-1")
        assert entry is not None
        legs = {leg.type: leg for leg in entry.legs}
        assert legs["stop"].status == OrderStatus.FILLED
        assert legs["stop"].filled_avg_price == D("97.951")  # the stop 98 - 5 bps, pessimistic
        assert legs["limit"].status == OrderStatus.CANCELED
        assert [p for _c, p, _t in fills(seen)] == [D("100.05"), D("97.951")]
    finally:
        broker.close()


def test_market_hours_regular_leaves_pre_market_bars_unmatched(tmp_path: Path) -> None:
    for hours, extended, first_fill in (
        (
            SimMarketHours.REGULAR,
            False,
            OPEN_MS,
        ),  # the pre-market bar is left out, as in a backtest
        (SimMarketHours.REGULAR, True, OPEN_MS),
        (SimMarketHours.EXTENDED, False, OPEN_MS),  # an order without extended hours waits
        (SimMarketHours.EXTENDED, True, PRE_MS),
        (SimMarketHours.ALL, False, PRE_MS),  # no sessions at all
    ):
        broker, seen = sim(tmp_path / f"{hours.value}-{extended}", hours=hours)
        try:
            spec = {"type": "limit", "limit_price": "99", "extended_hours": extended}
            broker.submit(order(spec))
            raw_bar(broker, PRE_MS, "100", "100", "98", "99.5")
            raw_bar(broker, OPEN_MS, "100", "100", "98.5", "99.5")
            assert [t for _c, _p, t in fills(seen)] == [first_fill], (hours, extended)
        finally:
            broker.close()


def test_market_hours_apply_to_trades_and_a_daily_bar_is_a_whole_session(tmp_path: Path) -> None:
    broker, seen = sim(tmp_path / "trades", SimMatchOn.TRADES, SimMarketHours.REGULAR)
    try:
        broker.submit(order({"type": "limit", "limit_price": "99"}))
        trade(broker, "98", PRE_MS)  # pre-market: not matched
        assert fills(seen) == []
        trade(broker, "98.5", OPEN_MS)
        assert [p for _c, p, _t in fills(seen)] == [D("98.5")]
    finally:
        broker.close()
    broker, seen = sim(tmp_path / "daily", hours=SimMarketHours.REGULAR)
    try:
        broker.submit(order({"type": "limit", "limit_price": "99", "time_in_force": "gtc"}))
        midnight = 1_704_153_600_000  # 2024-01-02 00:00 UTC: closed, but a day bar is the day
        raw_bar(broker, midnight, "100", "100", "98", "99.5", interval_ms=86_400_000)
        assert [t for _c, _p, t in fills(seen)] == [midnight]
    finally:
        broker.close()


def test_a_bar_record_that_is_no_valid_bar_fills_nothing_and_the_feed_goes_on(
    tmp_path: Path,
) -> None:
    broker, seen = sim(tmp_path)
    try:
        broker.submit(order())
        # low above the open: refused as a bar (its close still moves the last price)
        raw_bar(broker, OPEN_MS, "100", "101", "100.5", "100.7")
        broker._on_price(b'{"symbol": "AAPL", "ts": 1, "open": [], "close": 5}')
        broker._on_price(b"\xff not json")
        assert fills(seen) == []
        raw_bar(broker, OPEN_MS + MINUTE, "101", "101", "100", "100.5")
        assert fills(seen) == [("ft-1", D("101.0505"), OPEN_MS + MINUTE)]
    finally:
        broker.close()


def test_on_bars_a_market_order_waiting_for_its_bar_outlives_a_restart(tmp_path: Path) -> None:
    broker, _ = sim(tmp_path)
    broker.submit(order())
    broker.close()
    again, seen = sim(tmp_path)
    try:
        raw_bar(again, OPEN_MS, "50", "51", "49", "50.5")
        assert fills(seen) == [("ft-1", D("50.025"), OPEN_MS)]  # 50 + 5 bps
        assert again.positions() == {"AAPL": D(10)}
    finally:
        again.close()
