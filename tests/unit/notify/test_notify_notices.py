"""Records the notifier must refuse at parse time, so no worker holds a notice it cannot post."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from flinktrade.events import DecodeError
from flinktrade.notify.format import Formatter, num
from flinktrade.notify.notices import parse_record
from flinktrade.notify.settings import EventType

ALERT = {
    "id": "a1",
    "kind": "price_jump",
    "message": "jump",
    "symbol": "AAPL",
    "ts": 1_714_573_800_000,
}
FILL = {
    "id": "x1",
    "order_id": "o1",
    "client_order_id": "c1",
    "symbol": "AAPL",
    "side": "buy",
    "qty": "10",
    "price": "187.25",
    "ts": 1_714_573_800_000,
}
ORDER = {
    "event_id": "e1",
    "id": "o1",
    "client_order_id": "c1",
    "symbol": "AAPL",
    "side": "buy",
    "qty": "10",
    "status": "new",
}


@pytest.mark.parametrize("ts", [-1, 253_402_300_800_000, 10**23])
def test_times_no_message_can_show_are_refused(ts: int) -> None:
    with pytest.raises(DecodeError, match=r"ts: .* not between 1970 and 2100"):
        parse_record(EventType.ALERT, json.dumps({**ALERT, "ts": ts}).encode())


def test_an_order_needs_its_own_time_in_range() -> None:
    record = {**ORDER, "ts": 1_714_573_800_000}
    assert parse_record(EventType.ORDER, json.dumps(record).encode()).ts == 1_714_573_800_000
    with pytest.raises(DecodeError, match="ts"):
        parse_record(EventType.ORDER, json.dumps(ORDER).encode())  # no time of its own
    with pytest.raises(DecodeError, match="ts"):
        parse_record(EventType.ORDER, json.dumps({**ORDER, "ts": -5}).encode())


def test_an_order_of_the_topics_contract_that_no_message_can_show_is_refused() -> None:
    record = json.dumps({**ORDER, "ts": 1_714_573_800_000, "qty": "PLACEHOLDER"})
    with pytest.raises(DecodeError, match="qty"):
        parse_record(EventType.ORDER, record.replace('"PLACEHOLDER"', "1e400").encode())


def test_orders_and_fills_in_another_shape_are_refused() -> None:
    # field names a lenient reader once took: trading.orders has one contract, OrderEvent
    lenient_order = {"order_id": "o-43", "symbol": "TSLA", "status": "rejected", "ts": 1}
    with pytest.raises(DecodeError, match="Field required"):
        parse_record(EventType.ORDER, json.dumps(lenient_order).encode())
    lenient_fill = {**FILL, "execution_id": FILL["id"]}
    del lenient_fill["id"]
    with pytest.raises(DecodeError, match="id: Field required"):
        parse_record(EventType.FILL, json.dumps(lenient_fill).encode())


@pytest.mark.parametrize(
    ("field", "raw"),
    [("price", "0"), ("price", "-1"), ("price", "NaN"), ("qty", "0"), ("qty", "1e400")],
)
def test_fills_need_a_positive_finite_quantity_and_price(field: str, raw: str) -> None:
    record = json.dumps({**FILL, field: "PLACEHOLDER"}).replace('"PLACEHOLDER"', raw)
    with pytest.raises(DecodeError, match=field):
        parse_record(EventType.FILL, record.encode())


def test_huge_and_tiny_decimals_render_short() -> None:
    assert num(Decimal("1e400")) == "1E+400"
    assert num(Decimal("187.25")) == "187.25"
    assert num(Decimal("1e-20")) == "1E-20"
    signal = {
        "id": "s1",
        "strategy": "x",
        "symbol": "AAPL",
        "side": "buy",
        "price": "999999999999.999999",  # the largest price a signal may have
        "bar_ts": 0,
        "ts": 1_714_573_800_000,
    }
    message = Formatter().notice(parse_record(EventType.SIGNAL, json.dumps(signal).encode()))
    assert len(message.text) < 1000


def test_an_alert_of_a_kind_this_version_does_not_know_is_shown_by_its_text() -> None:
    record = json.dumps({**ALERT, "kind": "options.early_assignment"}).encode()
    notice = parse_record(EventType.ALERT, record)
    assert notice.kind == "options.early_assignment"
    message = Formatter().notice(notice)
    assert message.blocks[0]["text"]["text"] == ":warning: Options early assignment: AAPL"


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("notional", "1e15"),
        ("limit_price", "1e20"),
        ("filled_avg_price", "1000000000000000.5"),
        ("filled_qty", "-1e15"),
    ],
)
def test_order_amounts_no_message_shows_are_refused(field: str, raw: str) -> None:
    record = {**ORDER, "ts": 1_714_573_800_000, field: "PLACEHOLDER"}
    text = json.dumps(record).replace('"PLACEHOLDER"', raw)
    with pytest.raises(DecodeError, match=f"^{field}: "):
        parse_record(EventType.ORDER, text.encode())


def test_a_fills_position_beyond_what_a_message_shows_is_refused() -> None:
    record = json.dumps({**FILL, "position_qty": "PLACEHOLDER"}).replace('"PLACEHOLDER"', "2e15")
    with pytest.raises(DecodeError, match=r"^position_qty: "):
        parse_record(EventType.FILL, record.encode())
    assert parse_record(EventType.FILL, json.dumps({**FILL, "position_qty": -5}).encode())
