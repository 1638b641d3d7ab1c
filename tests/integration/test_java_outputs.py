"""The job's Java functions that replaced its SQL (``jvm/udf``), called in the gateway JVM and
compared with flinktrade's Python models, which every consumer decodes with:

- ``DeadLetters``: a refused trade's dead letter has the bytes ``events.encode`` writes for
  ``DeadLetter.of`` of the same record and reason, for every hostile record (invalid UTF-8, 1 MB
  payloads, control characters, quotes) and for reasons over the 500-character bound;
- ``LargeTradeAlerts``: the alert has the bytes of the ``Alert`` Python would build (its id
  ``events.stable_id("alert", "large_trade", symbol, trade id)``, its message with the price's
  plain decimal, critical from twice the threshold);
- ``RawRecords``: a provider bar's event time is its end, ``ts + interval_ms - 1``, by the rules
  written out again here, and no hostile record makes it throw.

The job runs them all end to end in ``test_job.py`` and ``test_job_poison.py``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from flinktrade import events
from flinktrade.events import AlertKind, Severity
from flinktrade.ingest.simulator import MarketSimulator
from flinktrade.pipeline.connectors import BAR_INTERVAL_MS, MAX_AHEAD_MS
from flinktrade.pipeline.job import JobOptions, environment
from flinktrade.testing.hostile import hostile_records

pytestmark = pytest.mark.integration

TS = 1_704_205_800_000
INGEST = 1_704_205_900_123


@pytest.fixture(scope="module")
def udf() -> Any:
    from pyflink.java_gateway import get_gateway

    environment(JobOptions(checkpoint_dir=None))  # the gateway, with the job's jars loaded
    return get_gateway().jvm.io.flinktrade.udf


def _records() -> list[tuple[str, bytes]]:
    trade = MarketSimulator(["AAPL"], seed=3, news=False).trades(1)[0]
    valid = json.loads(trade.to_json(trade.ts))
    return [("valid", trade.to_json(trade.ts)), *hostile_records(valid)]


def _row(*fields: Any) -> Any:
    """A Java ``Row`` of ``fields`` (``Row.of`` takes them as one ``Object[]``)."""
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    values = gateway.new_array(gateway.jvm.Object, len(fields))
    for i, value in enumerate(fields):
        values[i] = value
    return gateway.jvm.org.apache.flink.types.Row.of(values)


REASONS = [
    "malformed JSON",
    'price: "NaN" is not a number\n\tand a "quote" \\ backslash \x00\x1f\x7f',
    "é" * 600,  # two bytes a character, over the 500-character bound
    "\U0001f600" * 501,  # outside the BMP: Java counts two chars, Python one
    "x" * 500,
    "",
]


def test_a_refused_trade_becomes_the_dead_letter_python_writes(udf) -> None:  # type: ignore[no-untyped-def]
    checked = 0
    for _name, raw in _records():
        for reason in REASONS:
            got = bytes(udf.DeadLetters.encode(TS, INGEST, "market.trades", 3, 17, reason, raw))
            letter = events.DeadLetter.of(
                "market.trades", reason, raw, ts=TS, partition=3, offset=17
            ).model_copy(update={"ingest_ts": INGEST})
            assert got == events.encode(letter), (_name, reason[:20])
            checked += 1
    assert checked >= 40 * len(REASONS)  # the hostile records, each with every reason


def test_a_dead_letter_row_goes_to_the_deadletter_topic_without_a_key(udf) -> None:  # type: ignore[no-untyped-def]
    dead = _row(TS, 2, 9, None, b"\xff oops")  # no reason: "invalid record"
    out = udf.DeadLetters("deadletter.t", "market.trades").map(dead)
    assert (out.getField(0), out.getField(1), out.getField(3)) == ("deadletter.t", None, TS)
    letter = events.decode(events.DeadLetter, bytes(out.getField(2)))
    assert (letter.reason, letter.payload, letter.partition, letter.offset) == (
        "invalid record",
        "\ufffd oops",
        2,
        9,
    )
    assert letter.source_topic == "market.trades"


@pytest.mark.parametrize(
    ("price", "size", "threshold"),
    [
        ("187.250000", 500, 490),
        ("187.000000", 980, 490),  # critical from twice the threshold
        ("0.000001", 10**12, 1),
        ("100.500000", 979, 490),
        ("10.000000", 10_000_000, 5_000_000),  # a float Java would write as 1.0E7
    ],
)
def test_a_large_trade_becomes_the_alert_python_would_write(  # type: ignore[no-untyped-def]
    udf, price: str, size: int, threshold: int
) -> None:
    got = bytes(udf.LargeTradeAlerts.encode(TS, INGEST, "t-1", "BRK.B", price, size, threshold))
    alert = events.Alert(
        ts=TS,
        ingest_ts=INGEST,
        id=events.stable_id("alert", AlertKind.LARGE_TRADE.value, "BRK.B", "t-1"),
        kind=AlertKind.LARGE_TRADE.value,
        severity=Severity.CRITICAL if size >= 2 * threshold else Severity.WARNING,
        symbol="BRK.B",
        message=f"Large trade: {size} at {Decimal(price).normalize():f}",
        value=float(size),
        threshold=float(threshold),
    )
    assert got == events.encode(alert)


def test_a_large_trade_alert_row_is_keyed_by_its_symbol(udf) -> None:  # type: ignore[no-untyped-def]
    large = _row(TS, "t-9", "MSFT", "410.100000", 700)
    out = udf.LargeTradeAlerts("alerts.t", 490).map(large)
    assert (out.getField(0), bytes(out.getField(1)), out.getField(3)) == ("alerts.t", b"MSFT", TS)
    alert = events.decode(events.Alert, bytes(out.getField(2)))
    assert (alert.kind, alert.value, alert.threshold) == ("large_trade", 700.0, 490.0)
    assert alert.message == "Large trade: 700 at 410.1"


def _bar_end(value: bytes, record_ts: int) -> int | None:
    """The rule ``RawRecords`` implements, written out: a (strict) JSON object's integer ``ts``
    from 0 to ``MAX_AHEAD_MS`` past the record time, plus its integer ``interval_ms`` (1 to
    ``MAX_INTERVAL_MS``, else a minute), less 1; None for anything else."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    try:
        bar = json.loads(value, parse_constant=refuse)
    except (ValueError, RecursionError):
        return None

    def integer(x: Any) -> int | None:
        if isinstance(x, bool):
            return None
        if isinstance(x, int):
            return x if -(2**63) <= x < 2**63 else None
        if isinstance(x, str):
            try:
                return int(x.strip())
            except ValueError:
                return None
        return None

    if not isinstance(bar, dict):
        return None
    ts = integer(bar.get("ts"))
    if ts is None or ts < 0 or ts > record_ts + MAX_AHEAD_MS:
        return None
    interval = integer(bar.get("interval_ms"))
    if interval is None or not 1 <= interval <= events.MAX_INTERVAL_MS:
        interval = BAR_INTERVAL_MS
    return ts + interval - 1


def test_a_provider_bars_event_time_is_its_end(udf) -> None:  # type: ignore[no-untyped-def]
    valid = {
        "symbol": "AAPL", "ts": TS, "open": 1.5, "high": 2.0, "low": 1.0, "close": 1.75,
        "volume": 100, "interval_ms": 60_000,
    }  # fmt: skip
    records = [raw for _name, raw in hostile_records(valid, ["interval_ms"])]
    for interval in (1, 300_000, 0, -5, events.MAX_INTERVAL_MS + 1, "3000", 1.5, None):
        records.append(json.dumps({**valid, "interval_ms": interval}).encode())
    for ts in (TS + MAX_AHEAD_MS, TS + MAX_AHEAD_MS + 1, 0, -1, str(TS), 2**63, True):
        records.append(json.dumps({**valid, "ts": ts}).encode())
    raw_records = udf.RawRecords.bars()
    ends = 0
    for value in records:
        expected = _bar_end(value, TS)
        assert raw_records.barEnd(value, TS) == expected, value[:80]
        ends += expected is not None
    assert ends > 10  # the valid bars, with their intervals
    assert raw_records.barEnd(json.dumps(valid).encode(), TS) == TS + 60_000 - 1
