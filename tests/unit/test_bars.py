"""``bars.make_bar`` gives what the validated ``events.Bar`` construction gives, and so do the
inputs built with it (the ingest validator's records: Alpaca history, rows of files; the simulated
market). Parquet and CSV files on the column-wise path: ``tests/unit/backtest/test_loading_*``.

Every expectation is computed by the validated construction, never written down: ``make_bar``
against ``events.Bar(**the same keywords)``; each input kind against itself with ``make_bar``
replaced by that validated construction (what it did before ``make_bar``): the same bars (fields,
field order, given fields, encoding) and the same refusals or dead letters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from flinktrade import bars, events
from flinktrade.backtest import simulated
from flinktrade.ingest import validate
from flinktrade.ingest.validate import Validator

START = 1_704_205_800_000
ARGS: dict[str, Any] = {
    "symbol": "AAPL", "ts": START, "open": Decimal("101.25"), "high": Decimal("101.5"),
    "low": Decimal("101"), "close": Decimal("101.3"), "volume": 1_200,
}  # fmt: skip
OPTIONAL: dict[str, Any] = {"vwap": 101.2, "trades": 15, "interval_ms": 300_000, "ingest_ts": 7}


def validated_bar(
    symbol: Any, ts: Any, open: Any, high: Any, low: Any, close: Any, volume: Any, **optional: Any
) -> events.Bar:
    """The rule of record, with ``make_bar``'s signature: the keyword construction."""
    return events.Bar(
        symbol=symbol, ts=ts, open=open, high=high, low=low, close=close, volume=volume, **optional
    )


def pinned(bar: events.Bar) -> events.Bar:
    """``bar`` with ``ingest_ts`` (the wall clock when not given) set to 0, to compare two runs."""
    object.__setattr__(bar, "ingest_ts", 0)
    return bar


def assert_same_bar(got: events.Bar, want: events.Bar) -> None:
    assert type(got) is type(want)
    assert got == want
    assert list(got.__dict__) == list(want.__dict__)
    assert [type(v) for v in got.__dict__.values()] == [type(v) for v in want.__dict__.values()]
    assert [str(v) for v in got.__dict__.values()] == [str(v) for v in want.__dict__.values()]
    assert got.model_fields_set == want.model_fields_set
    assert got.__pydantic_extra__ == want.__pydantic_extra__
    assert got.__pydantic_private__ == want.__pydantic_private__
    assert events.encode(got) == events.encode(want)
    assert repr(got) == repr(want)


def assert_same_outcome(**kwargs: Any) -> None:
    """``make_bar`` and the validated construction agree: the same bar or the same errors."""
    args = {**ARGS, **kwargs}
    try:
        want = validated_bar(**args)
    except pydantic.ValidationError as refusal:
        with pytest.raises(pydantic.ValidationError) as caught:
            bars.make_bar(**args)
        # by repr: a NaN input is never equal to itself
        errors = caught.value.errors(include_context=False)
        assert repr(errors) == repr(refusal.errors(include_context=False))
        assert str(caught.value) == str(refusal)
        return
    got = bars.make_bar(**args)
    if "ingest_ts" not in args:
        assert want.ingest_ts <= got.ingest_ts <= events.now_ms()
        got, want = pinned(got), pinned(want)
    assert_same_bar(got, want)


@pytest.mark.parametrize("given", range(16))
def test_each_set_of_optional_arguments_gives_the_validated_bar(given: int) -> None:
    """The fields a keyword construction marks as given follow the arguments given."""
    optional = {k: v for i, (k, v) in enumerate(OPTIONAL.items()) if given >> i & 1}
    assert_same_outcome(**optional)


D = Decimal
PRICES = [
    D("100"), D("100.000000"), D("1E+2"), D("0.000001"), D("0.0000001"), D("1E-7"),
    D("999999999999.999999"), D("1000000000000"), D("123.456789"), D("1.0000005"), D("0"),
    D("-0"), D("-1"), D("NaN"), D("sNaN"), D("Infinity"), D("-Infinity"), 100, 100.0, 1e-6,
    math.nan, math.inf, "100.5", None, True,
]  # fmt: skip


@pytest.mark.parametrize("price", PRICES, ids=repr)
@pytest.mark.parametrize("field", ["open", "high", "low", "close"])
def test_ordinary_and_hostile_prices_give_the_validated_outcome(price: Any, field: str) -> None:
    assert_same_outcome(**{field: price})
    assert_same_outcome(open=price, high=price, low=price, close=price)


def test_prices_known_valid_skip_their_check_and_the_others_are_still_checked() -> None:
    assert_same_bar(
        bars.make_bar(**ARGS, ingest_ts=7, prices_checked=True),
        validated_bar(**ARGS, ingest_ts=7),
    )
    with pytest.raises(pydantic.ValidationError):  # not said to be checked: checked, and refused
        bars.make_bar(**{**ARGS, "low": D("100.0000001")}, ingest_ts=7)


class _Dec(Decimal):
    """A Decimal subclass: not a plain value, so the validated path judges it."""


def test_a_decimal_subclass_goes_through_the_validated_construction() -> None:
    assert_same_outcome(open=_Dec("101.25"))


SIZES = [0, 1, events.MAX_SIZE, events.MAX_SIZE + 1, 2**70, -1, 1.0, 1.5, True, "5", None]


@pytest.mark.parametrize("size", SIZES, ids=repr)
def test_volumes_and_trade_counts_give_the_validated_outcome(size: Any) -> None:
    assert_same_outcome(volume=size)
    assert_same_outcome(trades=size)


@pytest.mark.parametrize(
    "ts", [0, -1, START, events.MAX_TS_MS, events.MAX_TS_MS + 1, 1.5, float(START), True, "1"]
)
def test_times_give_the_validated_outcome(ts: Any) -> None:
    assert_same_outcome(ts=ts)
    assert_same_outcome(ingest_ts=ts)


@pytest.mark.parametrize("symbol", ["A", "A" * 16, "A" * 17, "", "A B", "É", "a\n", "BRK.B", 5])
def test_symbols_give_the_validated_outcome(symbol: Any) -> None:
    assert_same_outcome(symbol=symbol)
    assert_same_outcome(symbol=symbol)  # the second time from the memo of symbols


@pytest.mark.parametrize(
    "value", [None, 101.2, 0.0, -1.0, math.nan, math.inf, 101, D("101.2"), "101.2", True]
)
def test_vwaps_give_the_validated_outcome(value: Any) -> None:
    assert_same_outcome(vwap=value)


@pytest.mark.parametrize(
    "interval", [1, 60_000, events.MAX_INTERVAL_MS, events.MAX_INTERVAL_MS + 1, 0, -1, 60_000.0]
)
def test_intervals_give_the_validated_outcome(interval: Any) -> None:
    assert_same_outcome(interval_ms=interval)


@pytest.mark.parametrize(
    "ohlc",
    [
        ("10", "10", "10", "10"),
        ("10", "9.99", "9", "9.5"),  # open above high
        ("10", "11", "10.01", "10.5"),  # low above open
        ("10", "11", "9", "11.01"),  # close above high
        ("10", "11", "9", "8.99"),  # close below low
        ("10", "9", "11", "10"),  # high below low
    ],
)
def test_inconsistent_bars_give_the_validated_outcome(ohlc: tuple[str, ...]) -> None:
    o, h, lo, c = map(Decimal, ohlc)
    assert_same_outcome(open=o, high=h, low=lo, close=c)


# ---------------------------------------------------------------- each input kind


@pytest.fixture
def as_before(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Calling it makes the inputs build their bars with the validated construction."""

    def use_validated() -> None:
        for module in (validate, simulated):
            monkeypatch.setattr(module, "make_bar", validated_bar)

    yield use_validated


def _outcomes(results: list[events.Bar | events.DeadLetter]) -> list[Any]:
    """Bars (ingest time pinned) and dead letters (their time of refusal left out)."""
    out: list[Any] = []
    for item in results:
        if isinstance(item, events.DeadLetter):
            out.append((item.source_topic, item.reason, item.payload))
        else:
            out.append(pinned(item))
    return out


def _assert_same(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if isinstance(w, events.Bar):
            assert isinstance(g, events.Bar)
            assert_same_bar(g, w)
        else:
            assert g == w


GOOD_RAW: dict[str, Any] = {
    "t": "2024-01-02T14:30:00Z", "S": "AAPL", "o": 101.25, "h": 101.5, "l": 101.0, "c": 101.3,
    "v": 1_200, "vw": 101.2, "n": 15,
}  # fmt: skip
"""One bar as Alpaca's REST answer gives it (JSON numbers)."""
RAW_CASES: list[dict[str, Any]] = [
    GOOD_RAW,
    {**GOOD_RAW, "o": 101, "h": 102, "l": 100, "c": 101},  # integral prices (JSON integers)
    {**GOOD_RAW, "o": 1e-6, "h": 1e-6, "l": 1e-6, "c": 1e-6},  # the smallest price
    {**GOOD_RAW, "o": 1e-7, "h": 1e-7, "l": 1e-7, "c": 1e-7},  # below it
    {**GOOD_RAW, "v": events.MAX_SIZE, "n": events.MAX_SIZE},  # the largest volume
    {**GOOD_RAW, "v": events.MAX_SIZE + 1},
    {**GOOD_RAW, "v": 2**70},
    {**GOOD_RAW, "v": 1.0e3},  # a whole float volume
    {**GOOD_RAW, "h": math.nan},
    {**GOOD_RAW, "h": math.inf},
    {**GOOD_RAW, "l": -1.0},
    {**GOOD_RAW, "c": "101.3"},  # a price as text
    {**GOOD_RAW, "o": True},
    {**GOOD_RAW, "vw": math.nan, "n": None},  # no VWAP, no count
    {**GOOD_RAW, "vw": math.inf},
    {**GOOD_RAW, "S": " aapl "},  # trimmed, upper-cased
    {**GOOD_RAW, "S": "AAPL B"},
    {**GOOD_RAW, "h": 101.0},  # inconsistent
    {**GOOD_RAW, "t": 1_704_205_800},  # epoch seconds
    {**GOOD_RAW, "t": "2024-01-02T14:30:00.123456789Z"},
    {**GOOD_RAW, "t": "1969-12-31T23:59:59Z"},
]


@pytest.mark.parametrize("interval", [60_000, events.MAX_INTERVAL_MS + 1])
def test_validator_records_give_the_bars_and_dead_letters_of_before(
    as_before: Callable[[], None], interval: int
) -> None:
    """Alpaca's history (``run_history``) and replayed files go through ``Validator.bar``; an
    interval above a year is refused by ``events.Bar`` alone (the validated path's reason)."""
    validator = Validator(source="alpaca-rest", max_future_ms=2**62)
    got = _outcomes([validator.bar(raw, interval_ms=interval) for raw in RAW_CASES])
    as_before()
    want = _outcomes([validator.bar(raw, interval_ms=interval) for raw in RAW_CASES])
    kept = [isinstance(o, events.Bar) for o in want]
    assert (any(kept) and not all(kept)) if interval == 60_000 else not any(kept)
    _assert_same(got, want)


def test_the_simulated_market_gives_the_bars_of_before(as_before: Callable[[], None]) -> None:
    got, news = simulated.simulated_market(4, 60)
    as_before()
    want, news_before = simulated.simulated_market(4, 60)
    assert len(got) == 4 * 60 and news == news_before
    _assert_same(got, want)
