"""Input bars from columns (numpy or pandas arrays, lists) at a fraction of pydantic's cost.

``bars_of`` gives, for each row, the very ``events.Bar`` that ``events.Bar(symbol=..., ts=...,
open=..., ..., ingest_ts=...)`` gives (the same fields, field order and set of given fields), or
the same refusal: a row passes a quick check of ``events.Bar``'s rules (the symbol, the times,
the volume, ``events.price_problem`` on every price, low <= open, close <= high) and is then
built without validation; a row that fails any check goes through the validated constructor,
which raises its own ``ValidationError``. The quick check only ever sends more rows to the
validated path, never fewer, so the rule of record stays ``events.Bar``.

Prices are taken as floats and become the Decimal of their shortest repr (``Decimal(repr(x))``:
``101.25`` -> ``Decimal('101.25')``), as a CSV or JSON reader gives them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from math import isnan
from typing import Any

from flinktrade import events

_FIELDS_SET = frozenset(("symbol", "ts", "open", "high", "low", "close", "volume", "ingest_ts"))
"""The fields a keyword construction with these arguments marks as given."""
_set = object.__setattr__


def unchecked_bar(fields: dict[str, Any], given: frozenset[str]) -> events.Bar:
    """``events.Bar(**fields)`` of fields already checked, without validating them again: the
    same object (``Bar.__new__`` filled in one step); ``given``: the fields the keyword
    construction would mark as set. ``fields`` becomes the bar's ``__dict__``."""
    bar = events.Bar.__new__(events.Bar)
    _set(bar, "__dict__", fields)
    _set(bar, "__pydantic_fields_set__", set(given))
    _set(bar, "__pydantic_extra__", None)
    _set(bar, "__pydantic_private__", None)
    return bar


def _column(values: Any) -> Sequence[Any]:
    """``values`` as a list of Python scalars (numpy's ``tolist`` does it in C)."""
    tolist = getattr(values, "tolist", None)
    return tolist() if tolist is not None else list(values)


def bars_of(
    symbol: str,
    ts: Any,
    open: Any,
    high: Any,
    low: Any,
    close: Any,
    volume: Any,
    *,
    ingest_ts: int,
) -> Iterator[events.Bar]:
    """One ``events.Bar`` per row of the columns (equal lengths; ``ts`` epoch ms, prices as
    floats, ``volume`` whole), made one at a time; a row ``events.Bar`` refuses raises its
    ``ValidationError`` when reached, as the validated construction would."""
    columns = [_column(c) for c in (ts, open, high, low, close, volume)]
    if len({len(c) for c in columns}) > 1:
        raise ValueError("bars_of: the columns differ in length")
    symbol_ok = type(symbol) is str and events.symbol_problem(symbol) is None
    ingest_ok = type(ingest_ts) is int and 0 <= ingest_ts <= events.MAX_TS_MS
    memo: dict[float, Decimal | None] = {}
    problem = events.price_problem
    max_ts, max_size = events.MAX_TS_MS, events.MAX_SIZE

    def price(value: Any) -> Decimal | None:
        """The Decimal of a float price, or None when it is not a valid price (or not a float)."""
        if type(value) is not float:
            return None
        known = memo.get(value, memo)
        if known is not memo:
            return known  # type: ignore[return-value]
        number = Decimal(repr(value))
        valid = number if problem(number) is None else None
        if not isnan(value):  # a NaN is never found again as a key
            memo[value] = valid
        return valid

    for t, o, h, lo, c, v in zip(*columns, strict=True):
        po, ph, pl, pc = price(o), price(h), price(lo), price(c)
        if (
            symbol_ok
            and ingest_ok
            and type(t) is int
            and 0 <= t <= max_ts
            and type(v) is int
            and 0 <= v <= max_size
            and po is not None
            and ph is not None
            and pl is not None
            and pc is not None
            and pl <= min(po, pc)
            and max(po, pc) <= ph
        ):
            yield unchecked_bar({
                "ts": t, "ingest_ts": ingest_ts, "symbol": symbol, "open": po, "high": ph,
                "low": pl, "close": pc, "volume": v, "vwap": None, "trades": None,
                "interval_ms": 60_000,
            }, _FIELDS_SET)  # fmt: skip
        else:
            yield _validated(symbol, t, o, h, lo, c, v, ingest_ts)


def _validated(
    symbol: str, ts: Any, o: Any, h: Any, lo: Any, c: Any, v: Any, ingest_ts: int
) -> events.Bar:
    """The validated construction of one row (the rule of record; raises its refusal)."""
    return events.Bar(
        symbol=symbol, ts=ts, open=_as_decimal(o), high=_as_decimal(h), low=_as_decimal(lo),
        close=_as_decimal(c), volume=v, ingest_ts=ingest_ts,
    )  # fmt: skip


def _as_decimal(value: Any) -> Any:
    """A float as the Decimal of its repr (anything else as it is, for pydantic to judge)."""
    return Decimal(repr(value)) if type(value) is float else value
