"""The matching model (``flinktrade.matching``): fills of every order type, computed by hand."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

import pytest

from flinktrade.events import ExitReason, OrderSpec, OrderStatus, OrderType, Side, TimeInForce
from flinktrade.matching import Book, Change, Costs, Execution, Order, Update
from flinktrade.orders import Leg, leg_client_order_id

D = Decimal
MIN = 60_000
DAY = 86_400_000
T0 = 1_704_207_600_000  # 2024-01-02 15:00 UTC = 10:00 in New York


class Bar(NamedTuple):
    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: int


def bar(i: int, o: float, h: float, lo: float, c: float, volume: int = 1_000) -> Bar:
    """The i-th one-minute bar of the day from T0."""
    return Bar("AAA", T0 + i * MIN, o, h, lo, c, volume)


def fills(changes: list[Change]) -> list[tuple[str, float, float]]:
    return [(c.order_id, c.qty, c.price) for c in changes if isinstance(c, Execution)]


def statuses(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.order_id, c.status.value) for c in changes if isinstance(c, Update)]


def order(side: str = "buy", qty: float | None = 10, order_id: str = "o1", **spec: object) -> Order:
    return Order.of(order_id, "AAA", Side(side), OrderSpec.model_validate(spec), qty)


def placed(book: Book, o: Order, after_bar: int = 0) -> Order:
    """``o`` submitted at the close of bar ``after_bar`` (the start of the next one)."""
    changes = book.submit(o, T0 + (after_bar + 1) * MIN)
    assert statuses(changes)[0] == (o.id, "new")
    return o


# -- market --------------------------------------------------------------------------------------


def test_market_fills_at_the_next_open_never_inside_the_bar_it_was_placed_at() -> None:
    book = Book()
    placed(book, order())
    assert book.on_bar(bar(0, 100, 101, 99, 100)) == []  # placed at this bar's close
    changes = book.on_bar(bar(1, 102, 103, 101, 102))
    assert fills(changes) == [("o1", 10, 102)]
    assert statuses(changes) == [("o1", "filled")]
    assert not book.has_working("AAA")


def test_slippage_is_against_us_and_commission_has_rate_per_share_and_minimum() -> None:
    costs = Costs(commission=0.001, per_share=0.02, minimum=2.0, slippage_bps=50)
    book = Book(costs)
    placed(book, order("buy", 10, "b"))
    placed(book, order("sell", 1000, "s"))
    changes = book.on_bar(bar(1, 100, 100, 100, 100))
    [buy, sell] = [c for c in changes if isinstance(c, Execution)]
    assert buy.price == pytest.approx(100.5)  # 100 + 50 bps
    # 10 x 100.5 x 0.001 + 10 x 0.02 = 1.205: below the minimum of 2.
    assert buy.commission == pytest.approx(2.0)
    assert sell.price == pytest.approx(99.5)
    # 1000 x 99.5 x 0.001 + 1000 x 0.02 = 99.5 + 20.
    assert sell.commission == pytest.approx(119.5)


# -- limit ---------------------------------------------------------------------------------------


def test_limit_no_touch_then_touch_fills_at_the_limit() -> None:
    book = Book()
    placed(book, order(type="limit", limit_price=99, time_in_force="gtc"))
    assert fills(book.on_bar(bar(1, 100, 100.5, 99.5, 100))) == []
    assert fills(book.on_bar(bar(2, 100, 100, 98.5, 99.5))) == [("o1", 10, 99)]


def test_limit_gapped_through_fills_at_the_better_open() -> None:
    book = Book(Costs(slippage_bps=100))  # no slippage on a limit fill
    placed(book, order(type="limit", limit_price=99))
    assert fills(book.on_bar(bar(1, 98, 98.5, 97, 98))) == [("o1", 10, 98)]
    book = Book()
    placed(book, order("sell", type="limit", limit_price=105))
    assert fills(book.on_bar(bar(1, 107, 108, 106, 107))) == [("o1", 10, 107)]


# -- stop, stop-limit ----------------------------------------------------------------------------


def test_stop_touched_fills_at_the_stop_gapped_at_the_open() -> None:
    book = Book()
    placed(book, order("sell", type="stop", stop_price=95, order_id="touch"))
    assert fills(book.on_bar(bar(1, 97, 98, 96, 97))) == []
    assert fills(book.on_bar(bar(2, 97, 98, 94, 96))) == [("touch", 10, 95)]
    book = Book()
    placed(book, order("sell", type="stop", stop_price=95, order_id="gap"))
    assert fills(book.on_bar(bar(1, 93, 96, 92, 94))) == [("gap", 10, 93)]
    book = Book()
    placed(book, order("buy", type="stop", stop_price=105, order_id="up"))
    assert fills(book.on_bar(bar(1, 104, 106, 103, 104))) == [("up", 10, 105)]


def test_stop_limit_triggered_but_limit_not_reached_rests_as_a_limit() -> None:
    book = Book()
    o = placed(book, order("sell", type="stop_limit", stop_price=95, limit_price=94))
    # Gaps below the stop (triggered at the open, 93) but never trades back up to 94.
    assert fills(book.on_bar(bar(1, 93, 93.5, 92, 93))) == []
    assert o.triggered and o.working
    # Now a sell limit at 94: the open 93.8 is not enough, the high 94.2 is.
    assert fills(book.on_bar(bar(2, 93.8, 94.2, 93, 94))) == [("o1", 10, 94)]


def test_stop_limit_triggered_inside_the_bar_fills_at_the_stop_within_the_limit() -> None:
    book = Book()
    placed(book, order("sell", type="stop_limit", stop_price=95, limit_price=94))
    assert fills(book.on_bar(bar(1, 96, 97, 94.5, 95))) == [("o1", 10, 95)]


# -- trailing stop -------------------------------------------------------------------------------


def test_trailing_stop_follows_the_high_water_mark_then_triggers() -> None:
    book = Book()
    placed(book, order("sell", type="trailing_stop", trail_percent=10))
    # Bar 1: mark 100 at the open, stop 90, low 95: no; the high 120 lifts the mark after it.
    assert fills(book.on_bar(bar(1, 100, 120, 95, 118))) == []
    # Bar 2: the stop is now 120 x 0.9 = 108; the low 107 triggers it at 108.
    [(_id, qty, price)] = fills(book.on_bar(bar(2, 115, 116, 107, 110)))
    assert (qty, price) == (10, pytest.approx(108))


def test_trailing_stop_by_price_for_a_short_tracks_the_low_water_mark() -> None:
    book = Book()
    placed(book, order("buy", type="trailing_stop", trail_price=2))
    assert fills(book.on_bar(bar(1, 50, 51, 45, 46))) == []  # mark 50, stop 52; then mark 45
    assert fills(book.on_bar(bar(2, 46, 47.5, 45.5, 47))) == [("o1", 10, 47)]  # stop 47


def test_trailing_stop_gapped_through_fills_at_the_open() -> None:
    book = Book()
    placed(book, order("sell", type="trailing_stop", trail_price=5))
    book.on_bar(bar(1, 100, 110, 99, 109))  # mark 110 after the bar: stop 105
    assert fills(book.on_bar(bar(2, 101, 102, 100, 101))) == [("o1", 10, 101)]


# -- brackets, OTO, OCO --------------------------------------------------------------------------


def bracket(book: Book) -> tuple[str, str]:
    """A market buy of 10 with a take-profit at +4 % and a stop-loss at -2 %, filled at 100."""
    placed(book, order(take_profit_pct=4, stop_loss_pct=2, time_in_force="gtc", order_id="e"))
    changes = book.on_bar(bar(1, 100, 100.5, 99.5, 100))
    assert fills(changes) == [("e", 10, 100)]
    tp, sl = leg_client_order_id("e", Leg.TAKE_PROFIT), leg_client_order_id("e", Leg.STOP_LOSS)
    legs = {o.id: (o.side, o.type, o.limit_price, o.stop_price) for o in book.working("AAA")}
    assert legs == {
        tp: (Side.SELL, OrderType.LIMIT, 104.0, None),
        sl: (Side.SELL, OrderType.STOP, None, 98.0),
    }
    return tp, sl


def test_bracket_take_profit_wins_and_cancels_the_stop_loss() -> None:
    book = Book()
    tp, sl = bracket(book)
    changes = book.on_bar(bar(2, 101, 105, 99, 104))
    [execution] = [c for c in changes if isinstance(c, Execution)]
    assert (execution.order_id, execution.price, execution.exit_reason) == (
        tp,
        104,
        ExitReason.TAKE_PROFIT,
    )
    assert execution.parent_id == "e"
    assert (sl, "canceled") in statuses(changes)
    assert not book.has_working("AAA")


def test_bracket_stop_loss_wins() -> None:
    book = Book()
    tp, sl = bracket(book)
    changes = book.on_bar(bar(2, 99, 101, 97.5, 98))
    assert fills(changes) == [(sl, 10, 98)]
    assert [c.exit_reason for c in changes if isinstance(c, Execution)] == [ExitReason.STOP_LOSS]
    assert (tp, "canceled") in statuses(changes)


def test_bracket_both_touched_in_one_bar_the_stop_loss_wins() -> None:
    book = Book()
    tp, sl = bracket(book)
    assert fills(book.on_bar(bar(2, 100, 105, 97, 103))) == [(sl, 10, 98)]
    assert book.orders[tp].status is OrderStatus.CANCELED


def test_bracket_exits_of_an_entry_filled_at_the_open_meet_the_rest_of_that_bar() -> None:
    book = Book()
    placed(book, order(take_profit_pct=4, stop_loss_pct=2, order_id="e"))
    changes = book.on_bar(bar(1, 100, 101, 97, 99))
    assert fills(changes) == [("e", 10, 100), (leg_client_order_id("e", Leg.STOP_LOSS), 10, 98)]


def test_oto_stop_loss_of_an_entry_filled_inside_the_bar_is_tested_at_once() -> None:
    book = Book()
    placed(book, order(type="limit", limit_price=50, stop_loss_pct=2, order_id="e"))
    # The limit fills at 50 inside the bar; its stop 49 meets the bar's low 49 (pessimistic).
    changes = book.on_bar(bar(1, 51, 52, 49, 50))
    assert fills(changes) == [("e", 10, 50), (leg_client_order_id("e", Leg.STOP_LOSS), 10, 49)]


def test_oto_take_profit_of_an_entry_filled_inside_the_bar_waits_for_the_next_bar() -> None:
    book = Book()
    placed(book, order(type="limit", limit_price=50, take_profit_pct=2, order_id="e"))
    tp = leg_client_order_id("e", Leg.TAKE_PROFIT)
    assert fills(book.on_bar(bar(1, 51, 52, 49.5, 50))) == [("e", 10, 50)]  # high 52 >= 51
    assert [o.id for o in book.working("AAA")] == [tp]
    assert fills(book.on_bar(bar(2, 50.5, 51.5, 50, 51))) == [(tp, 10, 51)]


def test_oco_pair_one_fill_cancels_the_other() -> None:
    spec = {
        "type": "limit",
        "limit_price": 110,
        "take_profit_price": 110,
        "stop_loss_price": 95,
        "oco": True,
        "time_in_force": "gtc",
    }
    book = Book()
    placed(book, order("sell", 10, "x", **spec))
    sl = leg_client_order_id("x", Leg.STOP_LOSS)
    assert {o.id for o in book.working("AAA")} == {"x", sl}
    assert fills(book.on_bar(bar(1, 100, 105, 96, 104))) == []
    changes = book.on_bar(bar(2, 104, 111, 103, 110))
    assert fills(changes) == [("x", 10, 110)]
    assert [c.exit_reason for c in changes if isinstance(c, Execution)] == [ExitReason.TAKE_PROFIT]
    assert (sl, "canceled") in statuses(changes)
    book = Book()
    placed(book, order("sell", 10, "x", **spec))
    assert fills(book.on_bar(bar(1, 94, 96, 93, 95))) == [(sl, 10, 94)]  # gapped: at the open


def test_a_trailing_exit_is_placed_at_the_entry_fill_and_trails_from_there() -> None:
    book = Book()
    placed(book, order(trail_pct=5, order_id="e"))
    ts = leg_client_order_id("e", Leg.TRAILING_STOP)
    # Entry at the open 100 (mark 100, stop 95); low 96: no; the high 110 lifts the mark.
    assert fills(book.on_bar(bar(1, 100, 110, 96, 108))) == [("e", 10, 100)]
    # Stop 110 x 0.95 = 104.5; the low 104 triggers it.
    [(leg, _qty, price)] = fills(book.on_bar(bar(2, 108, 109, 104, 105)))
    assert (leg, price) == (ts, pytest.approx(104.5))


# -- time in force -------------------------------------------------------------------------------


def test_day_order_expires_at_the_end_of_its_session_gtc_stays() -> None:
    book = Book()
    placed(book, order(type="limit", limit_price=90, order_id="day"))
    placed(book, order(type="limit", limit_price=90, time_in_force="gtc", order_id="gtc"))
    assert book.on_bar(bar(1, 100, 101, 95, 100)) == []
    next_day = Bar("AAA", T0 + DAY, 95, 96, 85, 90, 1_000)
    changes = book.on_bar(next_day)
    assert ("day", "expired") in statuses(changes)
    assert fills(changes) == [("gtc", 10, 90)]


def test_day_order_placed_after_the_close_lives_through_the_next_session() -> None:
    """Daily bars stamped at midnight UTC: each bar is its own New York day; an order placed at
    one bar's close meets the next bar and expires at the one after."""
    book = Book()
    midnight = 1_704_153_600_000  # 2024-01-02 00:00 UTC = 2024-01-01 19:00 in New York
    book.submit(order(type="limit", limit_price=90), midnight)
    assert book.on_bar(Bar("AAA", midnight, 95, 96, 91, 92, 1_000)) == []
    changes = book.on_bar(Bar("AAA", midnight + DAY, 95, 96, 85, 92, 1_000))
    assert statuses(changes) == [("o1", "expired")]


def test_ioc_fills_what_the_volume_allows_and_cancels_the_rest() -> None:
    book = Book(Costs(volume_share=0.1))  # 100 of a bar of 1,000
    placed(book, order(qty=150, time_in_force="ioc"))
    changes = book.on_bar(bar(1, 100, 101, 99, 100))
    assert fills(changes) == [("o1", 100, 100)]
    assert statuses(changes) == [("o1", "partially_filled"), ("o1", "canceled")]


def test_ioc_limit_not_marketable_at_once_is_cancelled_even_if_the_bar_later_reaches_it() -> None:
    book = Book()
    placed(book, order(type="limit", limit_price=99, time_in_force="ioc"))
    changes = book.on_bar(bar(1, 100, 100, 98, 99))
    assert fills(changes) == [] and statuses(changes) == [("o1", "canceled")]


def test_fok_is_all_or_nothing() -> None:
    book = Book(Costs(volume_share=0.1))
    placed(book, order(qty=150, time_in_force="fok", order_id="big"))
    placed(book, order(qty=80, time_in_force="fok", order_id="small"))
    changes = book.on_bar(bar(1, 100, 101, 99, 100))
    assert fills(changes) == [("small", 80, 100)]
    assert ("big", "canceled") in statuses(changes)


def test_opg_fills_at_the_next_open_cls_at_the_close() -> None:
    """On a daily bar (stamped at midnight ET: the market is closed then) that stands for its
    whole day; intraday opg/cls meet the calendar's open and close (test_matching_sessions)."""
    book = Book()
    midnight = 1_704_171_600_000  # 2024-01-02 00:00 in New York
    for o in (
        order(time_in_force="opg", order_id="opg"),
        order(time_in_force="cls", order_id="cls"),
        order(type="limit", limit_price=99, time_in_force="opg", order_id="opg_limit"),
    ):
        book.submit(o, midnight - DAY)
    changes = book.on_bar(Bar("AAA", midnight, 100, 103, 98, 102, 1_000))
    assert fills(changes) == [("opg", 10, 100), ("cls", 10, 102)]
    assert ("opg_limit", "expired") in statuses(changes)  # 98 was inside the bar, not the open


# -- partial fills -------------------------------------------------------------------------------


def test_partial_fills_over_bars_when_the_order_wants_more_than_the_volume_share() -> None:
    book = Book(Costs(volume_share=0.1))
    placed(book, order(qty=250))
    first = book.on_bar(bar(1, 100, 101, 99, 100))
    second = book.on_bar(bar(2, 101, 102, 100, 101, volume=500))  # 50 available
    third = book.on_bar(bar(3, 102, 103, 101, 102))
    assert fills(first) + fills(second) + fills(third) == [
        ("o1", 100, 100),
        ("o1", 50, 101),
        ("o1", 100, 102),
    ]
    assert statuses(first) == statuses(second) == [("o1", "partially_filled")]
    assert statuses(third) == [("o1", "filled")]
    o = book.orders["o1"]
    assert o.filled_qty == 250
    assert o.avg_price == pytest.approx((100 * 100 + 50 * 101 + 100 * 102) / 250)


def test_bars_share_their_volume_between_orders_in_the_order_they_were_placed() -> None:
    book = Book(Costs(volume_share=0.1))
    placed(book, order(qty=70, order_id="first"))
    placed(book, order(qty=70, order_id="second"))
    assert fills(book.on_bar(bar(1, 100, 101, 99, 100))) == [
        ("first", 70, 100),
        ("second", 30, 100),
    ]


# -- sizing, rejects, trades ---------------------------------------------------------------------


def test_an_order_without_qty_is_sized_at_its_fill_price() -> None:
    seen: list[float] = []

    def sizer(o: Order, price: float) -> tuple[float, str]:
        seen.append(price)
        return (1000 // price, "not one unit")

    book = Book(Costs(slippage_bps=100), sizer=sizer)
    placed(book, order(qty=None))
    assert fills(book.on_bar(bar(1, 100, 100, 100, 100))) == [("o1", 9, 101)]
    assert seen == [101]


def test_an_invalid_spec_is_rejected_with_its_reason() -> None:
    book = Book()
    changes = book.submit(order(type="limit"), T0)
    assert changes == [Update("o1", T0, OrderStatus.REJECTED, "a limit order needs limit_price")]
    assert not book.has_working("AAA")


def test_trades_fill_at_the_trade_price_and_a_price_given_at_submit_fills_at_once() -> None:
    book = Book()
    placed(book, order("sell", type="stop", stop_price=95))
    assert book.on_trade("AAA", T0 + 2 * MIN, 96.0, 100) == []
    assert fills(book.on_trade("AAA", T0 + 2 * MIN + 1, 94.5, 100)) == [("o1", 10, 94.5)]
    changes = book.submit(order(order_id="now"), T0, price=101.0)
    assert fills(changes) == [("now", 10, 101.0)]


def test_cancel_takes_the_order_and_its_oco_sibling() -> None:
    book = Book()
    tp, sl = bracket(book)
    changes = book.cancel(tp, T0 + 5 * MIN)
    assert statuses(changes) == [(tp, "canceled"), (sl, "canceled")]
    assert book.cancel(tp, T0 + 6 * MIN) == []
    assert TimeInForce.GTC is book.orders[sl].time_in_force


def test_a_trade_gives_its_volume_share_and_a_notional_order_is_sized_by_its_notional() -> None:
    book = Book(Costs(volume_share=0.5))
    placed(book, order(qty=None, notional=1000))  # 1000 / 100 = 10 shares
    assert fills(book.on_trade("AAA", T0 + 2 * MIN, 100.0, 8)) == [("o1", 4, 100.0)]
    assert fills(book.on_trade("AAA", T0 + 2 * MIN + 5, 101.0, 20)) == [("o1", 6, 101.0)]
