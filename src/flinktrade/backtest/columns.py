"""Input bars from columns (numpy or pandas arrays, lists) at a fraction of pydantic's cost.

``bars_of`` gives, for each row, the very ``events.Bar`` that ``events.Bar(symbol=..., ts=...,
open=..., ..., ingest_ts=...)`` gives (the same fields, field order and set of given fields), or
the same refusal, raised when the row is reached: each row is built by ``bars.make_bar``, which
checks plain values against ``events.Bar``'s rules and sends anything else through the validated
constructor.

Prices are taken as floats and become the Decimal of their shortest repr (``Decimal(repr(x))``:
``101.25`` -> ``Decimal('101.25')``), as a CSV or JSON reader gives them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from flinktrade import events
from flinktrade.bars import make_bar


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
    memo: dict[float, tuple[Decimal, bool]] = {}

    def price(value: Any) -> tuple[Any, bool]:
        """A float price as the Decimal of its repr and whether it passes ``events.price_problem``
        (checked once per distinct float); anything else as it is, unchecked, for ``make_bar``."""
        if type(value) is not float:
            return value, False
        known = memo.get(value)
        if known is None:
            number = Decimal(repr(value))
            known = (number, value > 0 and events.price_problem(number) is None)
            if value > 0:  # NaN is never found again; 0.0 and -0.0 would share a key
                memo[value] = known
        return known

    seen = memo.get
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
