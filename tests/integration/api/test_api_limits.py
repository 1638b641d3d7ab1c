"""What the API keeps stays bounded: symbols (least recently updated evicted), Prometheus label
values taken from records, stream clients, and positions read incrementally from the order
store."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from api_helpers import make_bars
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from pydantic import SecretStr
from starlette.websockets import WebSocketDisconnect

from flinktrade.api.app import create_app
from flinktrade.api.metrics import ApiMetrics
from flinktrade.api.positions import PositionBook
from flinktrade.api.settings import ApiSettings
from flinktrade.api.state import MarketState
from flinktrade.config import KafkaSettings, Settings
from flinktrade.events import Alert, Fill, Severity, Side, Signal
from flinktrade.execution.store import OrderStore

T0 = 1_704_205_800_000


def test_symbols_are_capped_and_the_least_recently_updated_goes_first() -> None:
    state = MarketState(bars_per_symbol=10, events_kept=10, max_symbols=3)
    bars = {s: make_bars(s, 3, seed=i) for i, s in enumerate(["AAA", "BBB", "CCC", "DDD"])}
    for symbol in ("AAA", "BBB", "CCC"):
        state.apply("bars", bars[symbol][0])
    state.apply("bars", bars["AAA"][1])  # AAA is now the most recently updated
    state.apply("bars", bars["AAA"][1])  # a repeat changes nothing
    state.apply("bars", bars["DDD"][0])  # a fourth symbol: BBB, the stalest, is dropped
    assert [row["symbol"] for row in state.symbols()] == ["AAA", "CCC", "DDD"]
    assert state.bars("BBB", 10) == []
    assert len(state.bars("AAA", 10)) == 2
    state.apply("bars", bars["BBB"][1])  # BBB comes back; CCC is now the stalest
    assert [row["symbol"] for row in state.symbols()] == ["AAA", "BBB", "DDD"]


def _signal(strategy: str, i: int) -> Signal:
    return Signal(
        ts=T0 + i,
        id=f"s{i}",
        strategy=strategy,
        symbol="AAA",
        side=Side.BUY,
        price=Decimal(1),
        bar_ts=T0,
    )


def test_label_values_from_records_are_capped_with_other() -> None:
    metrics = ApiMetrics(max_label_values=2)
    for i in range(10):
        metrics.count(_signal(f"strategy_{i % 5}", i))  # 5 strategies, twice each
        metrics.count(
            Alert(
                ts=T0 + i, id=f"a{i}", kind=str(i) + "k" * 500, severity=Severity.INFO, message=""
            )
        )
    text = generate_latest(metrics.registry).decode()
    signal_lines = [
        line for line in text.splitlines() if line.startswith("flinktrade_signals_total")
    ]
    assert sorted(signal_lines) == [
        'flinktrade_signals_total{side="buy",strategy="other"} 6.0',
        'flinktrade_signals_total{side="buy",strategy="strategy_0"} 2.0',
        'flinktrade_signals_total{side="buy",strategy="strategy_1"} 2.0',
    ]
    alert_lines = [line for line in text.splitlines() if line.startswith("flinktrade_alerts_total")]
    assert len(alert_lines) == 3  # two (cut) kinds and "other"
    assert all(len(line) < 200 for line in alert_lines)
    assert 'kind="other"' in text


def _fill(i: int, side: Side, qty: int, price: str, symbol: str = "AAA") -> Fill:
    return Fill(
        ts=T0 + i,
        id=f"x{i}",
        order_id=f"o{i}",
        client_order_id=f"c{i}",
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        price=Decimal(price),
        commission=Decimal("0.5"),
    )


def test_positions_are_read_incrementally_and_match_average_cost(tmp_path: Path) -> None:
    path = tmp_path / "orders.sqlite"
    book = PositionBook(path)
    assert book.rows({}) == []  # no store yet
    store = OrderStore(path)
    try:
        store.add_fill(_fill(1, Side.BUY, 10, "100"))
        store.add_fill(_fill(2, Side.BUY, 10, "110"))
        [first] = book.rows({"AAA": Decimal("112")})
        store.add_fill(_fill(3, Side.SELL, 5, "120"))
        store.add_fill(_fill(4, Side.BUY, 3, "50", symbol="BBB"))
        store.adopt_positions({"AAA": Decimal(15), "BBB": Decimal(3), "CCC": Decimal(7)})
        second = book.rows({"AAA": Decimal("112")})
        assert book.fills_read == 4  # each fill read once, not once per poll
        assert book.rows({"AAA": Decimal("112")}) == second
        assert book.fills_read == 4
    finally:
        store.close()
    assert first == {
        "symbol": "AAA",
        "qty": "20",
        "avg_price": "105.000000",
        "last_price": "112",
        "market_value": "2240.00",
        "unrealized_pnl": "140.00",  # (112 - 105) * 20
        "realized_pnl": "-1.00",  # two commissions
    }
    aaa, bbb, ccc = second
    assert (aaa["symbol"], aaa["qty"], aaa["avg_price"]) == ("AAA", "15", "105.000000")
    assert aaa["realized_pnl"] == "73.50"  # (120 - 105) * 5 - 3 commissions of 0.5
    assert (bbb["symbol"], bbb["qty"], bbb["last_price"]) == ("BBB", "3", "50")  # last fill price
    assert (ccc["symbol"], ccc["qty"], ccc["last_price"]) == ("CCC", "7", None)  # adopted only

    path.unlink()  # a new store file: the books start over
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = OrderStore(path)
    try:
        store.add_fill(_fill(9, Side.BUY, 1, "10", symbol="ZZZ"))
    finally:
        store.close()
    assert [row["symbol"] for row in book.rows({})] == ["ZZZ"]


def test_stream_clients_are_capped(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),  # never reached: no lifespan here
        api=ApiSettings(token=SecretStr("t0ken-for-the-cap"), max_stream_clients=2),
    )
    client = TestClient(create_app(settings))
    auth = {"Authorization": "Bearer t0ken-for-the-cap"}
    with (
        client.websocket_connect("/api/stream?topics=signals", headers=auth) as first,
        client.websocket_connect("/api/stream?topics=alerts", headers=auth) as second,
    ):
        assert first.receive_json()["type"] == second.receive_json()["type"] == "ready"
        with (
            client.websocket_connect("/api/stream?topics=news", headers=auth) as third,
            pytest.raises(WebSocketDisconnect) as refused,
        ):
            third.receive_json()
        assert refused.value.code == 1013
    with client.websocket_connect("/api/stream?topics=news", headers=auth) as later:
        assert later.receive_json()["type"] == "ready"  # room again once the others left
