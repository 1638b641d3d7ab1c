"""Unit tests of the executor's hardening (issue 15): intake, market-priced risk, signal age,
the order store's atomic writes, flatten planning, the simulated broker's fills and send guard,
and the CLI's refusal of a missing store. No Kafka: nothing here opens a connection."""

from __future__ import annotations

import json
import sqlite3
import stat
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flinktrade import events
from flinktrade.config import KafkaSettings, Settings
from flinktrade.errors import ConfigError
from flinktrade.events import OrderStatus, Side, Signal
from flinktrade.execution import flatten, intake, market, risk
from flinktrade.execution.brokers.base import BrokerOrder, OrderRefused, OrderRequest
from flinktrade.execution.brokers.simulated import SimulatedBroker
from flinktrade.execution.settings import ExecutionSettings, RiskSettings, SimBrokerSettings
from flinktrade.execution.store import OrderStore
from flinktrade.testing.hostile import hostile_records

NOW = 1_764_700_000_000  # 2025-12-02, a fixed "now" for pure functions


def valid_dict(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ts": NOW - 1_000,
        "ingest_ts": NOW - 500,
        "id": "0123456789abcdef0123456789abcdef",
        "strategy": "sma_cross",
        "symbol": "AAPL",
        "side": "buy",
        "price": 100.5,
        "bar_ts": NOW - 61_000,
        "strength": 1.0,
        "reason": "test",
    }
    base.update(changes)
    return base


def raw(**changes: Any) -> bytes:
    return json.dumps(valid_dict(**changes)).encode()


def sig(**changes: Any) -> Signal:
    parsed = intake.parse(raw(**changes))
    assert isinstance(parsed, Signal), parsed
    return parsed


# ---------------------------------------------------------------------- intake


def test_a_valid_signal_passes_intake() -> None:
    parsed = intake.parse(raw())
    assert isinstance(parsed, Signal) and parsed.price == Decimal("100.5")


@pytest.mark.parametrize(
    ("field", "text", "needle"),
    [
        ("symbol", "A" * 22, "symbol"),  # the finding: OrderEvent crashed the executor
        ("symbol", "A" * 17, "symbol"),
        ("symbol", "", "symbol"),
        ("symbol", "aapl", "symbol"),
        ("price", -100000, "price"),  # was sized, passed the limits and filled
        ("price", 0, "price"),  # DivisionByZero
        ("price", "1E-400", "price"),  # InvalidOperation
        ("price", "1.0000001", "decimals"),
        ("price", "1e30", "price"),
        ("ts", -86_400_000, "ts"),
        ("bar_ts", 10**23, "bar_ts"),
        ("bar_ts", NOW, "bar_ts"),  # starts after its close (ts)
        ("bar_ts", NOW - 32 * 86_400_000, "bar_ts"),
        ("id", "", "id"),
        ("id", "x" * 65, "id"),
        ("strategy", "", "strategy"),
    ],
)
def test_reproduced_hostile_signals_are_invalid_with_a_reason(
    field: str, text: object, needle: str
) -> None:
    parsed = intake.parse(raw(**{field: text}))
    assert isinstance(parsed, intake.Invalid)
    assert needle in parsed.reason and len(parsed.reason) < 300


HARMLESS = {
    # fields with defaults, or padding the model ignores: a usable signal
    "missing_ingest_ts", "missing_reason", "missing_strength", "one_mb",
}  # fmt: skip


def test_every_table_hostile_record_is_rejected_or_a_valid_signal() -> None:
    table = hostile_records(valid_dict())
    assert {name for name, _ in table} >= HARMLESS
    for name, record in table:
        parsed = intake.parse(record)
        if name in HARMLESS:
            assert isinstance(parsed, Signal), (name, parsed)
        else:
            assert isinstance(parsed, intake.Invalid), name
            assert parsed.reason and len(parsed.reason) <= 500, name


# ---------------------------------------------------------------------- market prices


def test_last_prices_keep_the_newest_by_event_time() -> None:
    prices = market.LastPrices()
    prices.update(market.MarketPrice("AAPL", Decimal(101), 2_000))
    prices.update(market.MarketPrice("AAPL", Decimal(99), 1_000))  # late and older
    assert prices.get("AAPL") == Decimal(101)
    assert prices.get("MSFT") is None


def test_price_records_parse_trades_and_bars_and_skip_garbage() -> None:
    trade = b'{"ts": 1000, "id": "t", "symbol": "AAPL", "price": 101.25, "size": 3}'
    bar = (
        b'{"ts": 1000, "symbol": "MSFT", "open": 1, "high": 2, "low": 1, "close": 1.5, "volume": 1}'
    )
    assert market.parse_price(trade) == market.MarketPrice("AAPL", Decimal("101.25"), 1000)
    assert market.parse_price(bar) == market.MarketPrice("MSFT", Decimal("1.5"), 1000)
    for bad in (b"", b"[]", b'{"symbol": "AAPL", "price": -1, "ts": 1}', b"\xff", b"[" * 5000):
        assert market.parse_price(bad) is None


# ---------------------------------------------------------------------- risk at market prices

LIMITS = RiskSettings(allow_outside_market_hours=True)


def snap(**changes: Any) -> risk.Snapshot:
    base: dict[str, Any] = {"now_ms": NOW, "market_prices": {"AAPL": Decimal(100)}}
    base.update(changes)
    return risk.Snapshot(**base)


def test_no_market_price_denies() -> None:
    decision = risk.check(sig(), Decimal(1), snap(market_prices={}), LIMITS)
    assert decision.rule == risk.Rule.NO_MARKET_PRICE and "AAPL" in (decision.reason or "")


def test_a_signal_price_far_from_the_market_denies() -> None:
    limits = RiskSettings(allow_outside_market_hours=True, max_price_deviation_pct=Decimal(5))
    assert risk.check(sig(price=104.9), Decimal(1), snap(), limits).allowed  # 4.9 %
    far = risk.check(sig(price=106), Decimal(1), snap(), limits)  # 6 %
    assert far.rule == risk.Rule.PRICE_DEVIATION and "6.00%" in (far.reason or "")


def test_notional_and_exposure_are_priced_at_the_market_not_the_signal() -> None:
    # signal at 100.5 (0.5 % off), market 100: 10 shares = 1000 at the market
    limits = RiskSettings(allow_outside_market_hours=True, max_order_notional=Decimal(1000))
    assert risk.check(sig(), Decimal(10), snap(), limits).allowed
    limits = RiskSettings(allow_outside_market_hours=True, max_order_notional=Decimal(999))
    assert risk.check(sig(), Decimal(10), snap(), limits).rule == risk.Rule.ORDER_NOTIONAL
    limits = RiskSettings(allow_outside_market_hours=True, max_gross_exposure=Decimal(999))
    assert risk.check(sig(), Decimal(10), snap(), limits).rule == risk.Rule.GROSS_EXPOSURE


def test_sizing_uses_the_market_price() -> None:
    sizing = ExecutionSettings().sizing.model_copy(update={"mode": "notional"})
    assert risk.size(sig(price=100.5), sizing, None, Decimal(250)) == 4  # 1000 / 250
    assert risk.size(sig(), sizing, None, None) == 0


@pytest.mark.parametrize(
    ("ts", "ingest_ts", "allowed"),
    [
        (NOW - 1_000, NOW - 500, True),
        (NOW - 31_000, NOW - 500, False),  # replayed history: fresh ingest_ts, old event time
        (NOW - 1_000, NOW - 31_000, False),
        (NOW + 1_500, NOW, True),  # within the 2 s clock-skew tolerance
        (NOW + 5_000, NOW, False),  # from the future
        (NOW, NOW + 5_000, False),
    ],
)
def test_signal_age_from_event_time_and_ingest_time(ts: int, ingest_ts: int, allowed: bool) -> None:
    decision = risk.check(sig(ts=ts, ingest_ts=ingest_ts), Decimal(1), snap(), LIMITS)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.rule == risk.Rule.SIGNAL_AGE


def test_event_time_age_can_be_switched_off_for_simulated_time() -> None:
    limits = RiskSettings(allow_outside_market_hours=True, signal_age_from_event_time=False)
    old_event = sig(ts=NOW - 10**9, bar_ts=NOW - 10**9 - 60_000)
    assert risk.check(old_event, Decimal(1), snap(), limits).allowed


# ---------------------------------------------------------------------- the order store


def test_an_intent_that_cannot_become_an_order_event_writes_nothing(tmp_path: Path) -> None:
    store = OrderStore(tmp_path / "orders.sqlite")
    good = sig()
    store.record_denial(client_order_id="ft-d", signal=good, qty=Decimal(1), rule="r", reason="x")
    with pytest.raises(ValueError):  # pydantic's ValidationError: symbol over 16 chars
        store.add_intent(client_order_id="ft-bad", signal=good, symbol="A" * 22, side=Side.BUY,
                         qty=Decimal(1), notional=None, price=Decimal(1))  # fmt: skip
    store.commit()
    assert store.get("ft-bad") is None
    assert store.get("ft-d") is not None  # the denial queued before survives
    assert [r.topic for r in store.outbox()] == ["trading.orders"]  # the denial's event only
    store.close()


def test_an_intent_is_stored_with_its_order_event_and_signal_time(tmp_path: Path) -> None:
    store = OrderStore(tmp_path / "orders.sqlite")
    s = sig()
    order = store.add_intent(client_order_id="ft-1", signal=s, symbol="AAPL", side=Side.BUY,
                             qty=Decimal(2), notional=None, price=Decimal(100))  # fmt: skip
    assert order.signal_ts == s.ts  # the older of ts and ingest_ts
    [record] = store.outbox()
    event = events.decode(events.OrderEvent, record.value)
    assert event.client_order_id == "ft-1" and event.status == OrderStatus.PENDING
    store.close()
    again = OrderStore(tmp_path / "orders.sqlite")
    assert again.get("ft-1") == order
    again.close()


def test_store_files_are_private_and_the_heartbeat_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "state" / "orders.sqlite"
    store = OrderStore(path)
    store.beat(NOW, 4242)
    beat = store.heartbeat()
    assert beat is not None and beat.pid == 4242 and beat.age_s(NOW + 400) == pytest.approx(0.4)
    for file in (path, path.with_name(path.name + "-wal")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    store.close()


def test_a_store_from_before_signal_ts_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE orders (client_order_id TEXT PRIMARY KEY, signal_id TEXT, strategy TEXT,"
        " symbol TEXT NOT NULL, side TEXT NOT NULL, qty TEXT, notional TEXT, price TEXT,"
        " order_type TEXT NOT NULL DEFAULT 'market', status TEXT NOT NULL, phase TEXT NOT NULL,"
        " broker_order_id TEXT, filled_qty TEXT NOT NULL DEFAULT '0', filled_avg_price TEXT,"
        " rule TEXT, reason TEXT, broker TEXT NOT NULL, created_ms INTEGER NOT NULL,"
        " sent_ms INTEGER, updated_ms INTEGER NOT NULL)"
    )
    db.execute(
        "INSERT INTO orders (client_order_id, symbol, side, status, phase, broker, created_ms,"
        " updated_ms) VALUES ('ft-old', 'AAPL', 'buy', 'filled', 'final', 'sim', 5, 6)"
    )
    db.commit()
    db.close()
    store = OrderStore(path)
    old = store.get("ft-old")
    assert old is not None and old.signal_ts is None and old.born_ms == 5
    store.close()


# ---------------------------------------------------------------------- flatten planning


def broker_order(symbol: str, side: Side, qty: int, filled: int = 0) -> BrokerOrder:
    return BrokerOrder(
        id=f"o-{symbol}-{side.value}", client_order_id=f"c-{symbol}-{side.value}", symbol=symbol,
        side=side, qty=Decimal(qty), status=OrderStatus.NEW, filled_qty=Decimal(filled),
        filled_avg_price=None, broker_status="new",
    )  # fmt: skip


def test_flatten_plan_closes_positions_net_of_open_closing_orders() -> None:
    positions = {"AAPL": Decimal(5), "MSFT": Decimal(-4), "TSLA": Decimal(3), "NVDA": Decimal(2)}
    open_orders = [
        broker_order("AAPL", Side.SELL, 3),  # already closing 3 of 5
        broker_order("TSLA", Side.SELL, 4, filled=1),  # closing the 3 remaining
        broker_order("NVDA", Side.BUY, 7),  # adds to the position: listed, not counted
    ]
    taken = {"ft-flat-AAPL-20261203-1"}
    plan = flatten.plan(
        positions, open_orders, prefix="ft-", day="20261203", taken=taken.__contains__
    )
    got = {(c.symbol, c.side, c.qty, c.client_order_id) for c in plan.closes}
    assert got == {
        ("AAPL", Side.SELL, Decimal(2), "ft-flat-AAPL-20261203-2"),
        ("MSFT", Side.BUY, Decimal(4), "ft-flat-MSFT-20261203-1"),
        ("NVDA", Side.SELL, Decimal(2), "ft-flat-NVDA-20261203-1"),
    }
    assert any("TSLA" in n and "already being closed" in n for n in plan.notes)
    assert any("NVDA" in n and "not canceled" in n for n in plan.notes)


def test_flatten_ids_are_per_utc_day() -> None:
    assert flatten.utc_day(1_764_719_999_000) == "20251202"  # 23:59:59 UTC
    assert flatten.utc_day(1_764_720_000_000) == "20251203"


# ---------------------------------------------------------------------- the simulated broker


def sim_settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),  # never contacted here
        execution=ExecutionSettings(
            sim=SimBrokerSettings(
                commission_per_share=Decimal("0.005"),
                commission_min=Decimal("1.00"),
                slippage_bps=Decimal(5),
                starting_cash=Decimal(100_000),
            )
        ),
    )


def test_simulated_fills_slippage_and_commission_by_hand(tmp_path: Path) -> None:
    broker = SimulatedBroker(sim_settings(tmp_path))
    seen: list[Any] = []
    broker._on_update = seen.append  # what start_updates installs, without the Kafka thread
    try:
        broker.submit(OrderRequest("c-buy", "AAPL", Side.BUY, Decimal(10)))
        broker._on_price(b'{"symbol": "AAPL", "price": 100, "ts": 1}')
        # buy 10 at 100 + 5 bps = 100.05; commission max(1.00, 10 x 0.005) = 1.00
        buy = broker.get_order("c-buy")
        assert buy is not None and buy.status == OrderStatus.FILLED
        assert buy.filled_avg_price == Decimal("100.05") and seen[0].commission == Decimal("1.00")
        assert broker.account().cash == Decimal("98998.50")  # 100000 - 1000.50 - 1.00
        broker.submit(OrderRequest("c-sell", "AAPL", Side.SELL, Decimal(300)))
        broker._on_price(b'{"symbol": "AAPL", "close": 50, "ts": 2}')
        # sell 300 at 50 - 5 bps = 49.975; commission max(1.00, 300 x 0.005) = 1.50
        sell = broker.get_order("c-sell")
        assert sell is not None and sell.filled_avg_price == Decimal("49.975")
        assert seen[1].commission == Decimal("1.500")
        assert broker.positions() == {"AAPL": Decimal(-290)}
        assert broker.account().cash == Decimal("98998.50") + Decimal("14992.50") - Decimal("1.5")
    finally:
        broker.close()
    path = tmp_path / "execution" / "sim_broker.sqlite"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_simulated_broker_price_feed_survives_every_hostile_record(tmp_path: Path) -> None:
    """Found by the soak: a deeply nested record raised RecursionError and killed the feed thread."""
    from flinktrade.testing.hostile import hostile_records

    broker = SimulatedBroker(sim_settings(tmp_path))
    broker._on_update = lambda _update: None
    try:
        broker.submit(OrderRequest("c-buy", "AAPL", Side.BUY, Decimal(10)))
        valid = {"symbol": "AAPL", "price": 100, "size": 5, "ts": 1}
        for _name, raw in hostile_records(valid):
            broker._on_price(raw)
        broker._on_price(b'{"symbol": "AAPL", "price": 100, "ts": 2}')
        order = broker.get_order("c-buy")
        assert order is not None and order.status == OrderStatus.FILLED
    finally:
        broker.close()


def test_simulated_broker_asks_may_send_and_refuses_with_its_reason(tmp_path: Path) -> None:
    broker = SimulatedBroker(sim_settings(tmp_path))
    asked: list[str] = []

    def halted() -> str | None:
        asked.append("asked")
        return "not sent: kill switch is on (test)"

    try:
        with pytest.raises(OrderRefused, match="kill switch is on"):
            broker.submit(OrderRequest("c-1", "AAPL", Side.BUY, Decimal(1)), may_send=halted)
        assert asked == ["asked"] and broker.get_order("c-1") is None
        placed = broker.submit(
            OrderRequest("c-2", "AAPL", Side.BUY, Decimal(1)), may_send=lambda: None
        )
        assert placed.status == OrderStatus.NEW
    finally:
        broker.close()


# ---------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("command", ["halt", "resume", "status", "positions", "orders"])
def test_cli_refuses_a_store_that_does_not_exist(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flinktrade.execution import cli

    monkeypatch.setenv("FLINKTRADE_STATE_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(ConfigError) as info:
        getattr(cli, command)()
    message = str(info.value)
    assert str(tmp_path / "elsewhere" / "execution" / "orders.sqlite") in message
    assert "FLINKTRADE_STATE_DIR" in message and "\n" not in message
    assert not (tmp_path / "elsewhere" / "execution" / "orders.sqlite").exists()
