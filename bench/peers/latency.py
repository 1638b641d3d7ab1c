"""Open-loop latency: a driver that sends at a fixed rate on a precomputed schedule, and a collector
that times every output against the scheduled send time of the record that triggered it.

``drive``: record i is due at ``t0 + i / rate``; the driver sends it then (or as soon as it can if
it fell behind: the lateness counts, so there is no coordinated omission). It sleeps until then,
never spins (on 2 cores a spinning driver took ~0.7 of a core from the contender it measures), and
a sleep wakes 0.05-0.1 ms late, which every contender's figures carry alike. Each value carries
its scheduled time as ``sched_us``; the record timestamp stays the trade's event time.

``collect``: reads the output topics as they are written; latency = receipt time - trigger time.
Peers copy ``trigger_us`` into their outputs. flinktrade's outputs do not carry it, so a bar's
trigger is the first scheduled trade whose event time reaches the bar's end plus the job's 2 s
out-of-orderness (the record that lets the watermark close the window): a lower bound on the real
trigger time, so flinktrade's bar latency is if anything overstated by a millisecond or so. A
flinktrade ``large_trade`` alert's trigger is the trade itself: the scheduled time of the trade
with the alert's symbol and event time (its other, per-bar alert kinds are not timed).
Histograms are HdrHistogram (1 us .. 10 min, 3 significant digits); the warm-up is discarded.

``--live`` (both modes): the case a live user meets. The driver stamps each trade with its
scheduled send time as event time (``ts`` = ``sched_us`` / 1000, record timestamp likewise), so
every symbol's bar closes at once when a wall-clock minute ends. The collector times each bar and
signal from the moment its minute's bars can close: minute end + ``--close-bound-ms`` (the
contender's out-of-orderness bound: 2,000 ms for flinktrade's watermark, 0 for the peers, which
close a bar on the symbol's next trade). For the peers it also reports the latency from their own
trigger (``from_trigger``: the trade that closed the bar). A ``large_trade`` alert of flinktrade is
timed from its trade's ``ts`` (ms), so up to 1 ms too long.
"""

from __future__ import annotations

import argparse
import bisect
import json
import time
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer
from hdrh.histogram import HdrHistogram

BAR_MS = 60_000
FLINK_CLOSE_MS = BAR_MS + 1_999
"""Event time after a bar's start at which the job's watermark (max ts - 2 s) closes it."""


def load(path: Path) -> list[tuple[bytes, bytes, int]]:
    out = []
    for line in path.read_bytes().splitlines():
        key, ts, value = line.split(b" ", 2)
        out.append((key, value, int(ts)))
    return out


def drive(args: argparse.Namespace) -> None:
    records = load(args.trades)
    live = args.live
    producer = Producer({"bootstrap.servers": args.servers, "linger.ms": 0})
    period_us = 1e6 / args.rate
    t0 = args.t0_us
    behind = 0
    for i, (key, value, event_ts) in enumerate(records):
        due = t0 + int(i * period_us)
        now = time.time_ns() // 1000
        if now < due:  # a sleep, never a spin: a spinning driver takes a core from the contender
            time.sleep((due - now) / 1e6)  # wakes ~0.05-0.1 ms late; latency counts from ``due``
        elif now - due > 1000:
            behind += 1
        ts = event_ts
        if live:  # event time = the scheduled wall time
            ts = due // 1000
            rec = orjson.loads(value)
            rec["ts"] = rec["ingest_ts"] = ts
            rec["sched_us"] = due
            payload = orjson.dumps(rec)
        else:
            payload = value[:-1] + b',"sched_us":%d}' % due
        while True:
            try:
                producer.produce(args.topic, payload, key, timestamp=ts)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(30)
    print(json.dumps({"sent": len(records), "sent_late_over_1ms": behind}))


def collect(args: argparse.Namespace) -> None:
    records = load(args.trades)
    event_ts = [ts for _k, _v, ts in records]
    symbols = [key.decode() for key, _v, _ts in records]
    period_us = 1e6 / args.rate
    t0 = args.t0_us
    warm_until = t0 + int(len(records) * args.warmup * period_us)
    if args.warmup_until_us is not None:
        warm_until = args.warmup_until_us
    end = t0 + int(len(records) * period_us) + int(args.drain_s * 1e6)

    live, bound_us = args.live, int(args.close_bound_ms * 1000)

    def derived_trigger(bar_ts: int) -> int | None:
        if live:  # the minute's end + the contender's out-of-orderness bound
            return (bar_ts + BAR_MS) * 1000 + bound_us
        i = bisect.bisect_left(event_ts, bar_ts + FLINK_CLOSE_MS)
        return t0 + int(i * period_us) if i < len(event_ts) else None

    def trade_trigger(symbol: str, ts: int) -> int | None:
        if live:
            return ts * 1000
        i = bisect.bisect_left(event_ts, ts)
        while i < len(event_ts) and event_ts[i] == ts:
            if symbols[i] == symbol:
                return t0 + int(i * period_us)
            i += 1
        return None

    kinds = {args.bars: "bar", args.signals: "signal", args.alerts: "alert"}
    hist = {k: HdrHistogram(1, 600_000_000, 3) for k in kinds.values()}
    emitted = {k: HdrHistogram(1, 600_000_000, 3) for k in kinds.values()}
    own = {k: HdrHistogram(1, 600_000_000, 3) for k in kinds.values()}
    consumer = Consumer(
        {
            "bootstrap.servers": args.servers,
            "group.id": f"bench-collector-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # The broker answers a fetch as soon as one record is there (fetch.min.bytes 1), so a
            # longer wait adds no latency; 1 ms made the broker answer ~1,000 empty fetches a second.
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.subscribe(list(kinds))
    while time.time_ns() // 1000 < end:
        msg = consumer.poll(0.1)
        if msg is None or msg.error():
            continue
        received = time.time_ns() // 1000
        kind = kinds[msg.topic()]
        rec = orjson.loads(msg.value())
        trigger = rec.get("trigger_us")
        if live and kind in ("bar", "signal"):
            if trigger is not None and trigger >= warm_until:
                own[kind].record_value(max(1, received - trigger))
            trigger = derived_trigger(rec["ts"] if kind == "bar" else rec["bar_ts"])
        elif trigger is None and kind in ("bar", "signal"):
            trigger = derived_trigger(rec["ts"] if kind == "bar" else rec["bar_ts"])
        elif trigger is None and rec.get("kind") == "large_trade":
            trigger = trade_trigger(rec["symbol"], rec["ts"])
        if trigger is None or trigger < warm_until:
            continue
        hist[kind].record_value(max(1, received - trigger))
        if "ingest_ts" in rec:  # when the contender produced it (ms resolution)
            emitted[kind].record_value(max(1, rec["ingest_ts"] * 1000 - trigger))
    consumer.close()
    result = {}
    for kind, h in hist.items():
        if h.get_total_count() == 0:
            continue
        result[kind] = {
            "count": h.get_total_count(),
            **{
                f"p{q:g}_ms": round(h.get_value_at_percentile(q) / 1000, 2)
                for q in (50, 90, 99, 99.9)
            },
            "max_ms": round(h.get_max_value() / 1000, 2),
            "to_produce_p50_ms": round(emitted[kind].get_value_at_percentile(50) / 1000, 2),
            "to_produce_p99_ms": round(emitted[kind].get_value_at_percentile(99) / 1000, 2),
        }
        if own[kind].get_total_count():
            result[kind]["from_trigger"] = {
                f"p{q:g}_ms": round(own[kind].get_value_at_percentile(q) / 1000, 2)
                for q in (50, 99)
            }
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("drive", "collect"))
    parser.add_argument("--servers", required=True)
    parser.add_argument("--trades", required=True, type=Path)
    parser.add_argument("--rate", required=True, type=float)
    parser.add_argument("--t0-us", required=True, type=int)
    parser.add_argument("--topic", default="")
    parser.add_argument("--bars", default="")
    parser.add_argument("--signals", default="")
    parser.add_argument("--alerts", default="")
    parser.add_argument("--warmup", type=float, default=0.2)
    parser.add_argument("--drain-s", type=float, default=5.0)
    parser.add_argument("--live", action="store_true", help="event time = scheduled wall time")
    parser.add_argument("--close-bound-ms", type=float, default=0.0, help="with --live")
    parser.add_argument("--warmup-until-us", type=int, default=None, help="instead of --warmup")
    args = parser.parse_args()
    drive(args) if args.mode == "drive" else collect(args)


if __name__ == "__main__":
    main()
