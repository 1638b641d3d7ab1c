"""`make bench`: catch-up throughput of the flinktrade job on the trades-1m workload.

Follows ../shared/BENCHMARKS.md: 1,000,000 trades over 50 symbols (~6.5 h of event time, fixed
seed), preloaded into a fresh topic on a local broker; the job (SQL bars + SQL SMA20/SMA50 + Python
SMA-cross strategy, thread mode, parallelism 1, at-least-once) reads it from the earliest offset as
a bounded source. Throughput is taken from the records: N / (last output's emission time - first
output's emission time); start-up is the rest of the wall time. A figure is printed only if the
signals equal the pure-Python reference exactly and the bars match it to 1e-9.

Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from flinktrade import bus, events
from flinktrade.config import BrokerSettings, KafkaSettings
from flinktrade.infra.kafka import LocalKafka
from flinktrade.ingest.simulator import MarketSimulator
from flinktrade.pipeline.analytics import StrategySpec
from flinktrade.pipeline.job import JobIO, JobOptions, run
from flinktrade.testing import reference

N = int(os.environ.get("BENCH_TRADES", "1000000"))
SYMBOLS = 50
SPAN_MS = 6.5 * 3600 * 1000
CLK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += children
            todo += children
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as state:
        broker = LocalKafka(
            BrokerSettings(port=_free_port(), controller_port=_free_port()), Path(state)
        )
        broker.up()
        try:
            result = bench(broker)
        finally:
            broker.down()
    print(json.dumps(result))


def bench(broker: LocalKafka) -> dict[str, object]:
    servers = broker.bootstrap_servers
    names = {
        "trades": "b.trades",
        "analytics_bars": "b.bars",
        "signals": "b.signals",
        "deadletter": "b.dl",
        "news": "b.news",
        "bars": "b.pbars",
        "alerts": "b.alerts",
    }
    bus.ensure_topics(KafkaSettings(bootstrap_servers=servers, partitions=4), names.values())
    trades = MarketSimulator(SYMBOLS, seed=2024, gap_ms=SPAN_MS / N, news=False).trades(N)
    producer = bus.EventProducer(servers)
    for t in trades:
        producer.send_raw(names["trades"], t.to_json(t.ts), t.symbol.encode(), t.ts)
    producer.flush()

    broker_pid = broker.status().pid or 0
    broker_cpu0 = _cpu_seconds(broker_pid)
    wall0 = time.time()
    io = JobIO(
        bootstrap_servers=servers, bounded=True, from_earliest=True, group_id="bench", **names
    )
    options = JobOptions(
        strategies=(StrategySpec("sma_cross", {"fast": 20, "slow": 50}),),
        checkpoint_dir=Path(tempfile.mkdtemp()),
    )
    run(io, options)
    wall = time.time() - wall0
    job_cpu = sum(_cpu_seconds(p) for p in _descendants(os.getpid()) if p != broker_pid)
    driver_cpu = time.process_time()
    broker_cpu = _cpu_seconds(broker_pid) - broker_cpu0

    bars = bus.decode_all(servers, names["analytics_bars"], events.AnalyticsBar)
    signals = bus.decode_all(servers, names["signals"], events.Signal)
    first = min(b.ingest_ts for b in bars)
    last = max([b.ingest_ts for b in bars] + [s.ingest_ts for s in signals])
    span_s = (last - first) / 1000

    ref = reference.bars((t.symbol, t.price, t.size, t.ts) for t in trades)
    reference.add_sma(ref, [20, 50])
    expected = set(reference.sma_cross_signals(ref, 20, 50))
    got = {(s.symbol, s.bar_ts, s.side.value) for s in signals}
    by_key = {(b.symbol, b.ts): b for b in bars}
    bars_ok = len(bars) == len(ref) and all(
        (k := by_key.get((r.symbol, r.ts))) is not None
        and (k.open, k.high, k.low, k.close, k.volume) == (r.open, r.high, r.low, r.close, r.volume)
        and abs((k.vwap or 0) - r.vwap) <= 1e-9 * r.vwap
        for r in ref
    )
    correct = bars_ok and got == expected and len(signals) == len(expected)
    return {
        "contender": "flinktrade (SQL bars, Python indicators+alerts+strategy, thread mode, p=1, at-least-once)",
        "trades": N,
        "symbols": SYMBOLS,
        "correct": correct,
        "bars": len(bars),
        "signals": len(signals),
        "trades_per_s": round(N / span_s) if correct and span_s > 0 else None,
        "processing_s": round(span_s, 2),
        "wall_s": round(wall, 2),
        "startup_s": round(wall - span_s, 2),
        "cpu_s_per_1m": {
            "job_jvm_and_python": round(job_cpu * 1e6 / N, 2),
            "broker_during_run": round(broker_cpu * 1e6 / N, 2),
            "driver": round(driver_cpu * 1e6 / N, 2),
        },
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {sys.version.split()[0]}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


if __name__ == "__main__":
    main()
