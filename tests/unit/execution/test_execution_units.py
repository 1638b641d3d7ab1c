"""Unit tests of the order store, sizing and risk rules, Alpaca parsing and CLI guards."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from flinktrade.errors import ConfigError
from flinktrade.events import Fill, OrderStatus, Side, Signal
from flinktrade.execution import risk
from flinktrade.execution.brokers.alpaca import is_live_url, map_status, parse_trade_update
from flinktrade.execution.cli.common import check_broker as _check_broker
from flinktrade.execution.crash import CrashHook
from flinktrade.execution.decide import client_order_id
from flinktrade.execution.settings import RiskSettings, SizingMode, SizingSettings
from flinktrade.execution.store import OrderStore, advances


def signal(side: Side = Side.BUY, price: str = "50", ingest_ts: int = 1_000_000) -> Signal:
    return Signal(
        id="a" * 32, strategy="s", symbol="AAPL", side=side, price=Decimal(price),
        bar_ts=ingest_ts - 60_000, ts=ingest_ts, ingest_ts=ingest_ts,
    )  # fmt: skip


def test_client_order_id_is_stable_and_short() -> None:
    assert client_order_id("ft-", "a" * 32) == "ft-" + "a" * 32
    assert len(client_order_id("ft-", "b" * 100)) == 48


def test_status_never_goes_back_from_final() -> None:
    zero, one = Decimal(0), Decimal(1)
    assert advances(OrderStatus.PENDING, zero, OrderStatus.NEW, zero)
    assert not advances(OrderStatus.FILLED, one, OrderStatus.NEW, one)
    assert not advances(OrderStatus.PARTIALLY_FILLED, one, OrderStatus.NEW, zero)
    assert not advances(OrderStatus.NEW, zero, OrderStatus.NEW, zero)


def test_store_survives_reopen_and_dedupes_fills(tmp_path: Path) -> None:
    path = tmp_path / "orders.sqlite"
    store = OrderStore(path)
    store.add_intent(client_order_id="c1", signal=signal(), symbol="AAPL", side=Side.BUY,
                     qty=Decimal(3), notional=None, price=Decimal(50))  # fmt: skip
    store.halt("test")
    fill = Fill(ts=1, id="x1", order_id="o1", client_order_id="c1", symbol="AAPL",
                side=Side.BUY, qty=Decimal(3), price=Decimal("50.5"))  # fmt: skip
    assert store.add_fill(fill) is True
    assert store.add_fill(fill) is False
    store.close()
    again = OrderStore(path)  # what a restarted process sees
    assert again.get("c1") is not None and again.get("c1").status == OrderStatus.PENDING  # type: ignore[union-attr]
    assert again.halted() == "test"
    assert again.positions() == {"AAPL": Decimal(3)}
    again.resume()
    assert again.halted() is None
    again.close()


@pytest.mark.parametrize(
    ("sizing", "equity", "expected"),
    [
        (SizingSettings(mode=SizingMode.QTY, qty=Decimal(7)), None, Decimal(7)),
        (SizingSettings(mode=SizingMode.NOTIONAL, notional=Decimal(1000)), None, Decimal(20)),
        (SizingSettings(mode=SizingMode.NOTIONAL, notional=Decimal(99)), None, Decimal(1)),
        (SizingSettings(mode=SizingMode.PERCENT_EQUITY, percent_equity=Decimal(2)),
         Decimal(100_000), Decimal(40)),
        (SizingSettings(mode=SizingMode.PERCENT_EQUITY), None, Decimal(0)),
    ],
)  # fmt: skip
def test_sizing(sizing: SizingSettings, equity: Decimal | None, expected: Decimal) -> None:
    assert risk.size(signal(price="50"), sizing, equity, Decimal(50)) == expected


def test_long_only_sell_is_capped_at_the_position() -> None:
    limits = RiskSettings(allow_outside_market_hours=True)
    market = {"AAPL": Decimal(50)}
    snap = risk.Snapshot(now_ms=1_000_000, positions={"AAPL": Decimal(2)}, market_prices=market)
    decision = risk.check(signal(Side.SELL), Decimal(5), snap, limits)
    assert decision.allowed and decision.qty == 2
    flat = risk.Snapshot(now_ms=1_000_000, market_prices=market)
    assert risk.check(signal(Side.SELL), Decimal(5), flat, limits).rule == "nothing_to_sell"


def test_account_breaches() -> None:
    limits = RiskSettings(daily_loss_limit=Decimal(100), max_drawdown_pct=Decimal(10))
    assert risk.account_breach(Decimal(1000), Decimal(1050), Decimal(1050), limits) is None
    loss = risk.account_breach(Decimal(1000), Decimal(1100), Decimal(1100), limits)
    assert loss is not None and loss[0] == "daily_loss_limit"
    dd = risk.account_breach(Decimal(1000), Decimal(1000), Decimal(1200), limits)
    assert dd is not None and dd[0] == "max_drawdown_pct"


def test_alpaca_parsing_keeps_decimals() -> None:
    update = parse_trade_update(
        {"event": "partial_fill", "execution_id": "e1", "price": "101.123456789", "qty": "2",
         "timestamp": "2024-01-02T14:30:00.5Z",
         "order": {"id": "o1", "client_order_id": "ft-x", "symbol": "AAPL", "side": "buy",
                   "qty": "5", "filled_qty": "2", "filled_avg_price": "101.123456789",
                   "status": "partially_filled"}}
    )  # fmt: skip
    assert update.price == Decimal("101.123456789")
    assert update.order.status == OrderStatus.PARTIALLY_FILLED
    assert update.ts == 1_704_205_800_500
    assert map_status("pending_new") == OrderStatus.ACCEPTED
    assert map_status("done_for_day", Decimal(1)) == OrderStatus.PARTIALLY_FILLED
    assert map_status("something_new") == OrderStatus.ACCEPTED


def test_live_urls_and_cli_guards() -> None:
    assert is_live_url("https://api.alpaca.markets")
    assert not is_live_url("https://paper-api.alpaca.markets")
    assert not is_live_url("http://127.0.0.1:8080")
    with pytest.raises(ConfigError):
        _check_broker("alpaca", True, False)  # --live without the confirmation
    with pytest.raises(ConfigError):
        _check_broker("sim", True, True)
    with pytest.raises(ConfigError):
        _check_broker("ib", False, False)
    _check_broker("alpaca", True, True)


def test_crash_hook_parses_steps() -> None:
    hook = CrashHook("request_sent:3, intent_stored")
    assert hook.at == {"request_sent": 3, "intent_stored": 1}
    hook("request_sent")  # 1st and 2nd pass: nothing happens
    hook("request_sent")
    assert hook.seen["request_sent"] == 2
