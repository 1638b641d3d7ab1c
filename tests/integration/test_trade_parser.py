"""The job's trade parser (``jvm/udf/.../TradeParser.java``), called in the gateway JVM: its byte
scanner (``fast``) accepts only what the full Jackson parser accepts, with the same values.

The scanner decides nothing else: whatever it does not accept is read again by the full parser,
which alone refuses records and names the reasons (the poison-pill suite checks those through the
job). So the one property to hold is: ``fast`` true implies ``parseFully`` true with equal fields.
It is checked on every hostile trade variant, on prices at the edges of the bounds, on spacing and
key orders, and on thousands of random byte mutations of valid records; and the scanner must
accept the plain records flinktrade's producers write (or it would be a dead branch).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from py4j.java_gateway import get_field

from flinktrade.ingest.simulator import MarketSimulator
from flinktrade.pipeline.job import JobOptions, environment
from flinktrade.testing.hostile import hostile_records

pytestmark = pytest.mark.integration

SEED = 20261206


@pytest.fixture(scope="module")
def udf() -> Any:
    from pyflink.java_gateway import get_gateway

    environment(JobOptions(checkpoint_dir=None))  # the gateway, with the job's jars loaded
    return get_gateway().jvm.io.flinktrade.udf


def _valid_records(n: int) -> list[tuple[bytes, int]]:
    trades = MarketSimulator(["AAPL", "MSFT", "BRK.B", "X"], seed=7, news=False).trades(n)
    return [(t.to_json(t.ts), t.ts) for t in trades]


def _variants(valid: bytes, ts: int, rng: random.Random) -> Iterator[tuple[bytes, int | None]]:
    record = json.loads(valid)
    for _name, raw in hostile_records(record):
        yield raw, ts
    for price in ("0.000001", "999999999999.999999", "1000000000000", "0.0000001", "12.50",
                  "12.5000000", "007", "0", "0.0", "1.", ".5", "1e2", "-1", '"12.25"', "12.3456789"):  # fmt: skip
        yield valid.replace(b'"price":' + json.dumps(record["price"]).encode(),
                            b'"price":' + price.encode()), ts  # fmt: skip
    yield json.dumps(record, indent=2).encode(), ts  # spacing and newlines
    yield json.dumps(dict(reversed(list(record.items())))).encode(), ts  # key order
    yield valid[:-1] + b',"id":"again"}', ts  # a duplicate key: the last one counts
    yield valid[:-1] + b',"symbol":"ZZZ"}', ts
    yield valid[:-1] + b',"size":1.5}', ts
    yield valid, None  # no record timestamp to check against
    yield valid, ts + 1  # a record timestamp that differs
    for _ in range(60):  # random damage: a byte changed, removed or inserted
        at = rng.randrange(len(valid))
        kind = rng.randrange(3)
        byte = bytes([rng.choice(b'0123456789.-eE"{}[],: \\x\x00\x7f\xc3')])
        if kind == 0:
            yield valid[:at] + byte + valid[at + 1 :], ts
        elif kind == 1:
            yield valid[:at] + valid[at + 1 :], ts
        else:
            yield valid[:at] + byte + valid[at:], ts


def _fields(parser: Any) -> tuple[Any, ...]:
    values = (get_field(parser, name) for name in ("symbol", "unscaledPrice", "size", "ts"))
    return (parser.id(), *values)


def test_the_scanner_accepts_only_what_the_full_parser_accepts_with_the_same_values(udf) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(SEED)
    fast, full = udf.TradeParser(), udf.TradeParser()
    checked = accepted = 0
    for valid, ts in _valid_records(40):
        for record, record_ts in _variants(valid, ts, rng):
            checked += 1
            if not fast.fast(record, record_ts):
                continue
            accepted += 1
            assert full.parseFully(record, record_ts), (record[:200], get_field(full, "reason"))
            assert _fields(fast) == _fields(full), record[:200]
    assert checked > 3_000
    assert accepted > 200  # the valid variants: spacing, key order, duplicates, good prices


def test_the_scanner_reads_the_records_flinktrades_producers_write(udf) -> None:  # type: ignore[no-untyped-def]
    parser = udf.TradeParser()
    for record, ts in _valid_records(200):
        assert parser.fast(record, ts), record
        assert parser.parse(record, ts) and get_field(parser, "ok")
        assert _fields(parser)[1] == json.loads(record)["symbol"]
