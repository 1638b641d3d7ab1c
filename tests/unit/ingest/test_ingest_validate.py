"""Validation: good Alpaca records become events, bad ones dead letters with a reason."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgpack
import pytest

from flinktrade.events import Bar, DeadLetter, NewsItem, Quote, Trade
from flinktrade.ingest import replay
from flinktrade.ingest.validate import Validator, to_epoch_ns

NOW_MS = 1_704_300_000_000  # 2024-01-03T16:40Z
GOOD_BAR = {"t": "2024-01-02T14:30:00Z", "o": 185.64, "h": 186.0, "l": 185.1, "c": 185.9,
            "v": 1200, "n": 33, "vw": 185.7}  # fmt: skip
GOOD_TRADE = {
    "t": "2024-01-02T14:30:00.123456789Z",
    "x": "V",
    "p": 185.64,
    "s": 100,
    "i": 52983525029461,
}


@pytest.fixture
def validator() -> Validator:
    return Validator(symbols={"AAPL", "MSFT"}, source="test", clock=lambda: NOW_MS)


def test_a_good_bar_keeps_exact_prices_and_its_time(validator: Validator) -> None:
    bar = validator.bar(GOOD_BAR, "AAPL")
    assert isinstance(bar, Bar)
    assert bar.ts == 1_704_205_800_000
    assert bar.open == Decimal("185.64") and bar.close == Decimal("185.9")
    assert (bar.volume, bar.trades, bar.vwap, bar.symbol) == (1200, 33, 185.7, "AAPL")


def test_a_good_trade_gets_a_deterministic_id_with_nanoseconds(validator: Validator) -> None:
    trade = validator.trade(GOOD_TRADE, "AAPL")
    assert isinstance(trade, Trade)
    assert trade.id == "AAPL:1704205800123456789:V:52983525029461"
    assert trade.ts == 1_704_205_800_123
    again = validator.trade(dict(GOOD_TRADE), "AAPL")
    assert isinstance(again, Trade) and again.id == trade.id  # the same id on every run


def test_stream_messages_with_msgpack_timestamps(validator: Validator) -> None:
    wire = msgpack.unpackb(
        msgpack.packb(
            {
                "T": "q",
                "S": "MSFT",
                "bp": 370.1,
                "bs": 2,
                "ap": 370.2,
                "as": 3,
                "bx": "V",
                "ax": "Q",
                "t": msgpack.Timestamp.from_unix_nano(1_704_205_800_500_000_000),
            }
        )
    )
    quote = validator.quote(wire)
    assert isinstance(quote, Quote)
    assert quote.ts == 1_704_205_800_500 and quote.symbol == "MSFT"
    assert quote.bid_price == Decimal("370.1")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"o": None}, "o: missing"),
        ({"c": float("nan")}, "c: price is NaN"),
        ({"l": -1.0}, "l: price -1.0 is not positive"),
        ({"h": 0}, "h: price 0 is not positive"),
        ({"h": 185.0}, "inconsistent bar"),
        ({"v": -5}, "v: size -5 is negative"),
        ({"t": "2024-01-04T16:40:00Z"}, "in the future"),
        ({"t": "yesterday"}, "t: not a time"),
    ],
)
def test_bad_bars_become_dead_letters_with_the_reason(
    validator: Validator, change: dict[str, object], reason: str
) -> None:
    sent = {k: v for k, v in {**GOOD_BAR, **change}.items() if v is not None}
    out = validator.bar(sent, "AAPL")
    assert isinstance(out, DeadLetter)
    assert reason in out.reason
    assert out.reason.startswith("test: ")
    assert out.source_topic == "market.bars"
    assert json.loads(out.payload)["t"] == sent["t"]  # the original record travels along


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"s": 0}, "s: size 0 is zero or negative"), ({"s": -3}, "zero or negative"),
     ({"p": "NaN"}, "p: price is NaN"), ({"i": None}, "i: missing")],
)  # fmt: skip
def test_bad_trades_become_dead_letters(
    validator: Validator, change: dict[str, object], reason: str
) -> None:
    out = validator.trade({**GOOD_TRADE, **change}, "AAPL")
    assert isinstance(out, DeadLetter)
    assert reason in out.reason
    assert out.source_topic == "market.trades"


def test_a_symbol_not_requested_is_refused(validator: Validator) -> None:
    out = validator.bar(GOOD_BAR, "ZZZZ")
    assert isinstance(out, DeadLetter)
    assert "unknown symbol 'ZZZZ'" in out.reason
    assert isinstance(Validator(symbols=None).bar(GOOD_BAR, "ZZZZ"), Bar)


def test_news_keeps_only_requested_symbols(validator: Validator) -> None:
    raw = {"id": 123, "headline": "AAPL beats", "created_at": "2024-01-02T15:00:00Z",
           "symbols": ["AAPL", "TSLA"], "summary": "s", "source": "benzinga", "url": "https://x"}  # fmt: skip
    item = validator.news(raw)
    assert isinstance(item, NewsItem)
    assert (item.id, item.symbols, item.ts) == ("alpaca:123", ["AAPL"], 1_704_207_600_000)
    out = validator.news({**raw, "symbols": ["TSLA"]})
    assert isinstance(out, DeadLetter) and "none of the requested symbols" in out.reason


@pytest.mark.parametrize(
    "value",
    ["2024-01-02T14:30:00Z", "2024-01-02 14:30:00", "2024-01-02T09:30:00-05:00", 1_704_205_800,
     1_704_205_800_000, 1_704_205_800_000_000, 1_704_205_800_000_000_000, "1704205800000"],
)  # fmt: skip
def test_times_in_every_accepted_form(value: object) -> None:
    assert to_epoch_ns(value) == 1_704_205_800_000_000_000


@pytest.mark.parametrize(
    ("price", "reason"),
    [
        (0.0000001, "below 0.000001"),  # the job's DECIMAL(18, 6) would round it to 0
        ("1E-400", "below 0.000001"),  # as a CSV cell reads it
        (1e-400, "not positive"),  # as a float it already is 0
        (12.0000001, "more than 6 decimals"),
        ("1000000000000", "above"),
        (float("inf"), "Infinity"),
        ("NaN", "NaN"),
    ],
)
def test_prices_the_job_cannot_hold_are_refused_as_the_models_refuse_them(
    validator: Validator, price: object, reason: str
) -> None:
    letter = validator.trade({**GOOD_TRADE, "p": price}, "AAPL")
    assert isinstance(letter, DeadLetter)
    assert letter.reason.startswith("test: p: ") and reason in letter.reason
    bar = validator.bar({**GOOD_BAR, "l": price}, "AAPL")
    assert isinstance(bar, DeadLetter) and "l: " in bar.reason


def test_prices_at_the_bounds_are_accepted(validator: Validator) -> None:
    for price in ("0.000001", "999999999999.999999", 0.000001, "12.500000"):
        trade = validator.trade({**GOOD_TRADE, "p": price}, "AAPL")
        assert isinstance(trade, Trade), price
        assert trade.price == Decimal(str(price))


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({**GOOD_TRADE, "S": "AAPL", "s": 10**12 + 1}, "s: size"),
        ({**GOOD_TRADE, "S": "AAPL", "s": 1e30}, "s: size"),
        ({**GOOD_TRADE, "S": "AA PL"}, "S: symbol"),
        ({**GOOD_TRADE, "S": "AAPL\x00"}, "S: symbol"),
        ({**GOOD_TRADE, "S": "A" * 10_000}, "S: symbol"),
    ],
)
def test_sizes_and_symbols_out_of_bounds_are_refused(
    record: dict[str, object], reason: str
) -> None:
    letter = Validator(source="test", clock=lambda: NOW_MS).trade(record)
    assert isinstance(letter, DeadLetter)
    assert reason in letter.reason
    assert len(letter.reason) < 200


def test_a_time_after_2100_is_refused_even_without_a_clock_bound() -> None:
    history = Validator(source="file", max_future_ms=2**62, clock=lambda: NOW_MS)
    letter = history.trade({**GOOD_TRADE, "t": "2100-01-01T00:00:00.001Z"}, "AAPL")
    assert isinstance(letter, DeadLetter) and "after 2100" in letter.reason
    assert isinstance(history.trade({**GOOD_TRADE, "t": "2099-12-31T23:59:59Z"}, "AAPL"), Trade)


def test_what_only_the_model_refuses_is_a_dead_letter_too(validator: Validator) -> None:
    """The validator never raises: a bound it does not check itself still ends as a dead letter."""
    letter = validator.bar(GOOD_BAR, "AAPL", interval_ms=0)
    assert isinstance(letter, DeadLetter) and "interval_ms" in letter.reason


def test_a_replayed_csv_bar_at_1e_minus_400_is_a_dead_letter(tmp_path: Path) -> None:
    """Reported: a CSV bar at ``1E-400`` passed validation and killed the job as a 0 price."""
    path = tmp_path / "bars.csv"
    path.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2024-01-02T14:30:00Z,AAPL,10,11,9,10.5,100\n"
        "2024-01-02T14:31:00Z,AAPL,10,11,1E-400,10.5,100\n"
        "2024-01-02T14:32:00Z,AAPL,10.5,11,10,10.75,100\n"
    )
    out = list(
        replay.events(replay.read_file(path), Validator(source="file", clock=lambda: NOW_MS))
    )
    assert [type(e).__name__ for e in out] == ["Bar", "DeadLetter", "Bar"]
    letter = out[1]
    assert isinstance(letter, DeadLetter)
    assert "l: price 1E-400 is below 0.000001" in letter.reason and "(row 3)" in letter.reason
