"""The market the fake Alpaca data API serves: a deterministic function of a seed.

One bar per minute of the regular session (14:30-21:00 UTC, Monday to Friday), one to three trades
per bar, one news item per symbol every two hours, all in Alpaca's wire form (``iso`` times,
numbers as JSON numbers). ``MarketTruth`` answers what REST would return over a range (capped at
its market clock, ``clock_ms``, like "now" on the real API), with records injected by tests merged
in; tests compare what flinktrade ingested against it. No I/O, no threads.
"""

from __future__ import annotations

import math
import random
import threading
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

MINUTE_MS = 60_000
SESSION_OPEN_MIN = 14 * 60 + 30  # minutes after midnight UTC (09:30 New York in winter)
SESSION_CLOSE_MIN = 21 * 60
NEWS_EVERY_MIN = 120
_EXCHANGES = "VPQNZKJ"


def iso(ts_ns: int) -> str:
    """RFC 3339 UTC text of an epoch-nanosecond time, as Alpaca writes it (``...Z``)."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos:09d}Z" if nanos else f"{text}Z"


def parse_time(text: str) -> int:
    """Epoch ms of an RFC 3339 time or a plain date (midnight UTC)."""
    value = datetime.fromisoformat(text.strip().replace(" ", "+"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def session_minutes(start_ms: int, end_ms: int) -> Iterator[int]:
    """Start times (epoch ms) of the regular-session minutes in ``[start_ms, end_ms)``."""
    minute = -(-start_ms // MINUTE_MS) * MINUTE_MS
    while minute < end_ms:
        day = datetime.fromtimestamp(minute / 1000, UTC)
        of_day = day.hour * 60 + day.minute
        if day.weekday() >= 5 or of_day >= SESSION_CLOSE_MIN:
            next_day = (day + timedelta(days=1)).replace(hour=0, minute=0)
            minute = int(next_day.timestamp() * 1000) + SESSION_OPEN_MIN * MINUTE_MS
            continue
        if of_day < SESSION_OPEN_MIN:
            minute += (SESSION_OPEN_MIN - of_day) * MINUTE_MS
            continue
        yield minute
        minute += MINUTE_MS


class MarketTruth:
    """The generated market of ``seed``, plus what tests injected; safe to use from any thread."""

    def __init__(
        self, seed: int = 7, clock_ms: int | None = None, lock: threading.RLock | None = None
    ) -> None:
        self.seed = seed
        self.clock_ms = clock_ms
        """Market "now": REST returns nothing that happened after it (``None``: no cap)."""
        self.lock = lock or threading.RLock()
        self._extra: dict[str, dict[str, list[dict[str, Any]]]] = {"bars": {}, "trades": {}}
        self._stray: dict[str, dict[str, list[tuple[str, dict[str, Any]]]]] = {
            "bars": {},
            "trades": {},
        }

    def _rng(self, *parts: object) -> random.Random:
        return random.Random("|".join(str(p) for p in (self.seed, *parts)))  # noqa: S311

    def _base_cents(self, symbol: str, minute: int) -> int:
        base = 20.0 + (zlib.crc32(symbol.encode()) % 40_000) / 100.0
        drift = base * 0.02 * math.sin(minute / MINUTE_MS / 97.0)
        return round((base + drift) * 100)

    def bar(self, symbol: str, minute: int) -> dict[str, Any]:
        """The 1-minute bar of ``symbol`` starting at ``minute`` (epoch ms), in Alpaca's wire form."""
        rng = self._rng("bar", symbol, minute)
        o = self._base_cents(symbol, minute) + rng.randint(-25, 25)
        c = o + rng.randint(-30, 30)
        h = max(o, c) + rng.randint(0, 20)
        low = max(1, min(o, c) - rng.randint(0, 20))
        return {
            "t": iso(minute * 1_000_000),
            "o": o / 100,
            "h": h / 100,
            "l": low / 100,
            "c": c / 100,
            "v": rng.randint(100, 5_000),
            "n": rng.randint(1, 60),
            "vw": round((h + low + c) / 300, 4),
        }

    def minute_trades(self, symbol: str, minute: int) -> list[dict[str, Any]]:
        """The trades of ``symbol`` during the minute starting at ``minute``, in time order."""
        rng = self._rng("trades", symbol, minute)
        offsets = sorted(rng.sample(range(1, 59_999_999), rng.randint(1, 3)))
        base = self._base_cents(symbol, minute)
        index = minute // MINUTE_MS
        return [
            {
                "t": iso(minute * 1_000_000 + offset * 1_000),
                "x": rng.choice(_EXCHANGES),
                "p": (base + rng.randint(-25, 25)) / 100,
                "s": rng.randint(1, 500),
                "c": ["@"],
                "i": index * 10 + j,
                "z": "C",
            }
            for j, offset in enumerate(offsets)
        ]

    def news_item(self, symbol: str, minute: int) -> dict[str, Any]:
        rng = self._rng("news", symbol, minute)
        up = rng.random() < 0.5
        headline = (
            f"{symbol} rallies after earnings beat and raised guidance"
            if up
            else f"{symbol} slides after downgrade and guidance cut"
        )
        stamp = iso(minute * 1_000_000)
        digest = zlib.crc32(f"{symbol}|{minute}".encode())
        return {
            "id": int(minute // MINUTE_MS) * 1_000 + digest % 1_000,
            "headline": headline,
            "author": "Fake Newswire",
            "created_at": stamp,
            "updated_at": stamp,
            "summary": f"Deterministic story about {symbol}.",
            "content": "",
            "url": f"https://news.example.invalid/{symbol.lower()}/{minute}",
            "images": [],
            "symbols": [symbol],
            "source": "fake",
        }

    def news_minute(self, symbol: str, minute: int) -> bool:
        offset = zlib.crc32(symbol.encode()) % NEWS_EVERY_MIN
        return (minute // MINUTE_MS) % NEWS_EVERY_MIN == offset

    def _capped_end(self, end_ms: int, length_ms: int) -> int:
        """The end of a range such that nothing after the market clock is returned."""
        if self.clock_ms is None:
            return end_ms
        return min(end_ms, self.clock_ms - length_ms + 1)

    def bars(
        self, symbol: str, start_ms: int, end_ms: int, timeframe: str = "1Min"
    ) -> list[dict[str, Any]]:
        """The bars REST answers for one symbol over ``[start_ms, end_ms]``, in time order."""
        size = timeframe_ms(timeframe)
        first = start_ms // size * size
        minutes = session_minutes(first, self._capped_end(end_ms + 1, size))
        out: list[dict[str, Any]] = []
        group: list[dict[str, Any]] = []
        group_start = -1
        for minute in minutes:
            bucket = minute // size * size
            if bucket != group_start and group:
                out.append(_aggregate(group, group_start))
                group = []
            group_start = bucket
            group.append(self.bar(symbol, minute))
        if group:
            out.append(_aggregate(group, group_start))
        out = [b for b in out if start_ms <= parse_time(b["t"]) <= end_ms]
        return _merge(out, self._extra["bars"].get(symbol, []))

    def trades(self, symbol: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """The trades REST answers for one symbol over ``[start_ms, end_ms]``, in time order."""
        out = [
            trade
            for minute in session_minutes(
                start_ms // MINUTE_MS * MINUTE_MS, self._capped_end(end_ms + 1, MINUTE_MS)
            )
            for trade in self.minute_trades(symbol, minute)
            if start_ms <= parse_time(trade["t"]) <= end_ms
        ]
        return _merge(out, self._extra["trades"].get(symbol, []))

    def news(self, symbols: Iterable[str], start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """The news REST answers for ``symbols`` over ``[start_ms, end_ms]``, oldest first."""
        items = [
            self.news_item(symbol, minute)
            for symbol in sorted(set(symbols))
            for minute in session_minutes(start_ms, self._capped_end(end_ms + 1, 1))
            if self.news_minute(symbol, minute)
        ]
        return sorted(items, key=lambda n: (n["created_at"], n["id"]))

    def inject(self, kind: str, symbol: str, records: list[dict[str, Any]]) -> None:
        """Add raw records (possibly invalid) to what REST returns for ``symbol`` (``kind``:
        ``bars`` or ``trades``)."""
        with self.lock:
            self._extra[kind].setdefault(symbol, []).extend(records)

    def inject_stray(
        self, kind: str, symbol: str, records: list[dict[str, Any]], into: str
    ) -> None:
        """Answer requests for ``into`` with ``records`` under another, unrequested ``symbol``."""
        with self.lock:
            self._stray[kind].setdefault(into, []).extend((symbol, r) for r in records)

    def strays(self, kind: str, symbol: str) -> list[tuple[str, dict[str, Any]]]:
        """``(symbol, record)`` pairs injected by ``inject_stray`` into answers for ``symbol``."""
        with self.lock:
            return list(self._stray[kind].get(symbol, []))


def timeframe_ms(timeframe: str) -> int:
    units = {"Min": MINUTE_MS, "T": MINUTE_MS, "Hour": 60 * MINUTE_MS, "H": 60 * MINUTE_MS}
    for suffix, unit in units.items():
        if timeframe.endswith(suffix) and timeframe[: -len(suffix)].isdigit():
            return int(timeframe[: -len(suffix)]) * unit
    raise ValueError(f"invalid timeframe {timeframe!r} (the fake knows NMin and NHour)")


def _aggregate(group: list[dict[str, Any]], start: int) -> dict[str, Any]:
    if len(group) == 1:
        return {**group[0], "t": iso(start * 1_000_000)}
    volume = sum(b["v"] for b in group)
    return {
        "t": iso(start * 1_000_000),
        "o": group[0]["o"],
        "h": max(b["h"] for b in group),
        "l": min(b["l"] for b in group),
        "c": group[-1]["c"],
        "v": volume,
        "n": sum(b["n"] for b in group),
        "vw": round(sum(b["vw"] * b["v"] for b in group) / volume, 4),
    }


def _merge(records: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not extra:
        return records
    return sorted([*records, *extra], key=lambda r: str(r.get("t", "")))
