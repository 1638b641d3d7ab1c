"""The column-wise path for a backtest's bar file: the same bars and rejected rows as
``ingest.replay`` + ``ingest.validate.Validator`` row by row, at a fraction of the cost.

It takes CSV files with a header row and Parquet files. Each column is checked with vectorised
pandas operations against strict, plain shapes (ISO dates and times, prices of at most 12 integer
digits and 6 decimals, whole sizes of at most 12 digits, symbols checked once per distinct
value with the validator's own rule); OHLC consistency is compared in exact integer micro-units.
A Parquet column is first turned into the text those checks read (``_parquet_text``: times as
ISO text in UTC, floats as their repr, which the row path reads as ``Decimal(repr(x))``).
A row that is not plainly valid is handed to the row validator itself, as the row path reads it
(``replay.raw_record``), so every rejected row gets the row path's reason; anything this path
does not handle (no header, a Parquet column of other types, trades, a missing column) is
declined with ``None``: the caller then uses the row path for the whole file. Bars are built by
``bars.make_bar``. Output order is the row path's: rows whose time cannot be read first, then all
rows by (time, row).
"""

from __future__ import annotations

import csv
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from flinktrade import events, topics
from flinktrade.bars import make_bar
from flinktrade.ingest.replay import (
    bar_interval,
    column_map,
    detect_kind,
    looks_like_header,
    raw_record,
    sniff_delimiter,
)
from flinktrade.ingest.validate import Invalid, Validator, to_epoch_ns

_ISO = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
_PRICE = r"[0-9]{1,12}(?:\.[0-9]{1,6})?"
_WHOLE = r"[0-9]{1,12}"
_PRICES = ("o", "h", "l", "c")
_PARQUET = (".parquet", ".pq")


def load_bars(
    path: Path, symbol: str | None, validator: Validator
) -> tuple[list[events.Bar], list[events.DeadLetter]] | None:
    """The file's bars and rejected rows, or ``None`` when this path does not handle the file."""
    frame = _read(path)
    if frame is None:
        return None
    columns = column_map([str(c) for c in frame.columns])
    if detect_kind(columns) != "bars" or "t" not in columns or "v" not in columns:
        return None
    if "S" not in columns and symbol is None:
        return None
    parquet = path.suffix.lower() in _PARQUET
    cells: dict[str, pd.Series] = {}
    for ours, col in columns.items():
        text = _parquet_text(frame[col]) if parquet else _csv_text(frame[col])
        if text is None:
            return None
        cells[ours] = text
    return _validated(frame, columns, cells, symbol, validator)


def _read(path: Path) -> pd.DataFrame | None:
    """The frame ``replay.read_file`` reads, when the file is a CSV with a header or a Parquet
    file with uniquely named columns; else None."""
    suffix = path.suffix.lower()
    if suffix in _PARQUET:
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError):
            return None
        named = all(isinstance(c, str) for c in frame.columns)
        return frame if named and not frame.columns.has_duplicates else None
    if suffix not in (".csv", ".txt", ".tsv"):
        return None
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            sample = handle.read(64_000)
        if not sample.strip():
            return None
        delimiter = "\t" if suffix == ".tsv" else sniff_delimiter(sample)
        first = next(csv.reader([sample.splitlines()[0]], delimiter=delimiter))
        if not looks_like_header(first):
            return None
        return pd.read_csv(
            path,
            sep=delimiter,
            header=0,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            skipinitialspace=True,
        )
    except (OSError, ValueError, pd.errors.ParserError, csv.Error):
        return None


def _csv_text(column: pd.Series) -> pd.Series:
    return column.fillna("").astype(str).str.strip()


def _parquet_text(column: pd.Series) -> pd.Series | None:
    """A Parquet column as the text the checks below read (what a CSV would hold), or None when
    it holds values of other types (the row path then reads the file). Times become ISO text
    in UTC with nanoseconds (naive times are UTC, as the row path reads them); a float its repr
    (the row path's ``Decimal(repr(x))``); ints, Decimals and strings their text; a missing value
    (None, NaN, NaT) empty text. Only the text of a row that passes every check is used: any
    other row is handed to the row validator as the row path reads it."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        utc = column.dt.tz_convert("UTC").dt.tz_localize(None) if column.dt.tz else column
        try:
            texts = np.datetime_as_string(utc.to_numpy(dtype="datetime64[ns]"), unit="ns")
        except (OverflowError, ValueError):
            return None
        return pd.Series([t + "Z" if t != "NaT" else "" for t in texts.tolist()], dtype=object)
    texts = []
    for value in column.tolist():
        kind = type(value)
        if kind is str:
            texts.append(value.strip())
        elif kind is float:
            texts.append("" if math.isnan(value) else repr(value))
        elif kind is int or kind is Decimal:
            texts.append(str(value))
        elif value is None:
            texts.append("")
        else:
            return None
    return pd.Series(texts, dtype=object)


def _validated(
    frame: pd.DataFrame,
    columns: dict[str, str],
    cells: dict[str, pd.Series],
    symbol: str | None,
    validator: Validator,
) -> tuple[list[events.Bar], list[events.DeadLetter]]:
    count = len(frame)
    clean = np.ones(count, dtype=bool)

    # symbols: the raw cell (or the given symbol), checked once per distinct value
    if "S" in cells:
        raw_symbols = cells["S"].where(cells["S"] != "", None)
        if symbol is not None:
            raw_symbols = raw_symbols.fillna(symbol)
    else:
        raw_symbols = pd.Series([symbol] * count, dtype=object)
    names: dict[Any, str | None] = {}
    symbols_list = raw_symbols.tolist()
    for value in set(symbols_list):
        try:
            names[value] = validator._symbol({"S": value}, None)
        except Invalid:
            names[value] = None
    name_of = [names[value] for value in symbols_list]
    clean &= np.array([name is not None for name in name_of], dtype=bool)

    # times: ISO text by pandas; anything else (and the bounds) through the row rules
    t = cells["t"]
    iso = t.str.fullmatch(_ISO).to_numpy()
    parsed = pd.to_datetime(t.where(iso, None), format="ISO8601", utc=True, errors="coerce")
    ns = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    iso &= ~parsed.isna().to_numpy()
    ms = ns // 1_000_000
    clean &= iso & (ns > 0) & (ms <= events.MAX_TS_MS)
    clean &= ms <= min(validator.clock() + validator.max_future_ms, events.MAX_TS_MS)

    # prices in exact micro-units; sizes
    micros = {}
    for key in _PRICES:
        text = cells[key]
        ok = text.str.fullmatch(_PRICE).to_numpy()
        micros[key] = _micros(text.where(ok, "0"))
        clean &= ok & (micros[key] > 0)
    o, h, low, c = (micros[k] for k in _PRICES)
    clean &= (low <= np.minimum(o, c)) & (np.maximum(o, c) <= h)
    clean &= cells["v"].str.fullmatch(_WHOLE).to_numpy()
    if "n" in cells:
        clean &= (cells["n"].str.fullmatch(_WHOLE) | (cells["n"] == "")).to_numpy()

    vwaps: list[float | None] = [None] * count
    if "vw" in cells:
        for i, text in enumerate(cells["vw"].tolist()):
            if not text:
                continue
            try:
                number = float(text)
            except ValueError:
                clean[i] = False
                continue
            vwaps[i] = number if math.isfinite(number) else None

    raws = _raws(frame, columns, symbol, np.flatnonzero(~clean).tolist())
    times: list[int | None] = ns.tolist()
    for i, raw in raws.items():
        times[i] = _time_ns(raw)
    interval = _interval(symbols_list, times)
    if interval > events.MAX_INTERVAL_MS:  # the row path refuses every bar: let it say why
        raws.update(_raws(frame, columns, symbol, np.flatnonzero(clean).tolist()))
        clean[:] = False
    return _events(cells, clean, raws, times, name_of, vwaps, interval, validator)


def _raws(
    frame: pd.DataFrame, columns: dict[str, str], symbol: str | None, rows: list[int]
) -> dict[int, dict[str, Any]]:
    """The rows ``rows`` as ``replay.read_file`` gives them to the validator."""
    records = frame.iloc[rows].to_dict(orient="records")
    return {i: raw_record(row, columns, symbol) for i, row in zip(rows, records, strict=True)}


def _micros(text: pd.Series) -> npt.NDArray[np.int64]:
    """Prices of the ``_PRICE`` shape in exact integer millionths."""
    return np.fromiter(map(_micro, text.tolist()), dtype=np.int64, count=len(text))


def _micro(text: str) -> int:
    whole, _, fraction = text.partition(".")
    return int(whole) * 1_000_000 + int(fraction.ljust(6, "0"))


def _time_ns(raw: dict[str, Any]) -> int | None:
    try:
        return to_epoch_ns(raw.get("t"))
    except Invalid:
        return None


def _interval(raw_symbols: list[Any], times: list[int | None]) -> int:
    """``replay.bar_interval`` over one (raw) symbol column and its readable times."""
    return bar_interval(zip(map(str, raw_symbols), times, strict=True))


def _events(
    cells: dict[str, pd.Series],
    clean: npt.NDArray[np.bool_],
    raws: dict[int, dict[str, Any]],
    times: list[int | None],
    name_of: list[str | None],
    vwaps: list[float | None],
    interval: int,
    validator: Validator,
) -> tuple[list[events.Bar], list[events.DeadLetter]]:
    bars: list[events.Bar] = []
    rejected: list[events.DeadLetter] = []
    dated: list[tuple[int, int]] = []
    for i, ns in enumerate(times):
        if ns is None:  # replay.events: unreadable times first, in row order
            raw = raws[i]
            reason = (
                "t: missing" if raw.get("t") is None else f"t: not a time: {str(raw['t'])[:40]!r}"
            )
            rejected.append(validator.dead(topics.BARS.name, raw, f"{reason} (row {i + 2})"))
        else:
            dated.append((ns, i))
    dated.sort()
    columns = {k: v.tolist() for k, v in cells.items() if k in (*_PRICES, "v", "n")}
    names = name_of
    decimals: dict[str, Decimal] = {}  # a run's prices repeat: each text read once

    def decimal(text: str) -> Decimal:
        number = decimals.get(text)
        if number is None:
            number = decimals[text] = Decimal(text)
        return number

    for ns, i in dated:
        if clean[i]:
            trades = columns["n"][i] if "n" in columns else ""
            # a clean row's prices have the _PRICE shape and are positive: 1e-6 to 1e12 - 1e-6
            # with at most 6 decimals, which is all events.price_problem asks of a price
            bar = make_bar(
                names[i], ns // 1_000_000, decimal(columns["o"][i]), decimal(columns["h"][i]),
                decimal(columns["l"][i]), decimal(columns["c"][i]), int(columns["v"][i]),
                vwap=vwaps[i], trades=int(trades) if trades else None, interval_ms=interval,
                prices_checked=True,
            )  # fmt: skip
            bars.append(bar)
            continue
        event = validator.bar(raws[i], interval_ms=interval)
        if isinstance(event, events.DeadLetter):
            rejected.append(event.model_copy(update={"reason": f"{event.reason} (row {i + 2})"}))
        else:
            bars.append(event)
    return bars, rejected
