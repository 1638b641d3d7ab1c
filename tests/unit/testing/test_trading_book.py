"""The fake Alpaca trading API's order book on its own: pure bookkeeping, no server."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from flinktrade.testing.trading_book import ApiError, FakeOrder, OrderBook


class RecordingBook(OrderBook):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.events: list[tuple[str, bool]] = []
        self.booked: list[str] = []

    def _on_event(self, data: dict[str, Any], *, fill: bool = False) -> None:
        self.events.append((data["event"], fill))

    def _on_booked(self, order: FakeOrder) -> None:
        self.booked.append(order.client_order_id)


def order(book: OrderBook, side: str, qty: str, coid: str | None = None) -> FakeOrder:
    body = {"symbol": "aapl", "side": side, "qty": qty, "type": "market", "time_in_force": "day"}
    if coid is not None:
        body["client_order_id"] = coid
    return book.create_order(body)


def test_a_filled_buy_opens_a_position_and_spends_cash() -> None:
    book = RecordingBook(fill_price=Decimal("101.5"), cash=Decimal(10_000))
    placed = order(book, "buy", "10", "sig-1")
    assert placed.symbol == "AAPL" and placed.status == "accepted"
    assert book.booked == ["sig-1"] and book.events == []
    book.fill(placed.id)
    assert placed.status == "filled" and placed.filled_avg_price == Decimal("101.5")
    assert book.position_qty() == {"AAPL": Decimal(10)}
    assert book.cash == Decimal(10_000) - Decimal(1015)
    assert book.events == [("fill", True)]


def test_a_partial_fill_then_cancel_keeps_what_was_filled() -> None:
    book = RecordingBook()
    placed = order(book, "buy", "10")
    book.fill(placed.id, qty=Decimal(4))
    assert placed.status == "partially_filled" and book.open_order_count() == 1
    book.cancel(placed.id)
    assert placed.status == "canceled" and book.open_order_count() == 0
    assert book.position_qty() == {"AAPL": Decimal(4)}
    assert book.events == [("partial_fill", True), ("canceled", False)]
    with pytest.raises(ApiError, match="not cancelable"):
        book.cancel(placed.id)


def test_selling_part_of_a_position_keeps_its_average_entry_price() -> None:
    book = RecordingBook()
    book.fill(order(book, "buy", "10").id, price=Decimal(100))
    book.fill(order(book, "buy", "10").id, price=Decimal(110))
    book.fill(order(book, "sell", "5").id, price=Decimal(120))
    (position,) = book.positions_json()
    assert position["qty"] == "15"
    assert position["avg_entry_price"] == "105"
    assert position["cost_basis"] == "1575"


def test_a_repeated_client_order_id_is_refused_unless_uniqueness_is_off() -> None:
    strict = RecordingBook()
    order(strict, "buy", "1", "sig-1")
    with pytest.raises(ApiError, match="client_order_id must be unique") as refused:
        order(strict, "buy", "1", "sig-1")
    assert refused.value.status == 422
    assert strict.orders_created() == 1

    lenient = RecordingBook(enforce_unique=False)
    order(lenient, "buy", "1", "sig-1")
    order(lenient, "buy", "1", "sig-1")
    assert lenient.duplicates() == {"sig-1": 2}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"side": "hold"}, "invalid side"),
        ({"time_in_force": "week"}, "invalid time_in_force"),
        ({"type": "bogus"}, "invalid order type"),
        ({"notional": "100"}, "qty or notional"),
        ({"qty": "0"}, "must be > 0"),
        ({"qty": "ten"}, "invalid number"),
        ({"symbol": ""}, "symbol is required"),
        ({"client_order_id": "x" * 129}, "no more than 128"),
    ],
)
def test_invalid_orders_are_refused_with_422_and_book_nothing(
    change: dict[str, str], message: str
) -> None:
    book = RecordingBook()
    body = {"symbol": "AAPL", "side": "buy", "qty": "1", "type": "market", "time_in_force": "day"}
    with pytest.raises(ApiError, match=message) as refused:
        book.create_order({**body, **change})
    assert refused.value.status == 422
    assert book.orders == {} and book.booked == []
