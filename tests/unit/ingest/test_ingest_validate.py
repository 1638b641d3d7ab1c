"""Validation: good Alpaca records become events, bad ones dead letters with a reason."""

from __future__ import annotations

import json
from decimal import Decimal

import msgpack
import pytest

from flinktrade.events import Bar, DeadLetter, NewsItem, Quote, Trade
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
