"""Fixtures of the cluster tests: a Flink session cluster (2 TaskManagers x 2 slots), a broker of
their own (the CLI's default topic names must be free), one simulated input and the reference run
of it: parallelism 1 in the in-process MiniCluster, bounded.

The input ends with one "flush" trade per partition, an hour of event time after the last real one,
so that unbounded runs (which never see the end of input) close every real window just as the
bounded reference does. Outputs are compared by content without the flush symbol.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from flinktrade import bus, events, topics
from flinktrade.config import BrokerSettings, KafkaSettings
from flinktrade.infra.flink import FlinkClusterSettings, FlinkRest, LocalFlinkCluster
from flinktrade.infra.kafka import LocalKafka
from flinktrade.ingest.simulator import MarketSimulator, RawTrade
from flinktrade.pipeline.analytics import StrategySpec
from flinktrade.pipeline.job import JobIO, JobOptions, run
from flinktrade.testing.ports import free_port

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
    consumer = Consumer({"bootstrap.servers": servers, "group.id": group})
    try:
        ends = bus.end_offsets(consumer, topic)
        try:
            committed = consumer.committed(
                [TopicPartition(topic, tp.partition) for tp in ends], timeout=10
            )
        except KafkaException:  # no coordinator yet
            return False
        done = {tp.partition: tp.offset for tp in committed}
        return all(done.get(tp.partition, -1) >= tp.offset for tp in ends if tp.offset > 0)
    finally:
        consumer.close()


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


def output_names(prefix: str) -> dict[str, str]:
    return {
        "analytics_bars": f"{prefix}.bars",
        "signals": f"{prefix}.signals",
        "alerts": f"{prefix}.alerts",
        "deadletter": f"{prefix}.deadletter",
    }


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


@pytest.fixture(scope="session")
def flink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFlinkCluster]:
    """A real standalone session cluster, started through ``flinktrade infra`` code."""
    cluster = LocalFlinkCluster(
        FlinkClusterSettings(rest_port=free_port(), rpc_port=free_port(), taskmanagers=2, slots=2),
        tmp_path_factory.mktemp("flink-state"),
    )
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="session")
def cluster_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    kafka = LocalKafka(
        BrokerSettings(port=free_port(), controller_port=free_port(), heap="512m"),
        tmp_path_factory.mktemp("cluster-broker"),
    )
    try:
        kafka.up()
        create_topics(kafka.bootstrap_servers, [t.name for t in topics.ALL])
        yield kafka
    finally:
        kafka.down()


@pytest.fixture(scope="session")
def full_input(cluster_broker: LocalKafka) -> str:
    """The whole input, with flush trades, in a topic of its own; returns the topic."""
    servers = cluster_broker.bootstrap_servers
    create_topics(servers, ["trades.full", "news.empty", "bars.empty"])
    produce(servers, "trades.full", input_trades(), flush=True)
    return "trades.full"


@pytest.fixture(scope="session")
def reference(
    cluster_broker: LocalKafka, full_input: str, tmp_path_factory: pytest.TempPathFactory
) -> Reference:
    servers = cluster_broker.bootstrap_servers
    names = output_names("ref")
    create_topics(servers, list(names.values()))
    io = JobIO(
        bootstrap_servers=servers,
        trades=full_input,
        news="news.empty",
        bars="bars.empty",
        group_id="reference",
        bounded=True,
        from_earliest=True,
        **names,
    )
    options = JobOptions(
        strategies=STRATEGIES,
        checkpoint_dir=Path(str(tmp_path_factory.mktemp("ref-checkpoints"))),
        checkpoint_interval_ms=CHECKPOINT_MS,
    )
    run(io, options)
    ref = Reference(
        bus.decode_all(servers, names["analytics_bars"], events.AnalyticsBar),
        bus.decode_all(servers, names["signals"], events.Signal),
    )
    assert len(content(ref.signals)) > 10, "the input should give a fair number of signals"
    return ref
