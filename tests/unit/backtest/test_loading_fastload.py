"""The column-wise bar loader (``backtest.fastload``) against the reference, the row validator
(``ingest.replay.read_file`` + ``replay.events`` + ``Validator``): the same bars and the same
rejected rows (reason, payload, order) for each hostile row, alone and all in one file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from backtesting.test import GOOG

from flinktrade import events
from flinktrade.backtest import fastload
from flinktrade.backtest.loading import load_file
from flinktrade.errors import ConfigError
from flinktrade.ingest import replay
from flinktrade.ingest.validate import Validator
from flinktrade.testing.hostile import BAD_NUMBERS, BAD_SIZES, BAD_SYMBOLS, BAD_TIMES

HEADER = "time,symbol,open,high,low,close,volume,vwap,trades"
GOOD = [
    "2024-01-02T14:30:00Z,AAPL,10.5,11,10,10.75,100,10.6,3",
    "2024-01-02T14:31:00Z,AAPL,10.75,12.000001,10.5,11.25,200,,",
    "2024-01-02T14:32:00Z,AAPL,11.25,11.5,11,11.5,0,11.3,0",
]
CELLS = HEADER.split(",")
TEMPLATE = ["2024-01-02T14:33:00Z", "AAPL", "11.5", "12", "11", "11.75", "300", "11.6", "4"]


def _row(**cells: str) -> str:
    values = dict(zip(CELLS, TEMPLATE, strict=True))
    values.update(cells)
    return ",".join(values[c] for c in CELLS)


CSV_CASES: list[tuple[str, str]] = [
    ("empty_open", _row(open="")),
    ("empty_time", _row(time="")),
    ("empty_symbol", _row(symbol="")),
    ("empty_volume", _row(volume="")),
    ("bad_date", _row(time="2024-02-30")),
    ("bad_hour", _row(time="2024-01-02T24:00:00Z")),
    ("not_a_date", _row(time="yesterday")),
    ("date_only", _row(time="2024-01-03")),
    ("space_and_minutes", _row(time="2024-01-02 14:34")),
    ("offset", _row(time="2024-01-02T20:04:00+05:30")),
    ("nanoseconds", _row(time="2024-01-02T14:33:00.123456789Z")),
    ("ten_fraction_digits", _row(time="2024-01-02T14:33:00.1234567891Z")),
    ("epoch_s", _row(time="1704205980")),
    ("epoch_ms", _row(time="1704205980000")),
    ("epoch_float", _row(time="1704205980.5")),
    ("year_2100", _row(time="2100-01-01T00:00:01Z")),
    ("year_1969", _row(time="1969-12-31T23:59:59Z")),
    ("epoch_zero", _row(time="1970-01-01T00:00:00Z")),
    ("1E-400", _row(low="1E-400")),
    ("7_decimals", _row(close="11.1234567")),
    ("7_decimals_in_range", _row(close="11.0000001")),
    ("6_decimals", _row(close="11.123456")),
    ("NaN", _row(high="NaN")),
    ("nan_lower", _row(open="nan")),
    ("inf", _row(high="inf")),
    ("exponent", _row(high="1.2E1")),
    ("leading_zeros", _row(open="0011.50")),
    ("trailing_dot", _row(open="11.")),
    ("leading_dot", _row(low=".5")),
    ("plus_sign", _row(open="+11.5")),
    ("thousands", _row(volume="1 000")),
    ("13_digits", _row(high="1000000000000")),
    ("max_price", _row(high="999999999999.999999")),
    ("high_below_open", _row(high="11.4")),
    ("low_above_close", _row(low="11.8")),
    ("volume_fraction", _row(volume="1.5")),
    ("volume_whole_float", _row(volume="300.0")),
    ("volume_max", _row(volume="1000000000000")),
    ("volume_over", _row(volume="1000000000001")),
    ("vwap_text", _row(vwap="abc")),
    ("vwap_inf", _row(vwap="inf")),
    ("vwap_exponent", _row(vwap="1.16e1")),
    ("trades_fraction", _row(trades="1.5")),
    ("trades_negative", _row(trades="-1")),
    ("lower_case_symbol", _row(symbol="aapl")),
    ("padded_symbol", _row(symbol="  MSFT ")),
    ("symbol_with_space", _row(symbol="BRK B")),
    ("duplicate", GOOD[1]),
    ("out_of_order", _row(time="2024-01-02T14:00:00Z")),
    ("short_row", "2024-01-02T14:33:00Z,AAPL,11.5,12"),
    ("quoted", '"2024-01-02T14:33:00Z","AAPL","11.5","12","11","11.75","300","",""'),
]
CSV_CASES += [(f"price_{name}", _row(open=text)) for name, text in BAD_NUMBERS]
CSV_CASES += [(f"volume_{name}", _row(volume=text)) for name, text in BAD_SIZES]
CSV_CASES += [(f"trades_{name}", _row(trades=text)) for name, text in BAD_SIZES]
CSV_CASES += [(f"time_{name}", _row(time=text)) for name, text in BAD_TIMES]
CSV_CASES += [
    (f"symbol_{name}", _row(symbol=raw.decode("utf-8", "replace").strip('"')))
    for name, raw in BAD_SYMBOLS
    if b"," not in raw
]


def _validator() -> Validator:
    return Validator(source="file:bars.csv", max_future_ms=2**62, clock=lambda: 1_700_000_000_000)


def _reference(path: Path, symbol: str | None) -> tuple[list[events.Bar], list[events.DeadLetter]]:
    read = replay.read_file(path, symbol=symbol)
    bars: list[events.Bar] = []
    rejected: list[events.DeadLetter] = []
    for event in replay.events(read, _validator()):
        if isinstance(event, events.Bar):
            bars.append(event)
        elif isinstance(event, events.DeadLetter):
            rejected.append(event)
    return bars, rejected


def _dumps(bars: list[events.Bar]) -> list[dict[str, object]]:
    """The bars' fields but ``ingest_ts`` (the wall clock when each was built)."""
    assert all(isinstance(b.model_dump()["ingest_ts"], int) for b in bars)
    return [b.model_dump(exclude={"ingest_ts"}) for b in bars]


def _wire(bars: list[events.Bar]) -> list[dict[str, object]]:
    return [
        {k: v for k, v in json.loads(b.model_dump_json()).items() if k != "ingest_ts"} for b in bars
    ]


def _assert_parity(path: Path, symbol: str | None = None) -> None:
    expected = _reference(path, symbol)
    got = fastload.load_bars(path, symbol, _validator())
    assert got is not None, "the column-wise path declined a CSV with a header"
    bars, rejected = got
    assert _dumps(bars) == _dumps(expected[0])
    assert _wire(bars) == _wire(expected[0])
    assert [(d.reason, d.payload, d.source_topic, d.ts) for d in rejected] == [
        (d.reason, d.payload, d.source_topic, d.ts) for d in expected[1]
    ]


@pytest.mark.parametrize(("name", "line"), CSV_CASES, ids=[name for name, _ in CSV_CASES])
def test_each_hostile_row_as_the_row_validator_does(tmp_path: Path, name: str, line: str) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("\n".join([HEADER, GOOD[0], line, *GOOD[1:]]) + "\n", encoding="utf-8")
    _assert_parity(path)


def test_all_hostile_rows_in_one_file_keep_the_row_validators_order(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    lines = [HEADER, *GOOD]
    for i, (_name, line) in enumerate(CSV_CASES):
        lines.append(line)
        lines.append(GOOD[i % len(GOOD)])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _assert_parity(path)
    _bars, rejected = _reference(path, None)
    assert len(rejected) > 40  # the table is hostile: most rows are refused


def test_a_file_without_a_symbol_column_takes_the_given_symbol(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    rows = [",".join(c for k, c in zip(CELLS, r.split(","), strict=True) if k != "symbol")
            for r in [*GOOD, _row(close="NaN")]]  # fmt: skip
    header = HEADER.replace(",symbol", "")
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    _assert_parity(path, symbol="goog")


def test_the_goog_file_as_written_by_pandas(tmp_path: Path) -> None:
    path = tmp_path / "goog.csv"
    GOOG.to_csv(path, index_label="Date")
    _assert_parity(path, symbol="GOOG")
    bars, rejected = _reference(path, "GOOG")
    assert len(bars) == len(GOOG) and not rejected


def test_load_file_gives_the_row_paths_bars_and_declines_what_it_does_not_handle(
    tmp_path: Path,
) -> None:
    path = tmp_path / "AAPL.csv"
    path.write_text("\n".join([HEADER, *GOOD, _row(open="")]) + "\n", encoding="utf-8")
    loaded = load_file(path)
    expected = _reference(path, "AAPL")
    assert _dumps(loaded.bars) == _dumps(expected[0])
    assert [d.reason for d in loaded.rejected] == [
        d.reason.replace("bars.csv", "AAPL.csv") for d in expected[1]
    ]
    headerless = tmp_path / "plain.csv"
    headerless.write_text("\n".join(GOOD) + "\n", encoding="utf-8")
    assert fastload.load_bars(headerless, None, _validator()) is None
    assert len(load_file(headerless).bars) == 3


def test_a_file_pandas_cannot_parse_is_left_to_the_row_path(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("\n".join([HEADER, GOOD[0], _row() + ",extra"]) + "\n", encoding="utf-8")
    assert fastload.load_bars(path, None, _validator()) is None
    with pytest.raises(ConfigError, match="cannot read it"):
        load_file(path)


def test_bars_further_apart_than_the_longest_interval_as_the_row_validator_does(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bars.csv"
    far = _row(time="2026-06-01T14:33:00Z")
    path.write_text("\n".join([HEADER, GOOD[0], far]) + "\n", encoding="utf-8")
    _assert_parity(path)
    assert len(_reference(path, None)[1]) == 2  # the row validator refuses both
