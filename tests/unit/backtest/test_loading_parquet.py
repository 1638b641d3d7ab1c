"""Parquet files on the column-wise path (``backtest.fastload``) against the reference, the row
path as it was before ``bars.make_bar`` (``ingest.replay.read_file`` + ``replay.events`` +
``Validator``, each bar built by the validated ``events.Bar``): the same bars and the same rejected
rows (reason, payload, order) for typed columns (datetimes, floats, integers, Decimals, text) with
ordinary and hostile values."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flinktrade import events
from flinktrade.backtest import fastload
from flinktrade.backtest.loading import load_file
from flinktrade.ingest import replay, validate
from flinktrade.ingest.validate import Validator

START = pd.Timestamp("2024-01-02T14:30:00Z")
MINUTE = pd.Timedelta(minutes=1)
GOOD: dict[str, Any] = {
    "symbol": "AAPL", "open": 10.5, "high": 11.0, "low": 10.0, "close": 10.75, "volume": 100,
    "vwap": 10.6, "trades": 3,
}  # fmt: skip


def _validated_bar(*args: Any, **optional: Any) -> events.Bar:
    names = ("symbol", "ts", "open", "high", "low", "close", "volume")
    return events.Bar(**dict(zip(names, args, strict=True)), **optional)


@pytest.fixture
def reference(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The row path with the validated construction of each bar (the code before the fast path)."""

    def rows(path: Path, symbol: str | None) -> tuple[list[events.Bar], list[events.DeadLetter]]:
        with monkeypatch.context() as patch:
            patch.setattr(validate, "make_bar", _validated_bar)
            read = replay.read_file(path, symbol=symbol)
            made = list(replay.events(read, _validator()))
        bars = [e for e in made if isinstance(e, events.Bar)]
        return bars, [e for e in made if isinstance(e, events.DeadLetter)]

    yield rows


def _validator() -> Validator:
    return Validator(source="file:bars.parquet", max_future_ms=2**62, clock=lambda: 1_700_000_000)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows with a time each (a minute apart unless given) into a frame; pandas infers each
    column's type from its values (ints and a NaN make floats). A column with a Decimal or text
    value holds Decimals or text throughout (as a Parquet column must)."""
    full = [{"time": START + i * MINUTE, **GOOD, **row} for i, row in enumerate(rows)]
    for name in full[0]:
        kinds = {type(r[name]) for r in full}
        if Decimal in kinds:
            for r in full:
                r[name] = r[name] if isinstance(r[name], Decimal) else Decimal(repr(r[name]))
        elif str in kinds and name != "symbol":
            for r in full:
                value = r[name]
                r[name] = value.isoformat() if isinstance(value, pd.Timestamp) else str(value)
    return pd.DataFrame(full)


def _assert_parity(
    reference: Any, tmp_path: Path, frame: pd.DataFrame, symbol: str | None = None
) -> list[events.DeadLetter]:
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    want_bars, want_rejected = reference(path, symbol)
    got = fastload.load_bars(path, symbol, _validator())
    assert got is not None, "the column-wise path declined a Parquet file of plain columns"
    bars, rejected = got
    assert len(bars) == len(want_bars)
    for g, w in zip(bars, want_bars, strict=True):
        assert g.model_dump(exclude={"ingest_ts"}) == w.model_dump(exclude={"ingest_ts"})
        assert [type(v) for v in g.__dict__.values()] == [type(v) for v in w.__dict__.values()]
        assert [str(v) for k, v in g.__dict__.items() if k != "ingest_ts"] == [
            str(v) for k, v in w.__dict__.items() if k != "ingest_ts"
        ]
        assert g.model_fields_set == w.model_fields_set
        wire = json.loads(events.encode(g)), json.loads(events.encode(w))
        assert [{k: v for k, v in e.items() if k != "ingest_ts"} for e in wire] == [
            {k: v for k, v in wire[1].items() if k != "ingest_ts"}
        ] * 2
    assert [(d.reason, d.payload, d.source_topic, d.ts) for d in rejected] == [
        (d.reason, d.payload, d.source_topic, d.ts) for d in want_rejected
    ]
    return rejected


D = Decimal
CASES: list[tuple[str, dict[str, Any]]] = [
    ("integral_prices", {"open": 10.0, "high": 11.0, "low": 10.0, "close": 11.0}),
    ("tiny_prices", {"open": 1e-6, "high": 1e-6, "low": 1e-6, "close": 1e-6}),
    ("below_tiny", {"low": 1e-7}),
    ("sum_of_floats", {"high": 0.1 + 0.2 + 11}),
    ("seven_decimals", {"high": 11.1234567}),
    ("six_decimals", {"high": 11.123456}),
    ("max_price", {"high": 999999999999.99}),
    ("huge_price", {"high": 1e13}),
    ("nan_price", {"high": math.nan}),
    ("inf_price", {"high": math.inf}),
    ("negative_price", {"low": -1.0}),
    ("zero_price", {"low": 0.0}),
    ("minus_zero_price", {"low": -0.0}),
    ("inconsistent", {"high": 10.6}),
    ("max_volume", {"volume": events.MAX_SIZE}),
    ("volume_over", {"volume": events.MAX_SIZE + 1}),
    ("negative_volume", {"volume": -5}),
    ("nan_volume", {"volume": math.nan}),
    ("whole_float_volume", {"volume": 100.0}),
    ("fraction_volume", {"volume": 1.5}),
    ("nan_vwap", {"vwap": math.nan}),
    ("inf_vwap", {"vwap": math.inf}),
    ("no_trades", {"trades": None}),
    ("negative_trades", {"trades": -1}),
    ("no_symbol", {"symbol": None}),
    ("lower_case_symbol", {"symbol": "msft"}),
    ("padded_symbol", {"symbol": "  MSFT "}),
    ("symbol_with_space", {"symbol": "BRK B"}),
    ("long_symbol", {"symbol": "A" * 17}),
    ("no_time", {"time": pd.NaT}),
    ("before_1970", {"time": pd.Timestamp("1969-12-31T23:59:00Z")}),
    ("out_of_order", {"time": START - 10 * MINUTE}),
    ("duplicate", {"time": START}),
    ("nanoseconds", {"time": START + pd.Timedelta(nanoseconds=123_456_789)}),
    ("decimal_prices", {"open": D("10.5"), "close": D("10.750")}),
    ("decimal_seven_places", {"close": D("10.7500001")}),
    ("text_prices", {"open": "10.5", "close": " 10.75 "}),
    ("text_not_a_number", {"close": "abc"}),
    ("int_prices", {"open": 10, "high": 12, "low": 10, "close": 11}),
    ("text_time", {"time": "2024-01-02T15:00:00Z"}),
]


@pytest.mark.parametrize(("name", "row"), CASES, ids=[name for name, _ in CASES])
def test_each_hostile_row_as_the_row_path_does(
    reference: Any, tmp_path: Path, name: str, row: dict[str, Any]
) -> None:
    frame = _frame([{}, row, {}, {}])
    _assert_parity(reference, tmp_path, frame, symbol="ZZZ" if name == "no_symbol" else None)


def test_all_hostile_rows_in_one_file_keep_the_row_paths_order(
    reference: Any, tmp_path: Path
) -> None:
    rows: list[dict[str, Any]] = []
    for name, row in CASES:
        if not name.startswith(("decimal", "text")):  # one type per column
            rows += [row, {}]
    rejected = _assert_parity(reference, tmp_path, _frame(rows), symbol="ZZZ")
    assert len(rejected) > 15  # the table is hostile


@pytest.mark.parametrize(
    "times",
    [
        pd.date_range("2024-01-02 14:30", periods=4, freq="min"),  # naive: UTC
        pd.date_range("2024-01-02 09:30", periods=4, freq="min", tz="America/New_York"),
        pd.date_range("2024-01-02", periods=4, freq="D", tz="UTC"),  # daily, at midnight
        pd.date_range("2024-01-02 14:30", periods=4, freq="min").astype("datetime64[ms]"),
        [1_704_205_800_000 + i * 60_000 for i in range(4)],  # epoch ms: the row path's rows
    ],
    ids=["naive", "new_york", "daily", "ms_unit", "epoch_ms"],
)
def test_time_columns_of_each_type_as_the_row_path_reads_them(
    reference: Any, tmp_path: Path, times: Any
) -> None:
    frame = _frame([{}, {}, {}, {}])
    frame["time"] = times
    _assert_parity(reference, tmp_path, frame)


def test_a_column_of_other_types_is_left_to_the_row_path(tmp_path: Path, reference: Any) -> None:
    frame = _frame([{}, {}, {}])
    frame["vwap"] = [True, False, True]
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    assert fastload.load_bars(path, None, _validator()) is None
    loaded = load_file(path)
    want_bars, want_rejected = reference(path, None)
    assert [b.model_dump(exclude={"ingest_ts"}) for b in loaded.bars] == [
        b.model_dump(exclude={"ingest_ts"}) for b in want_bars
    ]
    assert [d.reason for d in loaded.rejected] == [d.reason for d in want_rejected]


def test_load_file_reads_a_parquet_file_with_a_time_index_on_the_column_path(
    tmp_path: Path, reference: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _frame([{}, {"close": math.nan}, {}]).set_index("time")
    path = tmp_path / "AAPL.parquet"
    frame.to_parquet(path)
    column_path = []
    real = fastload.load_bars
    monkeypatch.setattr(
        fastload,
        "load_bars",
        lambda *a: column_path.append(1) or real(*a),  # type: ignore[func-returns-value]
    )
    loaded = load_file(path)
    assert column_path and len(loaded.bars) == 2
    assert [d.reason for d in loaded.rejected] == ["file:AAPL.parquet: c: missing (row 3)"]
