"""Hostile records for the poison-pill tests: every consumer must survive each of them.

``hostile_records(valid)`` takes one valid record of a topic (a JSON object) and returns named
variants of it that a consumer must reject (dead letter with a reason) or, where the variant is
harmless, process as usual: the rule under test is that the service stays up and the next valid
record is processed. Each variant is ``(name, bytes)``; names are stable, so a test can say which
variants must end as dead letters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

ONE_MB = 1024 * 1024

PRICE_FIELDS = ("price", "open", "high", "low", "close", "limit_price", "filled_avg_price")
SIZE_FIELDS = ("size", "volume", "qty", "trades")
SYMBOL_FIELDS = ("symbol",)
TIME_FIELDS = ("ts", "bar_ts")

BAD_NUMBERS: tuple[tuple[str, str], ...] = (
    ("nan", "NaN"),
    ("infinity", "Infinity"),
    ("minus_infinity", "-Infinity"),
    ("1e400", "1e400"),
    ("minus_zero", "-0"),
    ("zero", "0"),
    ("tiny", "0.0000001"),
    ("negative", "-100000"),
    ("too_many_decimals", "1.0000001"),
    ("huge", "1e30"),
)
BAD_SIZES: tuple[tuple[str, str], ...] = (
    ("zero", "0"),
    ("negative", "-5"),
    ("1e30", "1000000000000000000000000000000"),
    ("fraction", "1.5"),
    ("nan", "NaN"),
)
BAD_TIMES: tuple[tuple[str, str], ...] = (
    ("far_future", "253402300800000"),  # year 10000
    ("before_1970", "-86400000"),
    ("float", "1.5e12"),
    ("huge", "100000000000000000000000"),
)
BAD_SYMBOLS: tuple[tuple[str, bytes], ...] = (
    ("empty", b'""'),
    ("long", b'"' + b"A" * 22 + b'"'),
    ("very_long", b'"' + b"A" * 10_000 + b'"'),
    ("spaces", b'" AAPL "'),
    ("not_utf8", b'"\xff\xfeAB"'),
    ("number", b"42"),
    ("null", b"null"),
)


def _with(valid: Mapping[str, Any], field: str, raw_json: bytes) -> bytes:
    """``valid`` with ``field`` replaced by the raw JSON text ``raw_json`` (may be invalid JSON)."""
    marker = "\u0000__hostile__\u0000"
    text = json.dumps({**valid, field: marker})
    return text.encode().replace(json.dumps(marker).encode(), raw_json)


def hostile_records(
    valid: Mapping[str, Any], extra_fields: Iterable[str] = ()
) -> list[tuple[str, bytes]]:
    """Named hostile variants of one valid JSON record (see the module docstring)."""
    good = json.dumps(valid).encode()
    out: list[tuple[str, bytes]] = [
        ("empty", b""),
        ("not_json", b"this is not json"),
        ("truncated", good[: len(good) // 2]),
        ("json_array", b"[1, 2, 3]"),
        ("json_null", b"null"),
        ("json_string", b'"hello"'),
        ("not_utf8", b"\xff\xfe\xfd" + good),
        ("nested_deep", b"[" * 10_000 + b"]" * 10_000),
        ("one_mb", json.dumps({**valid, "padding": "x" * ONE_MB}).encode()),
        ("one_mb_garbage", b"\xff" * ONE_MB),
    ]
    fields = set(valid) | set(extra_fields)
    for field in sorted(fields):
        out.append(
            (
                f"missing_{field}",
                json.dumps({k: v for k, v in valid.items() if k != field}).encode(),
            )
        )
        out.append((f"{field}_wrong_type", _with(valid, field, b'{"x": [1]}')))
        if field in PRICE_FIELDS:
            out.extend(
                (f"{field}_{name}", _with(valid, field, text.encode()))
                for name, text in BAD_NUMBERS
            )
        if field in SIZE_FIELDS:
            out.extend(
                (f"{field}_{name}", _with(valid, field, text.encode())) for name, text in BAD_SIZES
            )
        if field in TIME_FIELDS:
            out.extend(
                (f"{field}_{name}", _with(valid, field, text.encode())) for name, text in BAD_TIMES
            )
        if field in SYMBOL_FIELDS:
            out.extend((f"{field}_{name}", _with(valid, field, raw)) for name, raw in BAD_SYMBOLS)
    return out
