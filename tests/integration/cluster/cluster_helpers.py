"""Helpers shared by the session-cluster tests (constants, input, waits, the reference)."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from flinktrade import bus, events
from flinktrade.config import KafkaSettings
from flinktrade.infra.flink import FlinkRest, LocalFlinkCluster
from flinktrade.ingest.simulator import MarketSimulator, RawTrade
from flinktrade.pipeline.analytics import StrategySpec
from flinktrade.pipeline.job import JobIO

SYMBOLS = 6
TRADES = 24_000
PARTITIONS = 4
FLUSH_SYMBOL = "ZZFLUSH"
STRATEGY = {"name": "sma_cross", "params": {"fast": 3, "slow": 8}}
STRATEGIES = (StrategySpec("sma_cross", {"fast": 3, "slow": 8}),)
CHECKPOINT_MS = 1000


def input_trades() -> list[RawTrade]:
    return MarketSimulator(symbols=SYMBOLS, seed=5, gap_ms=50, news=False).trades(TRADES)


def produce(servers: str, topic: str, trades: list[RawTrade], flush: bool) -> int:
    """Write ``trades`` (keyed by symbol), then with ``flush`` one flush trade per partition.
    Returns how many records were acknowledged; raises if any was not."""
    producer = bus.EventProducer(servers)
    for t in trades:
        producer.send_raw(topic, t.to_json(t.ts), t.symbol.encode(), t.ts)
    producer.flush()
    count = producer.produced
    if flush:
        last = max(t.ts for t in trades)
        raw = Producer({"bootstrap.servers": servers, "enable.idempotence": True})
        for p in range(PARTITIONS):
            ts = last + 3_600_000
            trade = RawTrade(f"flush-{p}", FLUSH_SYMBOL, 100_00, 1, ts)
            raw.produce(topic, trade.to_json(ts), FLUSH_SYMBOL.encode(), partition=p, timestamp=ts)
        assert raw.flush(30) == 0
        count += PARTITIONS
    return count


def content(items: list[Any]) -> list[str]:
    """Events as comparable text: everything but ingest time, flush symbol left out."""
    return sorted(
        e.model_dump_json(exclude={"ingest_ts"}) for e in items if e.symbol != FLUSH_SYMBOL
    )


def committed_all(servers: str, group: str, topic: str) -> bool:
    """Whether ``group`` has committed the end of every partition of ``topic``."""
    return bus.committed_to_end(servers, group, topic)


def completed_checkpoints(rest: FlinkRest, job_id: str) -> int:
    return int(rest.checkpoints(job_id)["counts"]["completed"])


def wait_until_done(rest: FlinkRest, job_id: str, servers: str, group: str, topic: str) -> None:
    """The unbounded job has consumed all of ``topic`` and published the results: its group
    committed the end (done when a checkpoint completes) and two more checkpoints completed."""
    deadline = time.monotonic() + 180
    while not committed_all(servers, group, topic):
        state = rest.job(job_id)["state"]
        assert state in ("RUNNING", "RESTARTING", "INITIALIZING", "CREATED"), state
        assert time.monotonic() < deadline, "the job did not consume its input in time"
        time.sleep(0.3)
    mark = completed_checkpoints(rest, job_id)
    while completed_checkpoints(rest, job_id) < mark + 2:
        assert rest.job(job_id)["state"] == "RUNNING"
        assert time.monotonic() < deadline, "no checkpoints after the end of the input"
        time.sleep(0.2)


def wait_running(rest: FlinkRest, job_id: str, timeout_s: float = 60) -> None:
    """All of the job's tasks run (not only the job: tasks deploy after it says RUNNING)."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = rest.job(job_id)
        if job["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in job["vertices"]):
            return
        assert job["state"] not in ("FAILED", "CANCELED", "FINISHED"), job["state"]
        assert time.monotonic() < deadline, f"job {job_id} tasks not running: {job['state']}"
        time.sleep(0.2)


def subtask_records(rest: FlinkRest, job_id: str) -> dict[str, list[int]]:
    """Per vertex of the job (by name): the records each of its parallel subtasks has read."""
    work: dict[str, list[int]] = {}
    for vertex in rest.job(job_id)["vertices"]:
        url = f"{rest.url}/jobs/{job_id}/vertices/{vertex['id']}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            detail = json.load(answer)
        work[vertex["name"]] = [int(t["metrics"]["read-records"]) for t in detail["subtasks"]]
    return work


def assert_parallelism_2(rest: FlinkRest, job_id: str) -> None:
    """Every operator of the job runs as 2 subtasks."""
    vertices = rest.job(job_id)["vertices"]
    assert {v["name"][:60]: v["parallelism"] for v in vertices} == {
        v["name"][:60]: 2 for v in vertices
    }


def wait_work_shared(rest: FlinkRest, job_id: str, timeout_s: float = 60) -> None:
    """Both subtasks of an operator behind a keyed exchange got records: the work was really
    shared, not all sent to one subtask. (The REST API's metrics lag by up to its fetch interval,
    10 s by default, so this waits for the condition.)"""
    work: dict[str, list[int]] = {}

    def shared() -> bool:
        work.update(subtask_records(rest, job_id))
        return any(len(records) == 2 and min(records) > 0 for records in work.values())

    try:
        bus.wait_for(shared, timeout_s, 1.0, "records on both subtasks of an operator")
    except TimeoutError as exc:
        raise AssertionError(f"no operator had records on both of its subtasks: {work}") from exc


def output_names(prefix: str) -> dict[str, str]:
    return {
        "analytics_bars": f"{prefix}.bars",
        "signals": f"{prefix}.signals",
        "alerts": f"{prefix}.alerts",
        "deadletter": f"{prefix}.deadletter",
    }


def run_io(servers: str, trades: str, prefix: str, bounded: bool) -> JobIO:
    """A test run's topics: ``trades`` in (from the earliest offset), ``<prefix>.*`` out, the empty
    news and provider-bar topics, consumer group ``prefix``."""
    return JobIO(
        bootstrap_servers=servers,
        trades=trades,
        news="news.empty",
        bars="bars.empty",
        group_id=prefix,
        bounded=bounded,
        from_earliest=True,
        **output_names(prefix),
    )


def create_topics(servers: str, names: list[str], replication: int = 1) -> None:
    bus.ensure_topics(
        KafkaSettings(
            bootstrap_servers=servers, partitions=PARTITIONS, replication_factor=replication
        ),
        names,
    )


def job_env(servers: str, state: Path, flink: LocalFlinkCluster, group: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "FLINKTRADE_STATE_DIR": str(state),
            "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": servers,
            "FLINKTRADE_KAFKA__PARTITIONS": str(PARTITIONS),
            "FLINKTRADE_JOB__JOBMANAGER": flink.address,
            "FLINKTRADE_JOB__GROUP_ID": group,
            "FLINKTRADE_JOB__CHECKPOINT_INTERVAL_MS": str(CHECKPOINT_MS),
            "FLINKTRADE_STRATEGIES": json.dumps([STRATEGY]),
        }
    )
    return env


class Reference:
    """The MiniCluster p=1 run of the whole input."""

    def __init__(self, bars: list[events.AnalyticsBar], signals: list[events.Signal]) -> None:
        self.bars = bars
        self.signals = signals
