from decimal import Decimal

import pytest

from flinktrade import events
from flinktrade.ingest.simulator import RawTrade


def test_trade_round_trip_keeps_price_digits_exactly() -> None:
    trade = events.Trade(
        id="t1", symbol="AAPL", price=Decimal("187.1234"), size=5, ts=1, ingest_ts=2
    )
    data = events.encode(trade)
    assert b'"price":187.1234' in data
    assert events.decode(events.Trade, data) == trade


def test_price_that_a_float_cannot_carry_travels_as_a_string() -> None:
    price = Decimal("999999999999.999999")  # 18 digits: more than a double holds
    assert float(price) != price
    trade = events.Trade(id="t", symbol="X", price=price, size=1, ts=1, ingest_ts=1)
    assert events.decode(events.Trade, events.encode(trade)).price == price


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"id":"t","symbol":"A","price":-1,"size":1,"ts":1}', "price"),
        (b'{"id":"t","symbol":"A","price":1,"size":0,"ts":1}', "size"),
        (b'{"id":"t","price":1,"size":1,"ts":1}', "symbol"),
        (b"not json", "json"),
    ],
)
def test_decode_error_names_the_problem(payload: bytes, reason: str) -> None:
    with pytest.raises(events.DecodeError) as info:
        events.decode(events.Trade, payload)
    assert reason in str(info.value).lower()


def test_signal_id_is_deterministic_and_distinguishes_its_inputs() -> None:
    a = events.Signal.make_id("sma_cross", "AAPL", 60_000)
    assert a == events.Signal.make_id("sma_cross", "AAPL", 60_000)
    assert a != events.Signal.make_id("sma_cross", "AAPL", 120_000)
    assert a != events.Signal.make_id("sma_cross", "MSFT", 60_000)
    assert a != events.Signal.make_id("rsi", "AAPL", 60_000)
    assert len(a) == 32


@pytest.mark.parametrize("cents", [1, 10, 100, 12345, 12340, 12300, 99999999])
def test_fast_trade_encoding_equals_the_model_encoding(cents: int) -> None:
    raw = RawTrade("AAPL-1", "AAPL", cents, 7, 1_704_205_800_123)
    assert raw.to_json(5) == events.encode(raw.to_event(5))


def test_key_is_the_symbol() -> None:
    trade = events.Trade(id="t", symbol="MSFT", price=Decimal(1), size=1, ts=1)
    assert trade.key == b"MSFT"
    news = events.NewsItem(id="n", headline="h", symbols=["TSLA", "F"], ts=1)
    assert news.key == b"TSLA"


def test_dead_letters_are_bounded_whatever_they_are_built_from() -> None:
    from flinktrade.events import MAX_DEAD_PAYLOAD_BYTES, MAX_DEAD_REASON_CHARS, DeadLetter

    huge = b"\xff" + b"x" * 400_000  # not UTF-8, and far over the bound
    letter = DeadLetter.of("alerts", "r" * 10_000, huge, ts=1, partition=0, offset=7)
    assert len(letter.reason) == MAX_DEAD_REASON_CHARS
    assert len(letter.payload.encode()) <= MAX_DEAD_PAYLOAD_BYTES
    assert letter.payload_bytes == len(huge)
    assert len(events.encode(letter)) < 2 * MAX_DEAD_PAYLOAD_BYTES
    # built directly, the same bounds hold; a small record keeps every byte and no size field
    direct = DeadLetter(ts=1, source_topic="t", reason="x" * 501, payload="é" * 100_000)
    assert len(direct.reason) == MAX_DEAD_REASON_CHARS
    assert len(direct.payload.encode()) <= MAX_DEAD_PAYLOAD_BYTES
    small = DeadLetter.of("t", "why", b'{"a": 1}', ts=1)
    assert small.payload == '{"a": 1}' and small.payload_bytes is None
