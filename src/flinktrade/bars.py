"""``events.Bar`` at a fraction of pydantic's cost: ``make_bar``, the one builder of input bars.

``make_bar(symbol, ts, open, high, low, close, volume, vwap=..., ...)`` gives what
``events.Bar(symbol=symbol, ts=ts, ..., vwap=...)`` with the same arguments gives: the same bar
(fields, field order, the set of given fields, encoding) or the same ``ValidationError``. Values
of the plain types a reader hands over (``str`` symbol, ``int`` times and sizes, ``Decimal``
prices, ``float`` or ``None`` VWAP) that pass ``events.Bar``'s rules (``events.symbol_problem``,
``events.price_problem``, the time, size and interval bounds, low <= open, close <= high) are
checked here and the bar is built without validating them again (in about half the time);
anything else goes through the validated constructor, which raises its own refusal. The check
only ever sends more values to the validated path, never fewer, so the rule of record stays
``events.Bar``. Used by the ingest validator (Alpaca history, replayed files), the backtest's
column loaders and its simulated market.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from itertools import product
from math import isfinite
from typing import Any

from flinktrade import events

_UNSET: Any = object()
"""An optional argument left out (``events.Bar`` then takes its default, not marked as given)."""
_REQUIRED = ("symbol", "ts", "open", "high", "low", "close", "volume")
_OPTIONAL = ("vwap", "trades", "interval_ms", "ingest_ts")
_GIVEN = {
    flags: frozenset(_REQUIRED + tuple(n for n, on in zip(_OPTIONAL, flags, strict=True) if on))
    for flags in product((False, True), repeat=len(_OPTIONAL))
}
"""The fields a keyword construction marks as given, by which optional arguments it had."""
_DEFAULT_INTERVAL_MS: int = events.Bar.model_fields["interval_ms"].default
_MAX_TS_MS, _MAX_SIZE, _MAX_INTERVAL_MS = events.MAX_TS_MS, events.MAX_SIZE, events.MAX_INTERVAL_MS
_price_problem = events.price_problem
_Bar = events.Bar


def make_bar(
    symbol: Any,
    ts: Any,
    open: Any,
    high: Any,
    low: Any,
    close: Any,
    volume: Any,
    *,
    vwap: Any = _UNSET,
    trades: Any = _UNSET,
    interval_ms: Any = _UNSET,
    ingest_ts: Any = _UNSET,
    prices_checked: bool = False,
) -> events.Bar:
    """``events.Bar(symbol=symbol, ts=ts, ...)`` of the given arguments, built without pydantic
    when the values plainly pass its rules; the optional ones left out are not given.

    ``prices_checked``: the caller has found all four prices valid (``events.price_problem``
    None), e.g. a column loader that checks each distinct price once; their types are checked
    here all the same. (A memo inside this function would not pay: hashing a new ``Decimal``
    costs twice its check.)"""
    wap = None if vwap is _UNSET else vwap
    count = None if trades is _UNSET else trades
    interval = _DEFAULT_INTERVAL_MS if interval_ms is _UNSET else interval_ms
    seen = events.now_ms() if ingest_ts is _UNSET else ingest_ts
    if (
        type(symbol) is str
        and _plain_symbol(symbol)
        and type(ts) is int
        and type(seen) is int
        and 0 <= ts <= _MAX_TS_MS
        and 0 <= seen <= _MAX_TS_MS
        and type(open) is Decimal
        and type(high) is Decimal
        and type(low) is Decimal
        and type(close) is Decimal
        and (
            prices_checked
            or (
                _price_problem(open) is None
                and _price_problem(high) is None
                and _price_problem(low) is None
                and _price_problem(close) is None
            )
        )
        and type(volume) is int
        and 0 <= volume <= _MAX_SIZE
        and (wap is None or (type(wap) is float and isfinite(wap)))
        and (count is None or (type(count) is int and 0 <= count <= _MAX_SIZE))
        and type(interval) is int
        and 0 < interval <= _MAX_INTERVAL_MS
        and low <= open
        and low <= close
        and open <= high
        and close <= high
    ):
        flags = (vwap is not _UNSET, trades is not _UNSET, interval_ms is not _UNSET,
                 ingest_ts is not _UNSET)  # fmt: skip
        return events.assembled(_Bar, {  # ``Bar(**fields)`` filled in one step, unvalidated
            "ts": ts, "ingest_ts": seen, "symbol": symbol, "open": open, "high": high, "low": low,
            "close": close, "volume": volume, "vwap": wap, "trades": count, "interval_ms": interval,
        }, set(_GIVEN[flags]))  # fmt: skip
    given = {"vwap": vwap, "trades": trades, "interval_ms": interval_ms, "ingest_ts": ingest_ts}
    return events.Bar(
        symbol=symbol, ts=ts, open=open, high=high, low=low, close=close, volume=volume,
        **{name: value for name, value in given.items() if value is not _UNSET},
    )  # fmt: skip


@lru_cache(maxsize=4096)
def _plain_symbol(symbol: str) -> bool:
    return events.symbol_problem(symbol) is None
