"""Input bars from columns (numpy or pandas arrays, lists) at a fraction of pydantic's cost.

``bars_of`` gives, for each row, the very ``events.Bar`` that ``events.Bar(symbol=..., ts=...,
open=..., ..., ingest_ts=...)`` gives (the same fields, field order and set of given fields), or
the same refusal, raised when the row is reached: each row is built by ``bars.make_bar``, which
checks plain values against ``events.Bar``'s rules and sends anything else through the validated
constructor.

``BarColumns`` is one symbol's columns as the in-process engine's input: it hands the engine each
row as the due item (``pipeline.due``) of the bar ``bars_of`` makes of it, without making that bar
when the row's values are plain and pass the same rules (``BarColumns.items``).

Prices are taken as floats and become the Decimal of their shortest repr (``Decimal(repr(x))``:
``101.25`` -> ``Decimal('101.25')``), as a CSV or JSON reader gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flinktrade import events
from flinktrade.bars import make_bar

Item = tuple[int, Decimal, Decimal, Decimal, Decimal, int, float | None, int, int]
"""A bar as the job's operator buffers it (``pipeline.due``): ``(ts, open, high, low, close,
volume, vwap, trades, interval_ms)``."""
_INTERVAL_MS: int = events.Bar.model_fields["interval_ms"].default


def _column(values: Any) -> Sequence[Any]:
    """``values`` as a list of Python scalars (numpy's ``tolist`` does it in C)."""
    tolist = getattr(values, "tolist", None)
    return tolist() if tolist is not None else list(values)


def _prices() -> tuple[
    Callable[[Any], tuple[Any, bool]], Callable[[float], tuple[Decimal, bool] | None]
]:
    """A memo of a column's float prices: ``price(value)`` gives a float price as the Decimal of
    its repr and whether it passes ``events.price_problem`` (checked once per distinct float),
    anything else as it is, unchecked, for ``make_bar``; ``seen(x)`` the memo's entry of the
    float ``x`` if it has one (one look-up: only a float may be looked up, as an equal int or
    Decimal must not find a float's entry)."""
    memo: dict[float, tuple[Decimal, bool]] = {}

    def price(value: Any) -> tuple[Any, bool]:
        if type(value) is not float:
            return value, False
        known = memo.get(value)
        if known is None:
            number = Decimal(repr(value))
            known = (number, value > 0 and events.price_problem(number) is None)
            if value > 0:  # NaN is never found again; 0.0 and -0.0 would share a key
                memo[value] = known
        return known

    return price, memo.get


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
    price, seen = _prices()
    for t, o, h, lo, c, v in zip(*columns, strict=True):
        if type(o) is float and type(h) is float and type(lo) is float and type(c) is float:
            po, ph, pl, pc = seen(o), seen(h), seen(lo), seen(c)  # seen before: a look-up
            if po is None or ph is None or pl is None or pc is None:
                po, ph, pl, pc = price(o), price(h), price(lo), price(c)
        else:  # only a float is a memo key (an equal int or Decimal must not find its entry)
            po, ph, pl, pc = price(o), price(h), price(lo), price(c)
        yield make_bar(
            symbol, t, po[0], ph[0], pl[0], pc[0], v, ingest_ts=ingest_ts,
            prices_checked=po[1] and ph[1] and pl[1] and pc[1],
        )  # fmt: skip


def bar_item(bar: events.Bar, wire: Mapping[Decimal, Decimal]) -> Item:
    """``bar`` as a due item, each price as ``wire`` maps it (the in-process engine: as the job
    reads it back from its input topic)."""
    fields = bar.__dict__  # once per input bar: the fields read without attribute look-ups
    return (
        fields["ts"],
        wire[fields["open"]],
        wire[fields["high"]],
        wire[fields["low"]],
        wire[fields["close"]],
        fields["volume"],
        fields["vwap"],
        fields["trades"] or 0,
        fields["interval_ms"],
    )


@dataclass(frozen=True)
class BarColumns:
    """One symbol's bars as columns of equal length: starts in epoch ms, prices as floats, whole
    volumes (numpy or pandas arrays, lists; read into Python scalars only while a replay reads
    the symbol, so a run's arrays stay as compact as they came)."""

    symbol: str
    ts: Any
    open: Any
    high: Any
    low: Any
    close: Any
    volume: Any

    @classmethod
    def of(
        cls, symbol: str, ts: Any, open: Any, high: Any, low: Any, close: Any, volume: Any
    ) -> BarColumns:
        columns = (ts, open, high, low, close, volume)
        if len({len(c) for c in columns}) > 1:
            raise ValueError("BarColumns: the columns differ in length")
        return cls(symbol, *columns)

    def __len__(self) -> int:
        return len(self.ts)

    def bars(self) -> Iterator[events.Bar]:
        """The rows as ``bars_of`` makes them (``ingest_ts`` 0)."""
        return bars_of(self.symbol, self.ts, self.open, self.high, self.low, self.close,
                       self.volume, ingest_ts=0)  # fmt: skip

    def items(self, wire: Mapping[Decimal, Decimal], start: int, end: int) -> list[Item]:
        """The due items of the rows whose bar starts in ``[start, end)``: for each row, exactly
        ``bar_item(bar, wire)`` of the bar ``bars()`` makes of it, and for a row ``events.Bar``
        refuses, wherever it starts, its ``ValidationError``, raised when reached.

        A row of plain values (an int start and volume, float prices) that passes the rules
        ``make_bar`` checks becomes its item at once; any other row is made by ``make_bar``
        (through ``bars_of``'s arguments) and read back. The rules on prices are checked once per
        distinct float; prices are compared as floats, whose order is their reprs' (each
        ``Decimal(repr(x))`` lies within ``x``'s own rounding interval)."""
        symbol = self.symbol
        plain_symbol = events.symbol_problem(symbol) is None if type(symbol) is str else False
        price, seen = _prices()
        out: list[Item] = []
        append = list.append
        max_ts, max_size, interval = events.MAX_TS_MS, events.MAX_SIZE, _INTERVAL_MS
        columns = [_column(c) for c in (self.ts, self.open, self.high, self.low, self.close)]
        for t, o, h, lo, c, v in zip(*columns, _column(self.volume), strict=True):
            if type(o) is float and type(h) is float and type(lo) is float and type(c) is float:
                po, ph, pl, pc = seen(o), seen(h), seen(lo), seen(c)
                if po is None or ph is None or pl is None or pc is None:
                    po, ph, pl, pc = price(o), price(h), price(lo), price(c)
                if (
                    plain_symbol
                    and po[1] and ph[1] and pl[1] and pc[1]
                    and type(t) is int and 0 <= t <= max_ts
                    and type(v) is int and 0 <= v <= max_size
                    and lo <= o and lo <= c and o <= h and c <= h
                ):  # fmt: skip
                    if start <= t < end:
                        append(out, (t, wire[po[0]], wire[ph[0]], wire[pl[0]], wire[pc[0]], v,
                                     None, 0, interval))  # fmt: skip
                    continue
            else:
                po, ph, pl, pc = price(o), price(h), price(lo), price(c)
            bar = make_bar(
                symbol, t, po[0], ph[0], pl[0], pc[0], v, ingest_ts=0,
                prices_checked=po[1] and ph[1] and pl[1] and pc[1],
            )  # fmt: skip
            if start <= bar.ts < end:
                append(out, bar_item(bar, wire))
        return out


# -- bars with indicators, as columns (the in-process engine's workers hand them back so) -------

Packed = tuple[str, Any]
"""One symbol's ``AnalyticsBar`` series for a trip through pickle: ``("columns", ...)`` or, for a
series of any other shape, ``("bars", the series)``."""


def pack_bars(series: Sequence[events.AnalyticsBar]) -> Packed:
    """``series`` as columns: each field of the bars, and each indicator, as one list. Pickling a
    pydantic model costs a Python call each way (~10 us a bar to read back); columns cost a
    fraction, and ``unpack_bars`` makes the same objects of them (the same fields in the same
    order, the same given fields, the same indicators in the same order). A series whose bars do
    not all share the first one's shape (type, fields, given fields, indicator names, no extra
    or private values) travels as it is."""
    if not series:
        return ("bars", series)
    kind = events.AnalyticsBar
    first = series[0]
    if type(first) is not kind or type(first.__dict__.get("indicators")) is not dict:
        return ("bars", series)
    keys = tuple(first.__dict__)
    names = tuple(first.indicators)
    given = first.__pydantic_fields_set__
    for bar in series:
        values = bar.__dict__
        if (
            type(bar) is not kind
            or tuple(values) != keys
            or type(values["indicators"]) is not dict
            or tuple(values["indicators"]) != names
            or bar.__pydantic_fields_set__ != given
            or bar.__pydantic_extra__ is not None
            or bar.__pydantic_private__ is not None
        ):
            return ("bars", series)
    dicts = [bar.__dict__ for bar in series]
    columns = [[d[key] for d in dicts] if key != "indicators" else None for key in keys]
    indicators = [[d["indicators"][name] for d in dicts] for name in names]
    return ("columns", (keys, names, set(given), columns, indicators, len(series)))


def unpack_bars(packed: Packed) -> list[events.AnalyticsBar]:
    """The series ``pack_bars`` packed."""
    form, body = packed
    if form == "bars":
        return list(body)
    keys, names, given, columns, indicators, count = body
    rows = zip(*[c if c is not None else [None] * count for c in columns], strict=True)
    assembled, kind = events.assembled, events.AnalyticsBar
    out = []
    for values, row in zip(rows, zip(*indicators, strict=True) if names else [()] * count,
                           strict=True):  # fmt: skip
        fields = dict(zip(keys, values, strict=True))
        fields["indicators"] = dict(zip(names, row, strict=True))
        out.append(assembled(kind, fields, set(given)))
    return out
