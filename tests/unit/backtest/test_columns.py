"""``backtest.columns.bars_of`` gives what the validated ``events.Bar`` construction gives, and
``BarColumns.items`` the engine's items of those bars.

Every expectation is computed by the validated construction (``events.Bar(...)`` on the same row,
prices as ``Decimal(repr(x))``), never written down: for ordinary rows the same bar (fields, field
order, given fields, wire encoding) and the same item (``bar_item`` of that bar), for hostile rows
the same refusal (the same errors).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np
import pydantic
import pytest

from flinktrade import events
from flinktrade.backtest.columns import BarColumns, bar_item, bars_of
from flinktrade.backtest.inprocess import _WirePrices

START = 1_704_205_800_000
GOOD = (START, 101.25, 101.5, 101.0, 101.3, 1_200)
"""One valid row: ts, open, high, low, close, volume."""


def validated(symbol: Any, row: tuple[Any, ...], ingest_ts: Any = 0) -> events.Bar:
    """The rule of record: the validated construction of one row."""
    ts, o, h, lo, c, v = row

    def price(x: Any) -> Any:
        return Decimal(repr(x)) if type(x) is float else x

    return events.Bar(
        symbol=symbol, ts=ts, open=price(o), high=price(h), low=price(lo), close=price(c),
        volume=v, ingest_ts=ingest_ts,
    )  # fmt: skip


def fast(symbol: Any, rows: list[tuple[Any, ...]], ingest_ts: Any = 0) -> list[events.Bar]:
    columns = list(zip(*rows, strict=True)) if rows else [()] * 6
    return list(bars_of(symbol, *columns, ingest_ts=ingest_ts))


def assert_same_bar(got: events.Bar, want: events.Bar) -> None:
    assert type(got) is type(want)
    assert got == want
    assert list(got.__dict__) == list(want.__dict__)
    assert {k: type(v) for k, v in got.__dict__.items()} == {
        k: type(v) for k, v in want.__dict__.items()
    }
    assert got.model_fields_set == want.model_fields_set
    assert got.__pydantic_extra__ == want.__pydantic_extra__
    assert got.__pydantic_private__ == want.__pydantic_private__
    assert events.encode(got) == events.encode(want)
    assert hash(got.id) == hash(want.id) and repr(got) == repr(want)


def items(symbol: Any, rows: list[tuple[Any, ...]], start: int = 0, end: int = 2**63) -> list[Any]:
    columns = list(zip(*rows, strict=True)) if rows else [()] * 6
    return BarColumns.of(symbol, *columns).items(_WirePrices(), start, end)


def assert_same_items(got: list[Any], want: list[events.Bar]) -> None:
    """``got`` are the engine's items of the bars ``want`` (Decimals to their digits)."""
    expected = [bar_item(bar, _WirePrices()) for bar in want]
    assert got == expected and repr(got) == repr(expected)
    assert [[type(v) for v in item] for item in got] == [
        [type(v) for v in item] for item in expected
    ]


def assert_same_outcome(symbol: Any, row: tuple[Any, ...], ingest_ts: Any = 0) -> None:
    """The fast path's bar equals the validated one, or both refuse with the same errors; the
    same for ``BarColumns.items`` (whose rows have no ingest time: 0)."""
    try:
        want = validated(symbol, row, ingest_ts)
    except pydantic.ValidationError as refusal:
        with pytest.raises(pydantic.ValidationError) as caught:
            fast(symbol, [row], ingest_ts)
        # by repr: a NaN input is never equal to itself
        got, want = caught.value, refusal
        assert repr(got.errors(include_context=False)) == repr(want.errors(include_context=False))
        assert str(got) == str(want)
        if ingest_ts == 0:
            with pytest.raises(pydantic.ValidationError) as caught:
                items(symbol, [row])
            assert str(caught.value) == str(refusal)
        return
    [got] = fast(symbol, [row], ingest_ts)
    assert_same_bar(got, want)
    assert_same_items(items(symbol, [row]), [want])


def test_generated_columns_give_the_validated_bars() -> None:
    rng = np.random.default_rng(3)
    n = 3_000
    close = np.round(20 + np.cumsum(rng.normal(0, 0.05, n)).clip(-19, None), 2)
    open_ = np.round(close * (1 + rng.normal(0, 0.001, n)), 2)
    high = np.round(np.maximum(open_, close) + rng.random(n) * 0.05, 2)
    low = np.round(np.minimum(open_, close) - rng.random(n) * 0.05, 2)
    ts = START + np.arange(n, dtype=np.int64) * 60_000
    volume = rng.integers(0, 10_000, n)
    got = list(bars_of("ABC", ts, open_, high, low, close, volume, ingest_ts=7))
    rows = zip(ts.tolist(), open_.tolist(), high.tolist(), low.tolist(), close.tolist(),
               volume.tolist(), strict=True)  # fmt: skip
    want = [validated("ABC", row, 7) for row in rows]
    assert len(got) == n
    for g, w in zip(got, want, strict=True):
        assert_same_bar(g, w)
    made = BarColumns.of("ABC", ts, open_, high, low, close, volume)
    assert len(made) == n
    assert_same_items(made.items(_WirePrices(), 0, 2**63), want)
    # a window: the rows that start in it
    lo, hi = START + 100 * 60_000, START + 2_000 * 60_000
    assert_same_items(made.items(_WirePrices(), lo, hi), [b for b in want if lo <= b.ts < hi])


HOSTILE_PRICES = [
    0.0, -0.0, -1.0, 1e-6, 1e-7, 9e-7, 1.0000005, 0.1234567, 123.456789, 1e12, 999999999999.99,
    1e13, 1e300, math.inf, -math.inf, math.nan, 5e-324, 0.1 + 0.2, 100, Decimal("1.5"), "1.5",
    None, True, Decimal("sNaN"), Decimal("NaN"), Decimal("1E+400"), Decimal("0.0000001"),
]  # fmt: skip


@pytest.mark.parametrize("price", HOSTILE_PRICES, ids=repr)
@pytest.mark.parametrize("column", [1, 2, 3, 4], ids=["open", "high", "low", "close"])
def test_a_hostile_price_gives_the_validated_outcome(price: Any, column: int) -> None:
    row = list(GOOD)
    row[column] = price
    assert_same_outcome("ABC", tuple(row))
    # the same price in every column (consistent bars for the valid ones)
    assert_same_outcome("ABC", (GOOD[0], price, price, price, price, GOOD[5]))


@pytest.mark.parametrize(
    "ts", [0, -1, events.MAX_TS_MS, events.MAX_TS_MS + 1, 1.5, float(START), True, "1", None]
)
def test_a_hostile_time_gives_the_validated_outcome(ts: Any) -> None:
    assert_same_outcome("ABC", (ts, *GOOD[1:]))


@pytest.mark.parametrize(
    "volume", [0, -1, events.MAX_SIZE, events.MAX_SIZE + 1, 1.0, True, "5", None, 2**70]
)
def test_a_hostile_volume_gives_the_validated_outcome(volume: Any) -> None:
    assert_same_outcome("ABC", (*GOOD[:5], volume))


@pytest.mark.parametrize(
    "symbol", ["", "A" * 16, "A" * 17, "A B", "É", "a\n", "BRK.B", 5, None, b"ABC"]
)
def test_a_hostile_symbol_gives_the_validated_outcome(symbol: Any) -> None:
    assert_same_outcome(symbol, GOOD)


@pytest.mark.parametrize("ingest_ts", [0, -1, events.MAX_TS_MS + 1, 1.0, True, None])
def test_a_hostile_ingest_time_gives_the_validated_outcome(ingest_ts: Any) -> None:
    assert_same_outcome("ABC", GOOD, ingest_ts)


@pytest.mark.parametrize(
    "ohlc",
    [
        (10.0, 10.0, 10.0, 10.0),
        (10.0, 9.99, 9.0, 9.5),  # open above high
        (10.0, 11.0, 10.01, 10.5),  # low above open
        (10.0, 11.0, 9.0, 11.01),  # close above high
        (10.0, 11.0, 9.0, 8.99),  # close below low
        (10.0, 9.0, 11.0, 10.0),  # high below low
    ],
)
def test_inconsistent_bars_give_the_validated_outcome(ohlc: tuple[float, ...]) -> None:
    assert_same_outcome("ABC", (GOOD[0], *ohlc, GOOD[5]))


def test_a_refused_row_raises_when_reached_after_the_rows_before_it() -> None:
    bad = (START + 60_000, 10.0, 9.0, 9.5, 9.5, 1)  # open above high
    made = bars_of("ABC", *zip(GOOD, bad, GOOD, strict=True), ingest_ts=0)
    assert_same_bar(next(made), validated("ABC", GOOD))
    with pytest.raises(pydantic.ValidationError):
        next(made)
    # the engine's items: refused too, also when the row starts outside the window asked for
    with pytest.raises(pydantic.ValidationError):
        items("ABC", [GOOD, bad, GOOD], start=START, end=START + 1)


def test_a_price_seen_again_after_a_refusal_is_still_refused() -> None:
    """The memo of prices keeps refusals as refusals (and NaN, never equal to itself, aside)."""
    rows = [(START + i * 60_000, p, p, p, p, 1) for i, p in enumerate([1e-7, 1.5, math.nan])]
    for row in rows + rows:
        assert_same_outcome("ABC", row)


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        list(bars_of("ABC", [START], [1.0], [1.0], [1.0], [1.0], [], ingest_ts=0))
    with pytest.raises(ValueError, match="differ in length"):
        BarColumns.of("ABC", [START], [1.0], [1.0], [1.0], [1.0], [])


def test_numpy_and_list_columns_give_the_same_bars() -> None:
    rows = [(START + i * 60_000, 10.5, 10.75, 10.25, 10.5 + i / 100, 100 + i) for i in range(5)]
    lists = fast("ABC", rows)
    arrays = list(bars_of("ABC", *(np.array(c) for c in zip(*rows, strict=True)), ingest_ts=0))
    for a, b in zip(arrays, lists, strict=True):
        assert_same_bar(a, b)
    for g, row in zip(lists, rows, strict=True):
        assert_same_bar(g, validated("ABC", row))
    columns = (np.array(c) for c in zip(*rows, strict=True))
    assert_same_items(BarColumns.of("ABC", *columns).items(_WirePrices(), 0, 2**63), lists)


@pytest.mark.parametrize("other", [100, Decimal("100"), Decimal("100.00"), "100.0", True, 1.0])
def test_a_column_mixing_floats_with_equal_other_values_gives_the_validated_bars(
    other: Any,
) -> None:
    """``100 == 100.0`` (and their hashes): a memo of float prices must not answer for the int."""
    rows = [(START + i * 60_000, p, 101.0, 1.0, 100.0, 1) for i, p in enumerate([100.0, other])]
    rows += [(START + 120_000, 100.0, 101.0, 1.0, other, 1)]
    for row in rows:
        assert_same_outcome("ABC", row)
    want = []
    for row in rows:
        try:
            want.append(validated("ABC", row))
        except pydantic.ValidationError:
            want.append(None)
    got: list[events.Bar | None] = []
    made = bars_of("ABC", *zip(*rows, strict=True), ingest_ts=0)
    for _ in rows:
        try:
            got.append(next(made))
        except pydantic.ValidationError:
            got.append(None)
            break  # a generator that raised is finished
    for g, w in zip(got, want, strict=False):
        if w is None:
            assert g is None
        else:
            assert g is not None
            assert_same_bar(g, w)
    if None in want:
        with pytest.raises(pydantic.ValidationError):
            items("ABC", rows)
    else:
        assert_same_items(items("ABC", rows), [w for w in want if w is not None])


def _analytics_series() -> list[events.AnalyticsBar]:
    """Bars as the model makes them (alerts on, a strategy), with news for sentiment values."""
    from flinktrade.config import AnalyticsSettings
    from flinktrade.pipeline.analytics import ScoredNews, StrategySpec, SymbolModel, closed_bar

    model = SymbolModel([StrategySpec("sma_cross", {"fast": 3, "slow": 8})], AnalyticsSettings())
    state = model.initial_state()
    out = []
    for i in range(60):
        if i == 30:
            model.on_news(state, ScoredNews("n1", "ABC", START + i * 60_000, 0.5, "up"))
        price = Decimal(f"{100 + (i * 7 % 11) / 4:.2f}")
        bar = closed_bar("ABC", START + i * 60_000, price, price + 1, price - 1, price, 100 + i,
                         None, 0, 60_000)  # fmt: skip
        out.append(model.on_bar(state, bar)[0])
    return out


def assert_same_models(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert type(g) is type(w) and g == w
        assert list(g.__dict__) == list(w.__dict__)
        assert list(g.indicators) == list(w.indicators)
        assert g.__pydantic_fields_set__ == w.__pydantic_fields_set__
        assert g.__pydantic_extra__ == w.__pydantic_extra__
        assert g.__pydantic_private__ == w.__pydantic_private__
        assert events.encode(g) == events.encode(w) and repr(g) == repr(w)


def test_bars_with_indicators_travel_as_columns_and_come_back_the_same() -> None:
    import pickle

    from flinktrade.backtest.columns import pack_bars, unpack_bars

    series = _analytics_series()
    packed = pack_bars(series)
    assert packed[0] == "columns"
    back = unpack_bars(pickle.loads(pickle.dumps(packed, pickle.HIGHEST_PROTOCOL)))
    assert_same_models(back, series)
    assert back[0].__pydantic_fields_set__ is not back[1].__pydantic_fields_set__
    assert unpack_bars(pack_bars([])) == []


def test_a_series_of_mixed_shapes_travels_as_it_is() -> None:
    from flinktrade.backtest.columns import pack_bars, unpack_bars

    series = _analytics_series()
    validated = events.AnalyticsBar(**series[5].__dict__)
    fewer = series[6].model_copy(update={"indicators": {"sma_20": 1.0}})
    for odd in (validated, fewer):
        mixed = [*series[:5], odd, *series[7:]]
        packed = pack_bars(mixed)
        if odd.__pydantic_fields_set__ != series[0].__pydantic_fields_set__ or odd is fewer:
            assert packed[0] == "bars"
        assert_same_models(unpack_bars(packed), mixed)
