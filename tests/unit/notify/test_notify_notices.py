"""Records the notifier must refuse at parse time, so no worker holds a notice it cannot post."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from flinktrade.events import DecodeError
from flinktrade.notify.format import Formatter, num
from flinktrade.notify.notices import EventType, parse_record

ALERT = {
    "id": "a1",
    "kind": "price_jump",
    "message": "jump",
    "symbol": "AAPL",
    "ts": 1_714_573_800_000,
}
FILL = {"id": "x1", "symbol": "AAPL", "side": "buy", "qty": "10", "price": "187.25"}


@pytest.mark.parametrize("ts", [-1, 253_402_300_800_000, 10**23])
def test_times_no_message_can_show_are_refused(ts: int) -> None:
    with pytest.raises(DecodeError, match=r"ts: .* not between 1970 and 2100"):
        parse_record(EventType.ALERT, json.dumps({**ALERT, "ts": ts}).encode())


def test_an_order_takes_the_record_time_but_its_own_ts_must_be_in_range() -> None:
    order = {"id": "o1", "symbol": "AAPL", "status": "new"}
    assert parse_record(EventType.ORDER, json.dumps(order).encode(), 1_714_573_800_000).ts > 0
    with pytest.raises(DecodeError, match="ts"):
        parse_record(EventType.ORDER, json.dumps({**order, "ts": -5}).encode())


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
