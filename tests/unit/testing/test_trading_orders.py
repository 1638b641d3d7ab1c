"""Alpaca's order model in the fake's book, without a server: classes and legs, fills of working
orders on pushed prices, replace, and Alpaca's validation answers. Prices are hand-computed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from flinktrade.testing.trading_book import ApiError, FakeOrder, OrderBook

D = Decimal


class RecordingBook(OrderBook):
    """A book that records its trade_updates as (event, client_order_id, price)."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("fill_price", D(100))
        options.setdefault("cash", D(10_000))
        super().__init__(**options)
        self.events: list[tuple[str, str, str | None]] = []

    def _on_event(self, data: dict[str, Any], *, fill: bool = False) -> None:
        self.events.append((data["event"], data["order"]["client_order_id"], data.get("price")))


def place(book: OrderBook, **fields: Any) -> FakeOrder:
    body: dict[str, Any] = {"symbol": "AAPL", "side": "buy", "qty": "10", "type": "market"}
    body["time_in_force"] = "day"
    return book.create_order({**body, **fields})


BRACKET = {
    "order_class": "bracket",
    "client_order_id": "entry",
    "take_profit": {"limit_price": "110"},
    "stop_loss": {"stop_price": "95"},
}


def test_a_bracket_books_held_legs_that_go_live_when_the_entry_fills() -> None:
    book = RecordingBook()
    entry = place(book, **BRACKET)
    take, stop = entry.legs
    answer = entry.to_json()
    assert answer["order_class"] == "bracket"
    assert [leg["status"] for leg in answer["legs"]] == ["held", "held"]
    assert [(leg["type"], leg["side"]) for leg in answer["legs"]] == [
        ("limit", "sell"),
        ("stop", "sell"),
    ]
    assert (answer["legs"][0]["limit_price"], answer["legs"][1]["stop_price"]) == ("110", "95")
    assert len({entry.id, take.id, stop.id}) == 3
    assert len({entry.client_order_id, take.client_order_id, stop.client_order_id}) == 3
    assert book.orders_created() == 1  # one POST, whatever its legs

    book.push_price("AAPL", D(96))  # held legs do not work yet
    assert book.events == []
    book.fill(entry.id)
    assert book.events == [
        ("fill", "entry", "96"),
        ("new", take.client_order_id, None),
        ("new", stop.client_order_id, None),
    ]


def test_the_stop_loss_of_a_bracket_fills_at_the_gap_and_cancels_the_take_profit() -> None:
    book = RecordingBook()
    entry = place(book, **BRACKET)
    take, stop = entry.legs
    book.fill(entry.id)  # 10 at 100
    book.events.clear()
    book.push_price("AAPL", D("95.01"))
    assert book.events == []
    book.push_price("AAPL", D(93))  # gapped through 95: fills at 93
    assert book.events == [
        ("fill", stop.client_order_id, "93"),
        ("canceled", take.client_order_id, None),
    ]
    assert (stop.status, take.status) == ("filled", "canceled")
    assert book.position_qty() == {}
    assert book.cash == D(10_000) - 10 * D(100) + 10 * D(93)


def test_the_take_profit_of_a_bracket_fills_and_cancels_the_stop_loss() -> None:
    book = RecordingBook()
    entry = place(book, **BRACKET)
    take, stop = entry.legs
    book.fill(entry.id)
    book.events.clear()
    book.push_price("AAPL", D("109.99"))
    book.push_price("AAPL", D(111))
    assert book.events == [
        ("fill", take.client_order_id, "111"),
        ("canceled", stop.client_order_id, None),
    ]
    assert book.cash == D(10_000) + 10 * D(11)


def test_cancelling_a_bracket_parent_cancels_its_held_legs() -> None:
    book = RecordingBook()
    entry = place(book, **BRACKET)
    book.cancel(entry.id)
    assert [o.status for o in (entry, *entry.legs)] == ["canceled"] * 3
    assert book.open_order_count() == 0
    assert [e[0] for e in book.events] == ["canceled"] * 3


def test_an_oco_exits_a_position_with_both_legs_working_and_one_cancels_the_other() -> None:
    book = RecordingBook()
    book.set_position("AAPL", D(10))
    oco = place(
        book, side="sell", type="limit", order_class="oco", client_order_id="exit",
        take_profit={"limit_price": "110"}, stop_loss={"stop_price": "90", "limit_price": "89"},
    )  # fmt: skip
    (stop,) = oco.legs
    assert (oco.type, oco.limit_price, oco.side) == ("limit", D(110), "sell")
    assert (stop.type, stop.stop_price, stop.limit_price, stop.status) == (
        "stop_limit", D(90), D(89), "new",
    )  # fmt: skip
    book.push_price("AAPL", D("89.5"))  # the stop-limit triggers at 90 and fills within 89
    assert book.events == [("fill", stop.client_order_id, "89.5"), ("canceled", "exit", None)]
    assert book.position_qty() == {}


def test_an_oto_has_its_one_leg() -> None:
    book = RecordingBook()
    entry = place(book, order_class="oto", stop_loss={"stop_price": "95"})
    (stop,) = entry.legs
    assert (stop.type, stop.status, stop.order_class) == ("stop", "held", "oto")


def test_a_simple_order_ignores_exits_as_alpaca_does() -> None:
    book = RecordingBook()
    order = place(book, take_profit={"limit_price": "110"})
    assert order.legs == [] and order.to_json()["legs"] is None


@pytest.mark.parametrize(
    ("fields", "prices", "fill"),
    [
        ({"type": "limit", "limit_price": "99"}, ["99.5", "98.5"], "98.5"),
        ({"type": "limit", "limit_price": "101", "side": "sell"}, ["100.5", "102"], "102"),
        ({"type": "stop", "stop_price": "105"}, ["104.99", "107"], "107"),
        ({"type": "stop", "stop_price": "95", "side": "sell"}, ["95.01", "95"], "95"),
        # triggered at 95 by the gap to 93 but below the limit: fills when back to 94.2
        (
            {"type": "stop_limit", "stop_price": "95", "limit_price": "94", "side": "sell"},
            ["96", "93", "94.2"],
            "94.2",
        ),
        (
            {"type": "stop_limit", "stop_price": "105", "limit_price": "106"},
            ["104", "106.5", "105.5"],
            "105.5",
        ),
    ],
)
def test_working_orders_fill_when_a_pushed_price_crosses_them(
    fields: dict[str, str], prices: list[str], fill: str
) -> None:
    book = RecordingBook()
    order = place(book, client_order_id="o", **fields)
    for price in prices[:-1]:
        book.push_price("AAPL", D(price))
        assert order.status == "accepted", price
    book.push_price("AAPL", D(prices[-1]))
    assert book.events == [("fill", "o", fill)]


def test_a_trailing_stop_follows_its_high_water_mark() -> None:
    book = RecordingBook()
    order = place(book, side="sell", type="trailing_stop", trail_percent="5", client_order_id="t")
    answer = order.to_json()
    assert (answer["hwm"], answer["stop_price"], answer["trail_percent"]) == ("100", "95", "5")
    book.push_price("AAPL", D(110))
    assert (order.hwm, order.stop_price) == (D(110), D("104.50"))
    book.push_price("AAPL", D(105))  # below the mark: the stop stays
    assert (order.hwm, order.stop_price, order.status) == (D(110), D("104.50"), "accepted")
    book.push_price("AAPL", D(104))
    assert book.events == [("fill", "t", "104")]


def test_a_buy_trailing_stop_by_price_follows_the_low() -> None:
    book = RecordingBook()
    order = place(book, type="trailing_stop", trail_price="2", client_order_id="t")
    assert order.stop_price == D(102)
    book.push_price("AAPL", D(95))
    assert (order.hwm, order.stop_price) == (D(95), D(97))
    book.push_price("AAPL", D("97.5"))
    assert book.events == [("fill", "t", "97.5")]


def test_fractional_and_notional_day_orders_are_accepted() -> None:
    book = RecordingBook()
    part = place(book, qty="0.5", type="limit", limit_price="101")
    assert part.to_json()["qty"] == "0.5"
    dollars = place(book, qty=None, notional="250")
    book.fill(dollars.id)
    assert dollars.filled_qty == D("2.5")


def test_replace_books_a_new_order_and_marks_the_old_one_replaced() -> None:
    book = RecordingBook()
    old = place(book, type="limit", limit_price="90", client_order_id="a")
    new = book.replace(old.id, {"limit_price": "95", "client_order_id": "b"})
    assert (old.status, old.replaced_by, new.replaces) == ("replaced", new.id, old.id)
    assert (new.limit_price, new.qty, new.status, new.client_order_id) == (
        D(95),
        D(10),
        "accepted",
        "b",
    )
    assert book.events == [("replaced", "a", None)]
    book.push_price("AAPL", D("94.5"))  # crosses the new limit, the old one is gone
    assert book.events[-1] == ("fill", "b", "94.5")
    with pytest.raises(ApiError) as closed:
        book.replace(new.id, {"limit_price": "96"})
    assert (closed.value.status, closed.value.code, closed.value.message) == (
        422, 42210000, "unable to replace order, order is not open",
    )  # fmt: skip


def test_replace_without_a_change_is_refused() -> None:
    book = RecordingBook()
    old = place(book, type="limit", limit_price="90")
    with pytest.raises(ApiError) as unchanged:
        book.replace(old.id, {})
    assert (unchanged.value.status, unchanged.value.code) == (403, 40310000)
    assert unchanged.value.message == "order parameters are not changed"


def test_a_replaced_stop_loss_leg_stays_in_its_bracket() -> None:
    book = RecordingBook()
    entry = place(book, **BRACKET)
    book.fill(entry.id)
    take, stop = entry.legs
    moved = book.replace(stop.id, {"stop_price": "98"})
    assert entry.legs == [take, moved] and moved.parent_id == entry.id
    book.events.clear()
    book.push_price("AAPL", D("97.5"))
    assert book.events == [
        ("fill", moved.client_order_id, "97.5"),
        ("canceled", take.client_order_id, None),
    ]


def test_replacing_a_trailing_stop_moves_its_stop_from_the_mark() -> None:
    book = RecordingBook()
    order = place(book, side="sell", type="trailing_stop", trail_price="3")
    book.push_price("AAPL", D(120))
    new = book.replace(order.id, {"trail": "5"})
    assert (new.hwm, new.trail_price, new.stop_price) == (D(120), D(5), D(115))


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"type": "limit"}, 40010001, "limit orders require a limit price"),
        (
            {"type": "limit", "limit_price": "99", "stop_price": "98"},
            40010001,
            "limit orders must not have stop_price",
        ),
        ({"limit_price": "99"}, 40010001, "market orders require no stop or limit price"),
        ({"type": "stop"}, 40010001, "stop orders require a stop price"),
        (
            {"type": "stop_limit", "stop_price": "99"},
            40010001,
            "stop limit orders require both stop and limit price",
        ),
        (
            {"type": "trailing_stop"},
            40010001,
            "trailing stop orders must specify one of trail_price or trail_percent",
        ),
        (
            {"type": "trailing_stop", "trail_percent": "0.05"},
            40010001,
            "trail_percent must be greater than or equal to 0.1",
        ),
        ({"qty": "1", "notional": "100"}, 40010001, "only one of qty or notional is accepted"),
        ({"qty": None}, 40010001, "qty or notional is required"),
        (
            {"type": "limit", "limit_price": "11.055"},
            42210000,
            "invalid limit_price 11.055. sub-penny increment does not fulfill minimum pricing"
            " criteria",
        ),
        ({"type": "limit", "limit_price": "0.12345"}, 42210000, "invalid limit_price 0.12345."),
        ({"qty": "1.5", "time_in_force": "gtc"}, 42210000, "fractional orders must be DAY orders"),
        ({"qty": "1.5", **BRACKET}, 42210000, "fractional orders must be simple orders"),
        (
            {"extended_hours": True},
            42210000,
            "extended hours order must be DAY or GTC limit orders",
        ),
        (
            {"type": "limit", "limit_price": "99", "extended_hours": True, "time_in_force": "ioc"},
            42210000,
            "extended hours order must be DAY or GTC limit orders",
        ),
        (
            {"order_class": "bracket", "take_profit": {"limit_price": "110"}},
            40010001,
            "bracket orders must specify both take_profit and stop_loss",
        ),
        (
            {**BRACKET, "take_profit": {"limit_price": "100"}},
            42210000,
            "take_profit.limit_price must be >= base_price + 0.01",
        ),
        (
            {**BRACKET, "stop_loss": {"stop_price": "100"}},
            42210000,
            "stop_loss.stop_price must be <= base_price - 0.01",
        ),
        # a limit entry at 90: its price is the base, not the market's 100
        (
            {**BRACKET, "type": "limit", "limit_price": "90"},
            42210000,
            "stop_loss.stop_price must be <= base_price - 0.01",
        ),
        (
            {**BRACKET, "side": "sell"},
            42210000,
            "take_profit.limit_price must be <= base_price - 0.01",
        ),
        (
            {**BRACKET, "stop_loss": {"stop_price": "95.001"}},
            42210000,
            "invalid stop_loss.stop_price 95.001.",
        ),
    ],
)
def test_orders_alpaca_refuses_are_answered_with_its_code_and_message(
    change: dict[str, Any], code: int, message: str
) -> None:
    book = RecordingBook()
    body = {"symbol": "AAPL", "side": "buy", "qty": "10", "type": "market", "time_in_force": "day"}
    with pytest.raises(ApiError) as refused:
        book.create_order({**body, **change})
    assert (refused.value.status, refused.value.code) == (422, code)
    assert refused.value.message.startswith(message)
    assert book.orders == {}


def test_an_ioc_limit_the_price_does_not_reach_is_canceled_at_once() -> None:
    book = RecordingBook()
    missed = place(book, type="limit", limit_price="99", time_in_force="ioc", client_order_id="a")
    hit = place(book, type="limit", limit_price="101", time_in_force="fok", client_order_id="b")
    book.cross(missed.id)
    book.cross(hit.id)
    assert book.events == [("canceled", "a", None), ("fill", "b", "100")]


def test_a_replaced_bracket_entry_takes_its_legs_along() -> None:
    book = RecordingBook()
    entry = place(book, **{**BRACKET, "type": "limit", "limit_price": "99"})
    new = book.replace(entry.id, {"limit_price": "99.5"})
    assert new.legs == entry.legs and all(leg.parent_id == new.id for leg in new.legs)
    book.events.clear()
    book.push_price("AAPL", D("99.4"))
    take, stop = new.legs
    assert book.events == [
        ("fill", new.client_order_id, "99.4"),
        ("new", take.client_order_id, None),
        ("new", stop.client_order_id, None),
    ]


def test_cancel_all_cancels_each_open_order_once_legs_included() -> None:
    book = RecordingBook()
    entry = place(book, **BRACKET)
    other = place(book, type="limit", limit_price="90")
    canceled = book.cancel_all()
    assert {o.id for o in canceled} == {entry.id, other.id, *(leg.id for leg in entry.legs)}
    assert [e[0] for e in book.events] == ["canceled"] * 4
    assert book.open_order_count() == 0
