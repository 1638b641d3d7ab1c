"""flinktrade's shipped job as a benchmark contender (one process: Python driver + its JVM).

The variant the product ships: SQL parse/validate + 1-minute OHLCV+VWAP TUMBLE windows in the JVM,
then the keyed Python analytics operator (indicators, alerts, SMA-cross strategy) in thread mode,
parallelism 1, at-least-once, checkpoints every 10 s. Catch-up runs read the topic as a bounded
source and end by themselves; latency runs read it unbounded until the runner stops them.

``--low-latency`` runs the job's shipped low-latency profile (``JobOptions.latency_profile``,
``flinktrade job run --latency-profile low``): buffer timeout 1 ms (default 100 ms), watermark
interval 10 ms (default 200 ms), sink ``linger.ms`` 0 (default 5), source fetches answered at 2 KB or
2 ms (default profile 64 KB or 5 ms; ``job.SOURCE_FETCH``).
The workload is trades only, so the job runs without its news and provider-bar inputs
(``JobIO(news=None, bars=None)``, what ``FLINKTRADE_JOB__NEWS=false`` and
``FLINKTRADE_JOB__PROVIDER_BARS=false`` configure) unless ``--news``/``--pbars`` name topics. Latency runs
(``--unbounded``) also turn on the per-trade ``large_trade`` alert at the peers'
``ALERT_SIZE``, as the peers alert only in latency runs.

The stats file gets ``command_ms`` (when this process started, from ``/proc``), ``submitted_ms``
(job built, about to be submitted) and, unbounded, ``ready_ms`` (job RUNNING): the runner reports
start-up from the command to the first output.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

from bench.peers.logic import ALERT_SIZE
from flinktrade.config import AnalyticsSettings, LatencyProfile
from flinktrade.pipeline.analytics import StrategySpec
from flinktrade.pipeline.job import JobIO, JobOptions, build, environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("servers", "input", "bars", "signals", "alerts", "deadletter"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--news", help="a news topic (default: no news branch, as no peer has one)")
    parser.add_argument("--pbars", help="a provider-bars topic (default: none, likewise)")
    parser.add_argument("--group", default="bench")
    parser.add_argument("--stats", required=True, type=Path)
    parser.add_argument("--unbounded", action="store_true")
    parser.add_argument("--low-latency", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    io = JobIO(
        bootstrap_servers=args.servers,
        trades=args.input,
        news=args.news,
        bars=args.pbars,
        analytics_bars=args.bars,
        signals=args.signals,
        alerts=args.alerts,
        deadletter=args.deadletter,
        group_id=args.group,
        bounded=not args.unbounded,
        from_earliest=True,
    )
    options = JobOptions(
        strategies=(StrategySpec("sma_cross", {"fast": 20, "slow": 50}),),
        checkpoint_dir=args.stats.parent / f"checkpoints-{args.group}",  # the runner's workdir
        latency_profile=LatencyProfile.LOW if args.low_latency else LatencyProfile.DEFAULT,
        analytics=AnalyticsSettings(large_trade_size=ALERT_SIZE if args.unbounded else None),
    )
    env = environment(options)
    build(env, io, options)
    stats = {"command_ms": _process_start_ms(), "submitted_ms": _ms()}
    if args.unbounded:
        client = env.execute_async(options.name)
        while "RUNNING" not in str(client.get_job_status().result()):
            time.sleep(0.2)
        args.stats.write_text(json.dumps(stats | {"ready_ms": _ms()}))
        client.get_job_execution_result().result()
    else:
        args.stats.write_text(json.dumps(stats))
        env.execute(options.name)


def _ms() -> int:
    return time.time_ns() // 1_000_000


def _process_start_ms() -> int:
    """When this process was started (its ``/proc`` start time), epoch ms."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot_s = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return int((boot_s + ticks / os.sysconf("SC_CLK_TCK")) * 1000)


if __name__ == "__main__":
    main()
