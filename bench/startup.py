"""The demo's start-up: from the command to its first bar and its first signal.

``python -m bench.startup`` runs ``flinktrade demo`` as a new user would (``make demo`` less the
set-up check), on a state folder and broker ports of its own, so the demo starts its own broker,
job, executor, notifier and dashboard from cold. A consumer in this process reads
``analytics.bars`` and ``trading.signals`` of that broker from the moment it accepts connections
and notes when the first record of each arrives. Prints one JSON line (``"contender":
"demo-startup"``) with the seconds from the command to the broker accepting connections, to the
first bar and to the first signal: the first demo on a new state folder (it also formats the
broker's storage) as ``first_demo``, and the median of the ones after it (the state folder kept, as
a user's second ``make demo``); ``--repeats`` demos in all (default 3).

What it includes: Python and CLI start-up, the broker's JVM start-up (concurrent with the job's
JVM, plan and submission), the tasks' initialisation (the job's embedded Python interpreter
imports pyflink's runtime, Apache Beam included), the simulator's first minutes of event time
(600x, so a minute of trades is 0.1 s) and the job's first watermark past them (the news and
provider-bar inputs hold it until they are let go as idle, 2 s). What it does not: ``make``'s
set-up check (cached: ~0.1 s).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from flinktrade import topics
from flinktrade.infra.process import port_open
from flinktrade.testing.ports import free_port

log = logging.getLogger("bench.startup")

DURATION_S = 40
"""The demo's ``--duration``: long enough for a first signal on a loaded machine."""


def run_once(workdir: Path, port: int, controller: int) -> dict[str, Any]:
    """One demo on the broker of ``workdir`` (it starts it, and stops it at the end); the
    seconds from the command to each first."""
    env = dict(os.environ)
    env.update(
        {
            "FLINKTRADE_STATE_DIR": str(workdir / "state"),
            "FLINKTRADE_BROKER__PORT": str(port),
            "FLINKTRADE_BROKER__CONTROLLER_PORT": str(controller),
            "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        }
    )
    flinktrade = str(Path(sys.executable).with_name("flinktrade"))
    command = [flinktrade, "demo", "--duration", str(DURATION_S), "--api-port", "0"]
    started = time.monotonic()
    proc = subprocess.Popen(
        command, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    firsts: dict[str, float | None] = {"broker": None, "bar": None, "signal": None}
    kinds = {topics.ANALYTICS_BARS.name: "bar", topics.SIGNALS.name: "signal"}
    consumer: Consumer | None = None
    try:
        while proc.poll() is None and None in firsts.values():
            if firsts["broker"] is None:
                if port_open("127.0.0.1", port):
                    firsts["broker"] = time.monotonic() - started
                    consumer = Consumer(
                        {
                            "bootstrap.servers": f"127.0.0.1:{port}",
                            "group.id": f"bench-startup-{time.monotonic_ns()}",
                            # only what this demo writes: a state folder used before holds
                            # earlier demos' records (the job writes nothing for seconds after
                            # the broker is up, long after this consumer has its partitions)
                            "auto.offset.reset": "latest",
                            "enable.auto.commit": False,
                            "topic.metadata.refresh.interval.ms": 200,
                            "logger": logging.getLogger("bench.startup.kafka"),
                        }
                    )
                    consumer.subscribe(list(kinds))
                else:
                    time.sleep(0.05)
                continue
            assert consumer is not None
            msg = consumer.poll(0.05)
            if msg is None or msg.error():
                continue
            kind = kinds[str(msg.topic())]
            if firsts[kind] is None:
                firsts[kind] = time.monotonic() - started
    finally:
        if consumer is not None:
            consumer.close()
        proc.wait(timeout=DURATION_S + 300)
    return {k: None if v is None else round(v, 2) for k, v in firsts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="the demo's command to first bar and signal")
    parser.add_argument("--repeats", type=int, default=3, help="demos in all (at least 2)")
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats must be at least 2 (the first demo is reported apart)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("bench.startup.kafka").setLevel(logging.CRITICAL)  # unknown topics at first
    runs = []
    port, controller = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="flinktrade-startup-") as tmp:
        for run in range(args.repeats):  # the first formats the broker's storage, as a first demo
            runs.append(run_once(Path(tmp), port, controller))
            log.info("demo start-up run %d: %s", run, runs[-1])
    again = runs[1:]

    def median(key: str) -> float | None:
        values = [r[key] for r in again if r[key] is not None]
        return round(statistics.median(values), 2) if values and len(values) == len(again) else None

    result = {
        "contender": "demo-startup",
        "command_to_broker_s": median("broker"),
        "command_to_first_bar_s": median("bar"),
        "command_to_first_signal_s": median("signal"),
        "first_demo": runs[0],
        "runs": again,
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "machine": f"{os.cpu_count()} cores",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ"),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
