"""How long a per-partition watermark waits, by the driver's schedule alone (no run).

The latency bench times a flinktrade bar of the compressed workload from its trigger: the first
scheduled trade, on any partition, whose event time reaches the bar's end plus the job's 2 s
out-of-orderness bound (``bench.peers.latency``). Flink's Kafka source keeps a watermark per
partition and the job's watermark is their minimum, so the window can close only once *every*
partition of the input topic has carried such a trade. ``python -m bench.partition_wait`` computes
that wait for each minute end of the compressed workload at each rate: the time the schedule puts
between the collector's trigger and the trade that completes the set, with the producer's own
partitioner (librdkafka's default for keyed records, ``consistent_random``: CRC32 of the key
modulo the partition count). It is part of every flinktrade bar latency of that workload that no
job can remove while it keeps one watermark per partition. One JSON line per rate
(``"contender": "partition-wait"``).
"""

from __future__ import annotations

import argparse
import bisect
import json
import statistics
import zlib
from collections.abc import Sequence

from bench.run import FLINK_CLOSE_BOUND_MS, PARTITIONS, _latency_trades

BAR_MS = 60_000
WARMUP_SHARE = 0.2
"""The collector discards the first 20 % of the run (``bench.peers.latency``); so does this."""


def partition_of(key: str, partitions: int = PARTITIONS) -> int:
    """librdkafka's ``consistent_random`` partition of a non-empty key."""
    return zlib.crc32(key.encode()) % partitions


def waits(
    event_ts: Sequence[int],
    partitions: Sequence[int],
    period_ms: float,
    bound_ms: int = FLINK_CLOSE_BOUND_MS,
    partition_count: int = PARTITIONS,
) -> list[float]:
    """For each minute end of the schedule (record i sent at ``i * period_ms``, event times
    ``event_ts`` in order, on ``partitions``): the ms from the first record at or past the end
    plus ``bound_ms`` to the record after which every partition has carried one. Minute ends whose
    set is not complete by the schedule's end are left out."""
    out: list[float] = []
    if not event_ts:
        return out
    end = (event_ts[0] // BAR_MS + 1) * BAR_MS
    while True:
        first = bisect.bisect_left(event_ts, end + bound_ms)
        if first >= len(event_ts):
            return out
        seen: set[int] = set()
        last = first
        while last < len(event_ts):
            seen.add(partitions[last])
            if len(seen) == partition_count:
                break
            last += 1
        if len(seen) < partition_count:
            return out
        out.append((last - first) * period_ms)
        end = (event_ts[first] // BAR_MS + 1) * BAR_MS


def measure(rate: int, seconds: float = 20.0) -> dict[str, object]:
    """The waits of one compressed latency run at ``rate`` trades/s (its own trades)."""
    trades = _latency_trades(int(rate * seconds))
    found = waits([t.ts for t in trades], [partition_of(t.symbol) for t in trades], 1000 / rate)
    timed = found[int(len(found) * WARMUP_SHARE) :]
    q = statistics.quantiles(timed, n=100)
    return {
        "contender": "partition-wait",
        "rate_per_s": rate,
        "minute_ends": len(timed),
        "p50_ms": round(q[49], 2),
        "p90_ms": round(q[89], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(max(timed), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,2000,5000")
    args = parser.parse_args()
    for rate in (int(r) for r in args.rates.split(",")):
        print(json.dumps(measure(rate)), flush=True)


if __name__ == "__main__":
    main()
