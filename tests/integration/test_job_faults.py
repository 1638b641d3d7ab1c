"""Kill the job with SIGKILL mid-stream, restore it from the latest checkpoint, compare outputs.

Each run is ``flinktrade job run`` as a user starts it, in its own process group (the Python client
and the MiniCluster JVM it starts); a kill takes the whole group down at once. The reference is a
run of the same input without faults. Outputs of each run are told apart by offsets: a run's
records are those after the end offsets seen before it started.

The runs are unbounded (the Kafka connector does not end a bounded read restored from a
checkpoint). A run is done when its consumer group has committed the end of the input (offsets are
committed when a checkpoint completes) and two more checkpoints have completed after that, so the
last watermark's results are flushed (at-least-once) or committed (exactly-once).

The module has its own broker so that the default topic names the CLI uses are free.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from flinktrade import bus, events, topics
from flinktrade.config import BrokerSettings, KafkaSettings
from flinktrade.infra.kafka import LocalKafka
from flinktrade.ingest.simulator import MarketSimulator, RawTrade
from flinktrade.pipeline.checkpoints import complete_checkpoints
from flinktrade.testing.ports import free_port

pytestmark = pytest.mark.integration

TRADES = 1_500_000
"""Enough that each run is still mid-stream when it is killed: a run that restores after the whole
input was read has nothing left to read, so its watermark never moves and the bars it restored
as pending are never written (at ~180 k trades/s, 400 k trades were read before the first kill)."""
SYMBOLS = 12
OUTPUTS = (topics.ANALYTICS_BARS.name, topics.SIGNALS.name, topics.ALERTS.name)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    state = tmp_path_factory.mktemp("fault-broker")
    kafka = LocalKafka(
        BrokerSettings(port=free_port(), controller_port=free_port(), heap="512m"), state
    )
    kafka.up()
    settings = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, partitions=4)
    bus.ensure_topics(settings, [t.name for t in topics.ALL])
    producer = bus.EventProducer(kafka.bootstrap_servers)
    simulator = MarketSimulator(symbols=SYMBOLS, seed=11, gap_ms=20, news=True)
    trades = 0
    for item in simulator:
        if isinstance(item, RawTrade):
            producer.send_raw(
                topics.TRADES.name, item.to_json(item.ts), item.symbol.encode(), item.ts
            )
            trades += 1
            if trades == TRADES:
                break
        else:
            producer.send(item)
    producer.flush()
    yield kafka
    kafka.down()


def job_env(kafka: LocalKafka, state: Path, group: str, delivery: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "FLINKTRADE_STATE_DIR": str(state),
            "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "FLINKTRADE_BROKER__PORT": str(kafka.settings.port),
            "FLINKTRADE_JOB__GROUP_ID": group,
            "FLINKTRADE_JOB__CHECKPOINT_INTERVAL_MS": "700",
            "FLINKTRADE_JOB__DELIVERY": delivery,
            "FLINKTRADE_STRATEGIES": '[{"name": "sma_cross", "params": {"fast": 5, "slow": 20}}]',
        }
    )
    return env


def start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "flinktrade.cli", "job", "run", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def committed_all(servers: str, group: str) -> bool:
    """Whether ``group`` has committed the end of every partition of the input topics."""
    return all(
        bus.committed_to_end(servers, group, t) for t in (topics.TRADES.name, topics.NEWS.name)
    )


def checkpoints_after(root: Path, after_ns: int) -> int:
    return len(complete_checkpoints(root, after_ns))


def run_to_the_end(proc: subprocess.Popen[bytes], servers: str, group: str, root: Path) -> None:
    """Wait until the run has processed and published all its input, then stop it."""
    deadline = time.monotonic() + 300
    try:
        while not committed_all(servers, group):
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the run did not consume its input in time"
            time.sleep(0.5)
        mark = time.time_ns()
        while checkpoints_after(root, mark) < 2:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no checkpoints after the end of the input"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def ends(servers: str) -> dict[str, dict[int, int]]:
    consumer = Consumer({"bootstrap.servers": servers, "group.id": "fault-test-ends"})
    try:
        return {
            t: {tp.partition: tp.offset for tp in bus.end_offsets(consumer, t)} for t in OUTPUTS
        }
    finally:
        consumer.close()


def records_since(
    servers: str, topic: str, since: dict[int, int], read_committed: bool
) -> list[bytes]:
    """The values written to ``topic`` after ``since`` (per partition), up to the current end."""
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": "fault-test-read",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    try:
        end = {tp.partition: tp.offset for tp in bus.end_offsets(consumer, topic)}
        consumer.assign([TopicPartition(topic, p, since.get(p, 0)) for p in end])
        values: list[bytes] = []
        pending = {p for p in end if end[p] > since.get(p, 0)}
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                # read_committed never returns markers/aborted records: check positions instead
                for tp in consumer.position([TopicPartition(topic, p) for p in list(pending)]):
                    if tp.offset >= end[tp.partition]:
                        pending.discard(tp.partition)
                continue
            if msg.error():
                continue
            values.append(msg.value() or b"")
            if (msg.offset() or 0) + 1 >= end[msg.partition() or 0]:
                pending.discard(msg.partition() or 0)
        assert not pending, f"could not read {topic} to its end"
        return values
    finally:
        consumer.close()


def outputs(
    servers: str, since: dict[str, dict[int, int]], read_committed: bool
) -> dict[str, Counter[str]]:
    """Per output topic: how many times each distinct record (by event id) was written."""
    kinds = {
        topics.ANALYTICS_BARS.name: events.AnalyticsBar,
        topics.SIGNALS.name: events.Signal,
        topics.ALERTS.name: events.Alert,
    }
    result: dict[str, Counter[str]] = {}
    for topic, kind in kinds.items():
        counter: Counter[str] = Counter()
        for value in records_since(servers, topic, since[topic], read_committed):
            event = events.decode(kind, value)  # type: ignore[type-var]
            # the id, plus the content without ingest time: a restored run must say the same
            counter[event.model_dump_json(exclude={"ingest_ts"})] += 1
        result[topic] = counter
    return result


def kill_after_a_checkpoint(
    proc: subprocess.Popen[bytes], root: Path, after_ns: int, servers: str, group: str
) -> bool:
    """SIGKILL the run's process group once it completed a checkpoint newer than ``after_ns``.

    Returns False (without killing) if the run had consumed all its input by then."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-3000:]  # type: ignore[union-attr]
        if checkpoints_after(root, after_ns):
            if committed_all(servers, group):
                return False
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            return True
        time.sleep(0.1)
    raise TimeoutError("no checkpoint completed within 180 s")


@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_killed_and_restored_job_writes_what_an_undisturbed_run_writes(
    broker: LocalKafka, tmp_path: Path, delivery: str
) -> None:
    servers = broker.bootstrap_servers
    exactly_once = delivery == "exactly-once"

    before = ends(servers)
    group = f"clean-{delivery}"
    state = tmp_path / "clean"
    proc = start(job_env(broker, state, group, delivery), "--from-earliest")
    run_to_the_end(proc, servers, group, state / "checkpoints")
    expected = outputs(servers, before, read_committed=exactly_once)
    assert sum(expected[topics.SIGNALS.name].values()) > 20
    assert all(n == 1 for counter in expected.values() for n in counter.values())

    before = ends(servers)
    group = f"faulty-{delivery}"
    state = tmp_path / "faulty"
    env = job_env(broker, state, group, delivery)
    root = state / "checkpoints"
    kills, last_kill = 0, 0
    proc = start(env, "--from-earliest")
    while kills < 2:
        if not kill_after_a_checkpoint(proc, root, last_kill, servers, group):
            break
        kills += 1
        last_kill = time.time_ns()
        proc = start(env, "--from-checkpoint", "latest")
    run_to_the_end(proc, servers, group, root)
    assert kills == 2, "the job consumed its input before it could be killed twice"

    got = outputs(servers, before, read_committed=exactly_once)
    for topic in OUTPUTS:
        assert set(got[topic]) == set(expected[topic]), f"{topic}: missing or extra records"
        if exactly_once:
            assert all(n == 1 for n in got[topic].values()), f"{topic}: duplicates"
