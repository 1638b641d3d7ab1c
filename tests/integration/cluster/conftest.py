"""Fixtures of the cluster tests: a Flink session cluster (2 TaskManagers x 2 slots), a broker of
their own (the CLI's default topic names must be free), one simulated input and the reference run
of it: parallelism 1 in the in-process MiniCluster, bounded.

The input ends with one "flush" trade per partition, an hour of event time after the last real one,
so that unbounded runs (which never see the end of input) close every real window just as the
bounded reference does. Outputs are compared by content without the flush symbol.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import (
    CHECKPOINT_MS,
    STRATEGIES,
    Reference,
    content,
    create_topics,
    input_trades,
    output_names,
    produce,
    run_io,
)

from flinktrade import bus, events, topics
from flinktrade.config import JitCompiler
from flinktrade.infra.flink import FlinkClusterSettings, LocalFlinkCluster
from flinktrade.infra.kafka import LocalKafka
from flinktrade.pipeline.job import JobOptions, run
from flinktrade.testing.brokers import broker_settings
from flinktrade.testing.ports import free_port


@pytest.fixture(scope="session")
def flink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFlinkCluster]:
    """A real standalone session cluster, started through ``flinktrade infra`` code."""
    cluster = LocalFlinkCluster(
        FlinkClusterSettings(
            rest_port=free_port(),
            rpc_port=free_port(),
            taskmanagers=2,
            slots=2,
            jit=JitCompiler.C1,
        ),
        tmp_path_factory.mktemp("flink-state"),
    )
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


def broker_with_topics(home: Path, heap: str) -> Iterator[LocalKafka]:
    """A single-node broker on free ports with flinktrade's topics; stopped afterwards."""
    kafka = LocalKafka(broker_settings(heap), home)
    try:
        kafka.up()
        create_topics(kafka.bootstrap_servers, [t.name for t in topics.ALL])
        yield kafka
    finally:
        kafka.down()


@pytest.fixture(scope="session")
def cluster_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    yield from broker_with_topics(tmp_path_factory.mktemp("cluster-broker"), "512m")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker for one test that needs the default topic names to itself."""
    yield from broker_with_topics(tmp_path / "own-broker", "384m")


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
    io = run_io(servers, full_input, "ref", bounded=True)
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
