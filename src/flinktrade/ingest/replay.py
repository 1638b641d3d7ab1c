"""``flinktrade ingest replay``: a CSV or Parquet file of trades or bars into the market topics.

Columns are recognised by name, case-insensitively, under their common spellings (``timestamp``,
``time``, ``date``; ``symbol``, ``ticker``; ``price``; ``size``, ``qty``; ``open`` ... ``volume``;
Alpaca's one-letter names too). A CSV without a header row is read by position: ``time, symbol,
price, size[, id, exchange]`` for trades, ``time, symbol, open, high, low, close, volume[, vwap,
trades]`` for bars. A file with open/high/low/close columns holds bars, else one with a price
holds trades. Times may be RFC 3339 / ISO text (naive means UTC) or epoch s/ms/us/ns.

Rows are replayed in time order, paced at ``speed`` times real time (event-time gaps longer than
``max_gap_s`` after scaling are shortened to it), or as fast as possible with ``speed=None``.
Rows that fail validation go to the dead-letter topic with the file name and row number.
"""

from __future__ import annotations

import csv
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from flinktrade import topics
from flinktrade.errors import ConfigError
from flinktrade.events import DeadLetter, Event
from flinktrade.ingest.history import Sink
from flinktrade.ingest.validate import Invalid, Validator, to_epoch_ns

log = logging.getLogger(__name__)

Kind = Literal["trades", "bars"]

ALIASES: dict[str, tuple[str, ...]] = {
    "t": ("timestamp", "time", "datetime", "date", "ts", "t", "date_time", "timestamp_utc",
          "time_utc", "event_time", "trade_time", "bar_time"),
    "S": ("symbol", "ticker", "sym", "instrument", "S"),
    "p": ("price", "p", "trade_price", "last", "last_price"),
    "s": ("size", "s", "qty", "quantity", "shares", "trade_size"),
    "o": ("open", "o", "open_price"),
    "h": ("high", "h", "high_price"),
    "l": ("low", "l", "low_price"),
    "c": ("close", "c", "close_price"),
    "v": ("volume", "v", "vol"),
    "vw": ("vwap", "vw"),
    "n": ("trade_count", "trades", "n", "count", "num_trades"),
    "i": ("id", "trade_id", "i", "tradeid"),
    "x": ("exchange", "x", "venue", "exch"),
}  # fmt: skip
"""Our wire name (Alpaca's) -> the column names that mean it (compared case-insensitively, with
spaces and hyphens read as underscores; the one-letter Alpaca names ``S``/``s`` by exact case)."""

POSITIONAL: dict[Kind, tuple[str, ...]] = {
    "trades": ("t", "S", "p", "s", "i", "x"),
    "bars": ("t", "S", "o", "h", "l", "c", "v", "vw", "n"),
}


@dataclass(frozen=True)
class ReplayFile:
    """A file read into raw records in Alpaca's wire names, with what it holds."""

    path: Path
    kind: Kind
    columns: dict[str, str]
    """Our name -> the file's column (or position)."""
    records: list[dict[str, Any]]
    has_header: bool
    interval_ms: int = 60_000


def column_map(names: list[str]) -> dict[str, str]:
    """Map a file's column names to our wire names; unknown columns are ignored."""
    out: dict[str, str] = {}
    exact = {name: name for name in names}
    for ours in ("S", "s"):  # Alpaca's case-sensitive one-letter names first
        if ours in exact:
            out[ours] = ours
    normalized = {_norm(n): n for n in names if n not in out.values()}
    for ours, aliases in ALIASES.items():
        if ours in out:
            continue
        for alias in aliases:
            if len(alias) == 1 and alias in ("S", "s"):
                continue
            found = normalized.get(_norm(alias))
            if found is not None and found not in out.values():
                out[ours] = found
                break
    return out


def _norm(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def detect_kind(columns: dict[str, str]) -> Kind | None:
    if all(k in columns for k in ("o", "h", "l", "c")):
        return "bars"
    if "p" in columns:
        return "trades"
    return None


def looks_like_header(cells: list[str]) -> bool:
    """Whether a CSV's first row is a header: one of its cells is a known column name."""
    known = {_norm(a) for aliases in ALIASES.values() for a in aliases if len(a) > 1}
    return any(_norm(c) in known for c in cells)


def read_file(path: Path, symbol: str | None = None) -> ReplayFile:
    """Read ``path`` (``.csv``/``.txt``/``.tsv``, ``.parquet``/``.pq``) into raw records."""
    if not path.is_file():
        raise ConfigError(f"--file {path}: no such file")
    suffix = path.suffix.lower()
    has_header = True
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".tsv"):
            with path.open(newline="", encoding="utf-8-sig") as handle:
                sample = handle.read(64_000)
            if not sample.strip():
                raise ConfigError(f"--file {path}: the file is empty")
            delimiter = "\t" if suffix == ".tsv" else sniff_delimiter(sample)
            first = next(csv.reader([sample.splitlines()[0]], delimiter=delimiter))
            has_header = looks_like_header(first)
            frame = pd.read_csv(
                path,
                sep=delimiter,
                header=0 if has_header else None,
                dtype=str,
                keep_default_na=False,
                encoding="utf-8-sig",
                skipinitialspace=True,
            )
        else:
            raise ConfigError(f"--file {path}: use a .csv or .parquet file")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"--file {path}: cannot read it: {exc}") from None
    if has_header:
        names = [str(c) for c in frame.columns]
        columns = column_map(names)
        kind = detect_kind(columns)
        if kind is None:
            raise ConfigError(
                f"--file {path}: no open/high/low/close or price column among "
                f"{', '.join(names[:12])}"
            )
    else:
        count = len(frame.columns)
        kind = "bars" if count >= 7 else "trades"
        if count < 4:
            raise ConfigError(f"--file {path}: {count} columns without a header; see --help")
        columns = {ours: str(i) for i, ours in enumerate(POSITIONAL[kind][:count])}
        frame.columns = [str(i) for i in range(count)]
    if "S" not in columns and symbol is None:
        raise ConfigError(f"--file {path}: no symbol column; give --symbol")
    if "t" not in columns:
        raise ConfigError(f"--file {path}: no time column (timestamp, time, date, ...)")
    records = [raw_record(row, columns, symbol) for row in frame.to_dict(orient="records")]
    if kind == "trades" and "s" not in columns and "v" in columns:
        for raw in records:
            raw["s"] = raw.pop("v", None)
    return ReplayFile(path, kind, columns, records, has_header, _interval(records))


def raw_record(
    row: dict[Any, Any], columns: dict[str, str], symbol: str | None = None
) -> dict[str, Any]:
    """One row of a file (``DataFrame.to_dict(orient="records")``'s) as the validator's raw
    record: our names, empty cells as None, ``symbol`` where the row names none."""
    raw = {ours: _cell(row.get(col)) for ours, col in columns.items()}
    if symbol is not None and raw.get("S") is None:
        raw["S"] = symbol
    return raw


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV's first line (``,`` ``;`` tab or ``|``); ``,`` when unclear."""
    try:
        return csv.Sniffer().sniff(sample.splitlines()[0], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    return value


def _time_ns(raw: dict[str, Any]) -> int | None:
    try:
        return to_epoch_ns(raw.get("t"))
    except Invalid:
        return None


def _interval(records: list[dict[str, Any]]) -> int:
    """The bar length: the smallest gap between consecutive bars of one symbol (60 s if none)."""
    return bar_interval((str(raw.get("S")), _time_ns(raw)) for raw in records)


def bar_interval(times: Iterable[tuple[str, int | None]]) -> int:
    """The smallest positive gap, in ms, between consecutive readable times (ns) of one symbol,
    from ``(symbol, ns or None)`` in file order; 60 s if there is none or it is under a second."""
    last: dict[str, int] = {}
    best: int | None = None
    for symbol, ns in times:
        if ns is None:
            continue
        previous = last.get(symbol)
        if previous is not None and ns > previous:
            gap = (ns - previous) // 1_000_000
            best = gap if best is None else min(best, gap)
        last[symbol] = ns
    return best if best and best >= 1_000 else 60_000


def events(replay: ReplayFile, validator: Validator) -> Iterator[Event]:
    """The file's records as events in time order; unreadable rows as dead letters first."""
    dated: list[tuple[int, int, dict[str, Any]]] = []
    for row, raw in enumerate(replay.records, start=2 if replay.has_header else 1):
        if replay.kind == "trades" and raw.get("i") is None:
            raw["i"] = f"{replay.path.name}#{row}"
        ns = _time_ns(raw)
        if ns is None:
            yield _dead(validator, replay, raw, row)
            continue
        dated.append((ns, row, raw))
    dated.sort(key=lambda item: (item[0], item[1]))
    for _ns, row, raw in dated:
        if replay.kind == "bars":
            event: Event = validator.bar(raw, interval_ms=replay.interval_ms)
        else:
            event = validator.trade(raw)
        if isinstance(event, DeadLetter):
            event = event.model_copy(update={"reason": f"{event.reason} (row {row})"})
        yield event


def _dead(validator: Validator, replay: ReplayFile, raw: dict[str, Any], row: int) -> DeadLetter:
    topic = topics.BARS.name if replay.kind == "bars" else topics.TRADES.name
    reason = "t: missing" if raw.get("t") is None else f"t: not a time: {str(raw['t'])[:40]!r}"
    return validator.dead(topic, raw, f"{reason} (row {row})")


def run_replay(
    replay: ReplayFile,
    sink: Sink,
    speed: float | None,
    stop: threading.Event | None = None,
    max_gap_s: float = 5.0,
    on_event: Callable[[Event], None] | None = None,
    symbols: set[str] | None = None,
) -> dict[str, int]:
    """Produce the file's events at ``speed`` x real time (``None``: as fast as possible)."""
    validator = Validator(symbols=symbols, source=f"file:{replay.path.name}")
    stop = stop or threading.Event()
    first_ts: int | None = None
    wall = time.monotonic()
    try:
        for event in events(replay, validator):
            if stop.is_set():
                break
            if speed is not None and not isinstance(event, DeadLetter):
                if first_ts is not None:
                    delay = min((event.ts - first_ts) / 1000 / speed, max_gap_s)
                    wait = wall + delay - time.monotonic()
                    if wait > 0 and stop.wait(wait):
                        break
                first_ts, wall = event.ts, time.monotonic()
            sink.emit(event)
            if on_event is not None:
                on_event(event)
    finally:
        sink.flush()
    return {k: sink.counts.get(k, 0) for k in ("bars", "trades", "news", "deadletter")}
