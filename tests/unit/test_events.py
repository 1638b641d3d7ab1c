from decimal import Decimal

import pytest
from pydantic import ValidationError

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


TRADE = '{"id":"t","symbol":%s,"price":%s,"size":%s,"ts":%s}'


@pytest.mark.parametrize(
    "price",
    ["0.000001", "999999999999.999999", "1.500000000", '"12.25"', "187.1234", "1"],
)  # JSON numbers are read exactly: 999999999999.999999 is not rounded up to 1e12
def test_prices_within_the_bounds_are_accepted(price: str) -> None:
    trade = events.decode(events.Trade, TRADE % ('"AAPL"', price, 1, 1))
    assert trade.price == Decimal(price.strip('"'))


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        ("0.0000001", "below 0.000001"),  # rounded to 0 by DECIMAL(18, 6): the job died on it
        ("0.0000009", "below"),
        ("0", "not positive"),
        ("-0", "not positive"),
        ("-1.5", "not positive"),
        ("1E-400", "below"),  # read exactly, not through a float (where it would be 0)
        ('"1E-400"', "below"),
        ("1000000000000", "above"),
        ("1e30", "above"),
        ("12.0000001", "more than 6 decimals"),
        ("1.00000000000000001", "more than 6 decimals"),  # a float would make it 1
        ('"NaN"', "finite"),
        ("NaN", "finite"),
        ("1e400", "above"),
        ('"Infinity"', "finite"),
    ],
)
def test_prices_outside_the_bounds_are_refused(price: str, reason: str) -> None:
    with pytest.raises(events.DecodeError) as info:
        events.decode(events.Trade, TRADE % ('"AAPL"', price, 1, 1))
    assert str(info.value).startswith("price:")
    assert reason in str(info.value)


@pytest.mark.parametrize("symbol", ['"BRK.B"', '"BTC/USD"', '"A"', '"ABCDEFGHIJKLMNOP"'])
def test_symbols_of_1_to_16_printable_characters_are_accepted(symbol: str) -> None:
    assert events.decode(events.Trade, TRADE % (symbol, 1, 1, 1)).symbol == symbol.strip('"')


@pytest.mark.parametrize(
    "symbol",
    ['""', '"ABCDEFGHIJKLMNOPQ"', '" AAPL"', '"AA PL"', '"AAPL\\n"', '"AAPL\\u0000"', '"ÄPFEL"'],
)
def test_symbols_empty_long_or_with_spaces_or_controls_are_refused(symbol: str) -> None:
    with pytest.raises(events.DecodeError) as info:
        events.decode(events.Trade, (TRADE % (symbol, 1, 1, 1)).encode())
    assert str(info.value).startswith("symbol:")


@pytest.mark.parametrize(
    ("size", "ok"),
    [("1", True), ("1000000000000", True), ("1000000000001", False), ("0", False),
     ("-5", False), ("1.5", False), ("10.0", False), ('"10"', False)],
)  # fmt: skip
def test_sizes_are_whole_positive_and_bounded(size: str, ok: bool) -> None:
    payload = TRADE % ('"AAPL"', 1, size, 1)
    if ok:
        assert events.decode(events.Trade, payload).size == int(size)
    else:
        with pytest.raises(events.DecodeError, match=r"^size:"):
            events.decode(events.Trade, payload)


@pytest.mark.parametrize(
    ("ts", "ok"),
    [("0", True), (str(events.MAX_TS_MS), True), (str(events.MAX_TS_MS + 1), False),
     ("253402300800000", False), ("-1", False), ("1.5e12", False), ("1704205800000.0", False)],
)  # fmt: skip
def test_event_times_are_whole_and_between_1970_and_2100(ts: str, ok: bool) -> None:
    payload = TRADE % ('"AAPL"', 1, 1, ts)
    if ok:
        assert events.decode(events.Trade, payload).ts == int(ts)
    else:
        with pytest.raises(events.DecodeError, match=r"^ts:"):
            events.decode(events.Trade, payload)
    assert events.MAX_TS_MS == 4_102_444_800_000  # 2100-01-01T00:00:00Z


def _bar(**fields: object) -> dict[str, object]:
    values: dict[str, object] = {
        "symbol": "PRV", "ts": 1, "open": "10", "high": "12", "low": "9", "close": "11",
        "volume": 5,
    }  # fmt: skip
    values.update(fields)
    return values


@pytest.mark.parametrize(
    "fields",
    [
        {"low": "0"},  # reported: a provider bar with low 0 killed the job
        {"low": "10.5"},  # above the open
        {"low": "11.5", "open": "12"},  # above the close
        {"high": "10.5"},  # below the close
        {"high": "11", "open": "11.5"},  # below the open
        {"close": "1E-400"},
        {"volume": -1},
        {"volume": 10**13},
        {"interval_ms": 0},
        {"vwap": float("nan")},
        {"symbol": "PR V"},
    ],
)
def test_bars_outside_the_bounds_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        events.Bar.model_validate(_bar(**fields))


def test_a_bar_may_open_or_close_at_its_high_or_low_and_have_no_volume() -> None:
    bar = events.Bar.model_validate(_bar(open="12", close="9", volume=0))
    assert (bar.high, bar.low) == (bar.open, bar.close)


def test_signal_fill_quote_and_order_prices_follow_their_rules() -> None:
    signal = {"id": "s", "strategy": "x", "symbol": "AAPL", "side": "buy", "bar_ts": 1, "ts": 2}
    with pytest.raises(ValidationError):
        events.Signal.model_validate({**signal, "price": "0.0000001"})
    assert events.Signal.model_validate({**signal, "price": "0.000001"}).price == Decimal("1e-6")
    fill = {"id": "f", "order_id": "o", "client_order_id": "c", "symbol": "AAPL", "side": "buy",
            "qty": "1", "ts": 1}  # fmt: skip
    with pytest.raises(ValidationError):
        events.Fill.model_validate({**fill, "price": "100.1234567"})
    with pytest.raises(ValidationError):
        events.Fill.model_validate({**fill, "price": "100", "qty": "1e13"})
    # a quote may have an empty side (0); an order's average fill price any number of decimals
    quote = events.Quote(symbol="AAPL", bid_price=Decimal(0), bid_size=0,
                         ask_price=Decimal("1.5"), ask_size=1, ts=1)  # fmt: skip
    assert quote.bid_price == 0
    with pytest.raises(ValidationError):
        events.Quote(symbol="AAPL", bid_price=Decimal("0.0000001"), bid_size=1,
                     ask_price=Decimal("1.5"), ask_size=1, ts=1)  # fmt: skip
    order = events.OrderEvent(event_id="e", id="o", client_order_id="c", symbol="AAPL",
                              side=events.Side.BUY, status=events.OrderStatus.FILLED,
                              filled_avg_price=Decimal("153.0133333"), ts=1)  # fmt: skip
    assert order.filled_avg_price == Decimal("153.0133333")
    with pytest.raises(ValidationError):
        events.OrderEvent(event_id="e", id="o", client_order_id="c", symbol="AA PL",
                          side=events.Side.BUY, status=events.OrderStatus.NEW, ts=1)  # fmt: skip


def test_a_dead_letter_takes_any_record_time() -> None:
    """A dead letter stands for a record whatever its timestamp; it must never fail to build."""
    for ts in (-1, events.MAX_TS_MS * 10):
        assert events.DeadLetter.of("t", "why", b"x", ts=ts).ts == ts


def test_price_problem_is_the_rule_the_parsers_share() -> None:
    assert events.price_problem(Decimal("0.000001")) is None
    assert events.price_problem(Decimal("999999999999.999999")) is None
    assert events.price_problem(Decimal("1.0000000")) is None
    for bad in ("0.0000001", "1E+12", "1.0000001", "NaN", "-Infinity", "0", "-0"):
        assert events.price_problem(Decimal(bad)) is not None, bad


def _exact_as_float(value: Decimal) -> float | str:
    """The rule ``_decimal_json`` keeps: a float when its shortest repr is the same number."""
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)


def test_a_decimal_is_a_json_number_exactly_when_the_floats_repr_is_the_same_number() -> None:
    """``_decimal_json`` decides short decimals (at most 15 characters) from their text; on every
    kind of decimal it gives what the comparison of the float's repr with the decimal gives."""
    import random

    from flinktrade.events import _decimal_json

    rng = random.Random(5)
    cases = [Decimal(t) for t in (
        "190.650000", "0.000001", "999999999999.999999", "1234567890123456", "9999999999999999",
        "999999999999999", "123456789012345", "0.1", "-0", "0", "0E-7", "1E+400", "1E-400",
        "1.5E+300", "2.5E-300", "4.9E-324", "1.7976931348623157E+308", "Infinity", "-Infinity",
        "NaN", "100.10000000000000000001", "12345678.1234567", "1E+15", "1E+16", "1E+22",
    )]  # fmt: skip
    for _ in range(20_000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 20)))
        cases.append(Decimal(f"{rng.choice(['', '-'])}{digits}E{rng.randint(-330, 320)}"))
        cases.append(Decimal(f"{rng.randint(0, 10**12)}.{rng.randint(0, 10**6):06d}"))
    for value in cases:
        got, want = _decimal_json(value), _exact_as_float(value)
        assert type(got) is type(want), value
        assert repr(got) == repr(want), value


def _every_kind_of_event() -> list[events.Event]:
    """One event of each kind, with None fields, Decimal prices that a float carries and one that
    it does not, a nested order, and text that JSON must escape."""
    order = events.OrderSpec(type="limit", limit_price=Decimal("10.5"), take_profit_pct=2.5)
    return [
        events.Trade(id="t\u00e9", symbol="AAPL", price=Decimal("187.1234"), size=5, ts=1),
        events.Bar(
            symbol="A",
            ts=60_000,
            open=Decimal("1.01"),
            high=Decimal("999999999999.999999"),
            low=Decimal("1"),
            close=Decimal("1.5"),
            volume=3,
        ),
        events.AnalyticsBar(
            symbol="A",
            ts=60_000,
            open=Decimal(1),
            high=Decimal(2),
            low=Decimal(1),
            close=Decimal(2),
            volume=0,
            indicators={"sma_20": 1.25, "rsi_14": None, "x": 1e-300},
        ),
        events.NewsItem(id="n", headline='say "hi"\n', symbols=["TSLA"], sentiment=None, ts=2),
        events.Signal(
            id="s",
            strategy="sma_cross",
            symbol="A",
            side="buy",
            price=Decimal("3.3"),
            bar_ts=60_000,
            ts=120_000,
            indicators={"a": None, "b": 2.0},
            order=order,
        ),
        events.Signal(
            id="s2", strategy="x", symbol="A", side="sell", price=Decimal(4), bar_ts=0, ts=60_000
        ),
        events.Alert(
            id="a",
            kind="volume_spike",
            symbol=None,
            message="\u2603 \t",
            value=None,
            threshold=3.0,
            ts=5,
        ),
        events.DeadLetter.of("market.trades", "bad", b"\xff\x00raw", ts=7),
    ]


@pytest.mark.parametrize("index", range(8))
def test_encode_gives_the_models_own_json_bytes(index: int) -> None:
    event = _every_kind_of_event()[index]
    assert events.encode(event) == event.model_dump_json(exclude_none=True).encode()
