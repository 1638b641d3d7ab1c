"""Validation of incoming market records: a good record becomes an event, a bad one a ``DeadLetter``.

Records arrive in Alpaca's wire shape (``t`` time, ``S`` symbol, ``o/h/l/c/v/n/vw`` for bars,
``p/s/x/i`` for trades, ``bp/bs/ap/as`` for quotes, the news fields) from REST JSON, the msgpack
streams or a replayed file. Times may be RFC 3339 text, msgpack Timestamps, datetimes or epoch
numbers (s, ms, us or ns, told apart by magnitude).

A record is refused, with the reason in the dead-letter, when a field is missing, a price breaks
``events.price_problem`` (NaN, infinite, below 1e-6, above ``DECIMAL(18, 6)``, more than six
decimals: the job's Java parser applies the same rule), a size is zero, negative or above
``events.MAX_SIZE``, the symbol is not 1-16 printable ASCII characters or was not asked for, a
bar's low/high do not bracket its open and close, or the time lies before 1970, after
``events.MAX_TS_MS`` or more than ``max_future_ms`` ahead of the clock. Whatever else the event
models refuse is refused too. Dead letters never go to the market topics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from flinktrade import topics
from flinktrade.bars import make_bar
from flinktrade.events import (
    MAX_SIZE,
    MAX_TS_MS,
    Bar,
    DeadLetter,
    NewsItem,
    Quote,
    Trade,
    now_ms,
    price_problem,
    symbol_problem,
    validation_reason,
)

MAX_FUTURE_MS = 5 * 60_000
"""How far ahead of the local clock a record's time may be (clock skew, bar start times)."""


class Invalid(ValueError):
    """A record failed validation; the message is the dead-letter reason."""


@dataclass(frozen=True)
class Validator:
    """Turns raw records into events; refused records into dead letters.

    ``symbols``: the symbols asked for (``None``: any); ``source``: where the records came from,
    recorded in each dead letter's reason (``alpaca-rest``, ``alpaca-stream``, ``file:...``).
    """

    symbols: Collection[str] | None = None
    source: str = "alpaca"
    max_future_ms: int = MAX_FUTURE_MS
    clock: Callable[[], int] = now_ms

    def bar(
        self, raw: Mapping[str, Any], symbol: str | None = None, interval_ms: int = 60_000
    ) -> Bar | DeadLetter:
        """A bar from ``{t, o, h, l, c, v[, n, vw]}`` (``S`` or ``symbol`` names the symbol)."""
        try:
            name = self._symbol(raw, symbol)
            ts = self._time(raw)
            o, h, low, c = (_price(raw, k) for k in ("o", "h", "l", "c"))
            volume = _int(raw, "v", minimum=0)
            if h < max(o, c, low) or low > min(o, c):
                raise Invalid(
                    f"inconsistent bar: low {low}, open {o}, close {c}, high {h}"
                    " (want low <= open, close <= high)"
                )
            vwap = _optional_float(raw, "vw")
            trades = _optional_int(raw, "n")
            return make_bar(
                name, ts, o, h, low, c, volume, vwap=vwap, trades=trades, interval_ms=interval_ms
            )
        except (Invalid, ValidationError) as exc:
            return self.dead(topics.BARS.name, raw, _reason(exc))

    def trade(self, raw: Mapping[str, Any], symbol: str | None = None) -> Trade | DeadLetter:
        """A trade from ``{t, p, s, i[, x]}``; its id is ``SYMBOL:epoch-ns:exchange:provider-id``
        (Alpaca's trade ids repeat across days and exchanges)."""
        try:
            name = self._symbol(raw, symbol)
            ts_ns = self._time_ns(raw)
            price = _price(raw, "p")
            size = _int(raw, "s", minimum=1)
            provider_id = _required(raw, "i")
            exchange = raw.get("x")
            exchange_text = str(exchange) if exchange not in (None, "") else None
            return Trade(
                id=f"{name}:{ts_ns}:{exchange_text or '-'}:{provider_id}",
                symbol=name,
                price=price,
                size=size,
                exchange=exchange_text,
                ts=ts_ns // 1_000_000,
            )
        except (Invalid, ValidationError) as exc:
            return self.dead(topics.TRADES.name, raw, _reason(exc))

    def quote(self, raw: Mapping[str, Any], symbol: str | None = None) -> Quote | DeadLetter:
        """A quote from ``{t, bp, bs, ap, as[, bx, ax]}``."""
        try:
            name = self._symbol(raw, symbol)
            ts = self._time(raw)
            bid, ask = _price(raw, "bp", allow_zero=True), _price(raw, "ap", allow_zero=True)
            return Quote(
                symbol=name,
                ts=ts,
                bid_price=bid,
                bid_size=_int(raw, "bs", minimum=0),
                ask_price=ask,
                ask_size=_int(raw, "as", minimum=0),
                bid_exchange=_optional_str(raw, "bx"),
                ask_exchange=_optional_str(raw, "ax"),
            )
        except (Invalid, ValidationError) as exc:
            return self.dead(topics.QUOTES.name, raw, _reason(exc))

    def news(self, raw: Mapping[str, Any]) -> NewsItem | DeadLetter:
        """A news item from Alpaca's news fields; event time is ``created_at``.

        Symbols not asked for are dropped from the item; an item about none of them is refused.
        """
        try:
            news_id = str(_required(raw, "id"))
            headline = str(_required(raw, "headline")).strip()
            if not headline:
                raise Invalid("headline: empty")
            ts = self._time(raw, "created_at")
            symbols = [str(s) for s in raw.get("symbols") or []]
            if self.symbols is not None and "*" not in self.symbols:
                symbols = [s for s in symbols if s in self.symbols]
                if not symbols:
                    raise Invalid("symbols: none of the requested symbols")
            return NewsItem(
                id=f"alpaca:{news_id}",
                headline=headline,
                summary=str(raw.get("summary") or ""),
                source=str(raw.get("source") or ""),
                url=_optional_str(raw, "url"),
                symbols=symbols,
                ts=ts,
            )
        except (Invalid, ValidationError) as exc:
            return self.dead(topics.NEWS.name, raw, _reason(exc))

    def dead(self, topic: str, raw: Mapping[str, Any] | str, reason: str) -> DeadLetter:
        """A dead letter for ``raw`` that was bound for ``topic``, timed when it was refused."""
        payload = raw if isinstance(raw, str) else json.dumps(dict(raw), default=_jsonable)
        return DeadLetter(
            source_topic=topic, reason=f"{self.source}: {reason}", payload=payload, ts=self.clock()
        )

    # ---------------------------------------------------------------- fields

    def _symbol(self, raw: Mapping[str, Any], symbol: str | None) -> str:
        name = symbol if symbol is not None else raw.get("S", raw.get("symbol"))
        if name is None or not str(name).strip():
            raise Invalid("S: missing symbol")
        text = str(name).strip().upper()
        problem = symbol_problem(text)
        if problem is not None:
            raise Invalid(f"S: {problem}")
        if self.symbols is not None and "*" not in self.symbols and text not in self.symbols:
            raise Invalid(f"S: unknown symbol {text!r} (not requested)")
        return text

    def _time(self, raw: Mapping[str, Any], key: str = "t") -> int:
        return self._time_ns(raw, key) // 1_000_000

    def _time_ns(self, raw: Mapping[str, Any], key: str = "t") -> int:
        ns = to_epoch_ns(_required(raw, key), key)
        if ns <= 0:
            raise Invalid(f"{key}: time before 1970")
        if ns // 1_000_000 > MAX_TS_MS:
            raise Invalid(f"{key}: time after 2100")
        if ns // 1_000_000 > self.clock() + self.max_future_ms:
            raise Invalid(f"{key}: time {_iso(ns)} is in the future")
        return ns


def to_epoch_ns(value: Any, key: str = "t") -> int:
    """Epoch nanoseconds of a time in any of the accepted forms; ``Invalid`` otherwise."""
    if hasattr(value, "to_unix_nano"):  # msgpack.Timestamp
        return int(value.to_unix_nano())
    if hasattr(value, "value") and type(value).__name__ == "Timestamp":  # pandas.Timestamp
        if value.tzinfo is None:
            value = value.tz_localize("UTC")
        return int(value.value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(aware.timestamp()) * 1_000_000_000 + aware.microsecond * 1_000
    if isinstance(value, date):
        return to_epoch_ns(datetime(value.year, value.month, value.day, tzinfo=UTC), key)
    if isinstance(value, bool):
        raise Invalid(f"{key}: not a time: {value!r}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise Invalid(f"{key}: not a time: {value!r}")
        return _scale_epoch(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise Invalid(f"{key}: empty time")
        try:
            return _scale_epoch(float(text)) if _looks_numeric(text) else _parse_rfc3339(text)
        except ValueError:
            raise Invalid(f"{key}: not a time: {text[:40]!r}") from None
    raise Invalid(f"{key}: not a time: {type(value).__name__}")


def _looks_numeric(text: str) -> bool:
    return text.replace(".", "", 1).lstrip("-").isdigit()


def _scale_epoch(value: float) -> int:
    """Epoch s, ms, us or ns, told apart by magnitude (any date after 1973 is unambiguous)."""
    magnitude = abs(value)
    if magnitude < 1e11:
        return round(value * 1e9)
    if magnitude < 1e14:
        return round(value * 1e6)
    if magnitude < 1e17:
        return round(value * 1e3)
    return int(value)


def _parse_rfc3339(text: str) -> int:
    """Epoch ns of RFC 3339 / ISO 8601 text, keeping up to nine fractional digits."""
    head, sep, rest = text.partition(".")
    if not sep:
        parsed = datetime.fromisoformat(text)
        aware = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
        return int(aware.timestamp()) * 1_000_000_000
    digits = ""
    while rest and rest[0].isdigit():
        digits, rest = digits + rest[0], rest[1:]
    parsed = datetime.fromisoformat(head + rest)
    aware = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return int(aware.timestamp()) * 1_000_000_000 + int((digits or "0").ljust(9, "0")[:9])


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds")


def _reason(exc: Invalid | ValidationError) -> str:
    """Why a record was refused: our own check's message, or the event model's first error."""
    return validation_reason(exc) if isinstance(exc, ValidationError) else str(exc)


def _required(raw: Mapping[str, Any], key: str) -> Any:
    value = raw.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value) and key in ("t", "i")):
        raise Invalid(f"{key}: missing")
    return value


def _price(raw: Mapping[str, Any], key: str, allow_zero: bool = False) -> Decimal:
    value = _required(raw, key)
    if isinstance(value, bool):
        raise Invalid(f"{key}: not a number: {value!r}")
    try:
        price = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise Invalid(f"{key}: not a number: {str(value)[:40]!r}") from None
    if allow_zero and price == 0:
        return price
    problem = price_problem(price)
    if problem is not None:
        raise Invalid(f"{key}: {problem}")
    return price


def _int(raw: Mapping[str, Any], key: str, minimum: int) -> int:
    value = _required(raw, key)
    try:
        number = float(value) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        raise Invalid(f"{key}: not a number: {str(value)[:40]!r}") from None
    if isinstance(value, bool) or (isinstance(number, float) and not math.isfinite(number)):
        raise Invalid(f"{key}: size is {value!r}")
    if number != int(number):
        raise Invalid(f"{key}: size {value!r} is not whole")
    if int(number) < minimum:
        what = "zero or negative" if minimum == 1 else "negative"
        raise Invalid(f"{key}: size {int(number)} is {what}")
    if int(number) > MAX_SIZE:
        raise Invalid(f"{key}: size {int(number):.3E} is above {MAX_SIZE}")
    return int(number)


def _optional_int(raw: Mapping[str, Any], key: str) -> int | None:
    if raw.get(key) is None or (isinstance(raw[key], float) and math.isnan(raw[key])):
        return None
    return _int(raw, key, minimum=0)


def _optional_float(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Invalid(f"{key}: not a number: {str(value)[:40]!r}") from None
    return number if math.isfinite(number) else None


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return str(value) if value not in (None, "") else None


def _jsonable(value: Any) -> Any:
    """JSON stand-in for values json cannot write (msgpack/pandas timestamps, Decimals, ...)."""
    try:
        return _iso_ns(to_epoch_ns(value))
    except Invalid:
        return str(value)


def _iso_ns(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
