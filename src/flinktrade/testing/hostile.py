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

PRICE_FIELDS = (
    "price", "open", "high", "low", "close", "limit_price", "stop_price", "filled_avg_price",
)  # fmt: skip
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


ORDER_SPEC_VARIANTS: dict[str, Any] = {
    "order_type_unknown": {"type": "iceberg"},
    "order_limit_nan": {"type": "limit", "limit_price": "NaN"},
    "order_limit_negative": {"type": "limit", "limit_price": -5},
    "order_percent_100": {"take_profit_pct": 100},
    "order_qty_nan": {"qty": "NaN"},
    "order_not_an_object": "market",
    "order_tif_unknown": {"time_in_force": "forever"},
    "order_misspelt_exit": {"takeprofit_pct": 4},
}
"""Bad ``order`` specs of a signal (issue 19's ``events.OrderSpec``), which every consumer of
signals must refuse: ``hostile_records`` varies top-level fields only and never reaches inside."""


def with_order_variants(valid: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """``valid`` with its ``order`` replaced by each of ``ORDER_SPEC_VARIANTS`` (none when the
    record has no ``order``)."""
    if "order" not in valid:
        return []
    return [
        (name, json.dumps({**valid, "order": spec}).encode())
        for name, spec in ORDER_SPEC_VARIANTS.items()
    ]
