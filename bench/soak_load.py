"""The soak's load generator: open-loop trades (valid and malformed) on a precomputed schedule,
and the reference bars of what it sent.

Record ``i`` (valid or malformed) is due at ``t0 + i / rate`` on the wall clock; a valid trade's
event time is its due time (event time = wall time, plus ``--event-offset-ms``). The driver
sleeps until the next record is due and then sends every record that is due, so a stall (CPU
starvation, a full producer queue while the broker is down) never thins the schedule: lateness
is measured against the due time and reported (no coordinated omission).

Valid trades are generated from a seed (symbol, a per-symbol random walk of the price in 1/10,000
units, a size 1..500) and folded as they are sent into integer bar aggregates keyed by
(symbol, minute): open/high/low/close in price units, volume, notional (sum of price units x size)
and the trade count. That fold is the reference the job's bars are compared with; it is computed
here, from the generator's own values, never from anything the job wrote.

Malformed records are the variants of ``flinktrade.testing.hostile.hostile_records`` that the wire
contract rejects (``DEAD_VARIANTS``, a fixed list of names), spread evenly over the schedule,
each built from its own base trade. The harmless variants (extra padding, odd but valid numbers)
and the 1 MB ones (above the broker's default message size, and 10 GB at 10,000 records) are not
sent: only records that must end as dead letters are mixed in, so their count is exact.

The producer is idempotent with an unlimited delivery timeout and a queue large enough for a
minute of load, so a broker restart delays records but neither loses, duplicates nor reorders
them. The result (counts, lateness, reference bars, one SHA-1 per malformed record) is written as
JSON to ``--out`` when the last record is acknowledged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from flinktrade.testing.hostile import hostile_records

BAR_MS = 60_000
PRICE_UNITS = 10_000
"""Prices are generated in 1/10,000 (four decimals: within the wire contract, few exact SMA ties)."""

DEAD_VARIANTS: tuple[str, ...] = (
    "empty", "not_json", "truncated", "json_array", "json_null", "json_string", "not_utf8",
    "nested_deep", "missing_id", "id_wrong_type", "missing_price", "price_wrong_type",
    "price_nan", "price_infinity", "price_minus_infinity", "price_1e400", "price_minus_zero",
    "price_zero", "price_negative", "missing_size", "size_wrong_type", "size_zero",
    "size_negative", "size_fraction", "size_nan", "missing_symbol", "symbol_wrong_type",
    "symbol_empty", "symbol_long", "symbol_very_long", "symbol_not_utf8", "symbol_number",
    "symbol_null", "missing_ts", "ts_wrong_type",
)  # fmt: skip
"""Hostile trade variants that break the wire contract (``events.Trade``): each must become
exactly one dead letter. Left out: ``one_mb``/``one_mb_garbage`` (size) and the variants the
contract accepts (``price_tiny``, ``price_too_many_decimals``, ``price_huge``, ``size_1e30``,
``symbol_spaces``, ``ts_far_future``, ``ts_before_1970``, ``ts_float``, ``ts_huge``)."""

LATE_MS = 100
"""A record sent more than this after its due time counts as sent late."""


def symbol_names(count: int) -> list[str]:
    """``count`` distinct valid symbols: S000, S001, ..."""
    width = max(3, len(str(count - 1)))
    return [f"S{i:0{width}d}" for i in range(count)]


def malformed_positions(total: int, malformed: int) -> list[int]:
    """Indices of the malformed records among ``total``, evenly spread (none at index 0)."""
    if malformed <= 0:
        return []
    if malformed > total // 2:
        raise ValueError(f"{malformed} malformed records need at least {2 * malformed} in total")
    step = total / malformed
    return [int(k * step + step / 2) for k in range(malformed)]


def malformed_records(malformed: int, symbols: list[str], ts: int) -> list[tuple[str, bytes]]:
    """``malformed`` named hostile trades cycling through ``DEAD_VARIANTS``."""
    out: list[tuple[str, bytes]] = []
    group = 0
    while len(out) < malformed:
        base = {
            "id": f"bad-{group}",
            "symbol": symbols[group % len(symbols)],
            "price": 100.25,
            "size": 10,
            "ts": ts,
        }
        variants = {name: raw for name, raw in hostile_records(base) if name in DEAD_VARIANTS}
        for name in DEAD_VARIANTS:
            if len(out) == malformed:
                break
            out.append((name, variants[name]))
        group += 1
    return out


def price_text(units: int) -> str:
    return f"{units // PRICE_UNITS}.{units % PRICE_UNITS:04d}"


class Delivery:
    """Counts acknowledgements and failures of the producer's deliveries."""

    def __init__(self) -> None:
        self.acked = 0
        self.failed = 0
        self.first_error: str | None = None

    def __call__(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.acked += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = str(err)


def run(args: argparse.Namespace) -> dict[str, Any]:
    total = int(args.rate * args.duration)
    symbols = symbol_names(args.symbols)
    keys = [s.encode() for s in symbols]
    positions = malformed_positions(total, args.malformed)
    bad = malformed_records(len(positions), symbols, args.t0_ms + args.event_offset_ms)
    bad_at = dict(zip(positions, range(len(bad)), strict=True))
    rng = random.Random(args.seed)
    prices = [rng.randrange(20 * PRICE_UNITS, 500 * PRICE_UNITS) for _ in symbols]
    bars: dict[tuple[int, int], list[int]] = {}
    delivery = Delivery()
    producer = Producer(
        {
            "bootstrap.servers": args.servers,
            "enable.idempotence": True,
            "message.timeout.ms": 0,  # never give up on a record: the broker comes back
            "linger.ms": 5,
            "queue.buffering.max.messages": 10_000_000,
            "queue.buffering.max.kbytes": 2_000_000,
            "message.max.bytes": 1_000_000,
        }
    )
    t0 = args.t0_ms / 1000
    period_ms = 1000 / args.rate
    offset = args.event_offset_ms
    late = 0
    max_late_ms = 0.0
    first_ts: int | None = None
    last_ts = 0
    i = 0
    while i < total:
        now = time.time()
        due_upto = min(total, int((now - t0) * args.rate) + 1)
        if due_upto <= i:
            time.sleep(min(0.002, max(0.0, t0 + i / args.rate - now)))
            continue
        due_upto = min(due_upto, i + 5_000)
        max_late_ms = max(max_late_ms, (now - t0) * 1000 - i * period_ms)
        # records of this batch due more than LATE_MS before now
        late += max(0, min(due_upto, math.ceil((now - t0 - LATE_MS / 1000) * args.rate)) - i)
        for j in range(i, due_upto):
            ts = args.t0_ms + offset + int(j * period_ms)
            k = bad_at.get(j)
            if k is not None:
                value = bad[k][1]
                key = keys[k % len(keys)]
            else:
                s = rng.randrange(len(symbols))
                price = max(PRICE_UNITS, prices[s] + rng.randint(-50, 50))
                prices[s] = price
                size = rng.randint(1, 500)
                value = (
                    f'{{"id":"t{args.seed}-{j}","symbol":"{symbols[s]}",'
                    f'"price":{price_text(price)},"size":{size},"ts":{ts}}}'
                ).encode()
                key = keys[s]
                bar = bars.get((s, ts - ts % BAR_MS))
                if bar is None:
                    bars[(s, ts - ts % BAR_MS)] = [
                        price,
                        price,
                        price,
                        price,
                        size,
                        price * size,
                        1,
                    ]
                else:
                    bar[1] = max(bar[1], price)
                    bar[2] = min(bar[2], price)
                    bar[3] = price
                    bar[4] += size
                    bar[5] += price * size
                    bar[6] += 1
                if first_ts is None:
                    first_ts = ts
                last_ts = ts
            while True:
                try:
                    producer.produce(args.topic, value, key, timestamp=ts, on_delivery=delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
        i = due_upto
    load_end = time.time()
    remaining = producer.flush(args.flush_timeout)
    return {
        "sent": total,
        "sent_valid": total - len(bad),
        "sent_malformed": len(bad),
        "acked": delivery.acked,
        "send_failures": delivery.failed,
        "unacked_at_end": remaining,
        "first_error": delivery.first_error,
        "sent_late": late,
        "max_late_ms": round(max_late_ms, 1),
        "load_end": load_end,
        "flushed": time.time(),
        "first_ts": first_ts,
        "last_ts": last_ts,
        "symbols": symbols,
        "bars": [[s, start, *agg] for (s, start), agg in bars.items()],
        "malformed": [[name, hashlib.sha1(raw).hexdigest()] for name, raw in bad],  # noqa: S324
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", required=True)
    parser.add_argument("--topic", default="market.trades")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--symbols", type=int, required=True)
    parser.add_argument("--malformed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--t0-ms", type=int, required=True)
    parser.add_argument("--event-offset-ms", type=int, default=0)
    parser.add_argument("--flush-timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = run(args)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
