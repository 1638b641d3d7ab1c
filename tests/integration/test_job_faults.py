"""Kill the job with SIGKILL mid-stream, restore it from the latest checkpoint, compare outputs.

Each run is ``flinktrade job run`` as a user starts it, in its own process group (the Python client
and the MiniCluster JVM it starts); a kill takes the whole group down at once. The reference is one
run of the same input without faults (at-least-once: delivery changes how records are written,
not which). Outputs of each run are told apart by offsets: a
run's records are those after the end offsets seen before it started.

A kill comes at a random point of the checkpoint interval: once a checkpoint newer than the last
kill has completed, after a random delay of 0 to 1 interval, so restores happen from a checkpoint
with anything between nothing and a whole interval of work after it. The delays come from one
seeded generator; the seed is printed (``FAULT_SEED=<n>`` in the test's output) and
``FLINKTRADE_TEST_FAULT_SEED=<n>`` replays the same delays.

The job is killed in its exactly-once delivery (the stricter check: the same records, none
twice). At-least-once is the same restore from the same checkpoints; only the sink's transactions
differ. Its restore is checked by the session cluster's TaskManager kill
(``cluster/test_cluster_faults.py``), and a CLI run of it here cost the suite two minutes.

The runs are unbounded (the Kafka connector does not end a bounded read restored from a
checkpoint). A run is done when its consumer group has committed the end of the input (offsets are
committed when a checkpoint completes) and two more checkpoints have completed after that, so the
last watermark's results are flushed (at-least-once) or committed (exactly-once).

The module has its own broker so that the default topic names the CLI uses are free.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from flinktrade import bus, events, topics
from flinktrade.config import KafkaSettings
from flinktrade.infra.kafka import LocalKafka
from flinktrade.ingest.simulator import MarketSimulator, RawTrade
from flinktrade.pipeline.checkpoints import complete_checkpoints
from flinktrade.testing.brokers import broker_settings
from flinktrade.testing.command import flinktrade_argv

pytestmark = pytest.mark.integration

TRADES = 1_500_000
"""Enough that each run is still mid-stream when it is killed: a run that restores after the whole
input was read has nothing left to read, so its watermark never moves and the bars it restored
as pending are never written (at ~180 k trades/s, 400 k trades were read before the first kill).
Nor may a partition be read to its end before a kill while others are not: restored, it holds
the watermark back for the idle timeout (30 s), longer than a run is watched after its input."""
SYMBOLS = 120
"""Bars for the Python operator to work through (60,000): its pace, not the Java trade path's
(~2 us a trade since session 22), sets the job's, so the runs stay mid-stream when killed. With
12 symbols the job read the whole input within ~2 checkpoints under load, and the restored runs
wrote nothing."""
OUTPUTS = (topics.ANALYTICS_BARS.name, topics.SIGNALS.name, topics.ALERTS.name)
CHECKPOINT_MS = 700


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    state = tmp_path_factory.mktemp("fault-broker")
    kafka = LocalKafka(broker_settings("512m"), state)
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


def job_env(
    kafka: LocalKafka, state: Path, group: str, delivery: str, trades_only: bool = False
) -> dict[str, str]:
    env = dict(os.environ)
    if trades_only:  # bars in bundles (``MinuteBars``, ``BundledBarOperator``)
        env.update({"FLINKTRADE_JOB__NEWS": "false", "FLINKTRADE_JOB__PROVIDER_BARS": "false"})
    env.update(
        {
            "FLINKTRADE_STATE_DIR": str(state),
            "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "FLINKTRADE_BROKER__PORT": str(kafka.settings.port),
            "FLINKTRADE_JOB__GROUP_ID": group,
            "FLINKTRADE_JOB__CHECKPOINT_INTERVAL_MS": str(CHECKPOINT_MS),
            "FLINKTRADE_JOB__DELIVERY": delivery,
            "FLINKTRADE_STRATEGIES": '[{"name": "sma_cross", "params": {"fast": 5, "slow": 20}}]',
        }
    )
    return env


def start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        flinktrade_argv("job", "run", *args),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


INPUTS = (topics.TRADES.name, topics.NEWS.name)


def committed_all(servers: str, group: str, inputs: tuple[str, ...] = INPUTS) -> bool:
    """Whether ``group`` has committed the end of every partition of the input topics."""
    return all(bus.committed_to_end(servers, group, t) for t in inputs)


def checkpoints_after(root: Path, after_ns: int) -> int:
    return len(complete_checkpoints(root, after_ns))


def run_to_the_end(
    proc: subprocess.Popen[bytes],
    servers: str,
    group: str,
    root: Path,
    inputs: tuple[str, ...] = INPUTS,
) -> None:
    """Wait until the run has processed and published all its input, then stop it."""
    deadline = time.monotonic() + 300
    try:
        while not committed_all(servers, group, inputs):
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


@pytest.fixture(scope="module")
def fault_seed() -> int:
    seed = int(
        os.environ.get("FLINKTRADE_TEST_FAULT_SEED") or random.SystemRandom().randrange(2**32)
    )
    print(f"FAULT_SEED={seed}")
    return seed


def kill_in_a_checkpoint_interval(
    proc: subprocess.Popen[bytes],
    root: Path,
    after_ns: int,
    servers: str,
    group: str,
    delay_s: float,
    inputs: tuple[str, ...] = INPUTS,
) -> bool:
    """SIGKILL the run's process group ``delay_s`` after it completed a checkpoint newer than
    ``after_ns``.

    Returns False (without killing) if the run had consumed all its input by then."""
    deadline = time.monotonic() + 180
    while not checkpoints_after(root, after_ns):
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-3000:]  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise TimeoutError("no checkpoint completed within 180 s")
        time.sleep(0.05)
    time.sleep(delay_s)  # the point in the interval chosen by the seeded generator, not a wait
    assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-3000:]  # type: ignore[union-attr]
    if committed_all(servers, group, inputs):
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    return True


def run_killed_twice(
    env: dict[str, str],
    state: Path,
    servers: str,
    group: str,
    rng: random.Random,
    fault_seed: int,
    inputs: tuple[str, ...] = INPUTS,
) -> str:
    """Run the job from the earliest offsets, SIGKILL it twice at seeded points of a checkpoint
    interval, restoring it from its latest checkpoint each time, and run it to the end; returns
    the seed and the delays, for the assertions' messages."""
    root = state / "checkpoints"
    kills, last_kill, delays = 0, 0, []
    proc = start(env, "--from-earliest")
    while kills < 2:
        delays.append(round(rng.uniform(0, CHECKPOINT_MS / 1000), 3))
        if not kill_in_a_checkpoint_interval(
            proc, root, last_kill, servers, group, delays[-1], inputs
        ):
            break
        kills += 1
        last_kill = time.time_ns()
        proc = start(env, "--from-checkpoint", "latest")
    run_to_the_end(proc, servers, group, root, inputs)
    where = f"FAULT_SEED={fault_seed}, kill delays after a checkpoint {delays} s"
    assert kills == 2, f"the job consumed its input before it could be killed twice ({where})"
    return where


@pytest.fixture(scope="module")
def expected(
    broker: LocalKafka, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Counter[str]]:
    """What an undisturbed run writes: one at-least-once run of the whole input."""
    servers = broker.bootstrap_servers
    before = ends(servers)
    group = "clean"
    state = tmp_path_factory.mktemp("clean")
    proc = start(job_env(broker, state, group, "at-least-once"), "--from-earliest")
    run_to_the_end(proc, servers, group, state / "checkpoints")
    result = outputs(servers, before, read_committed=False)
    assert sum(result[topics.SIGNALS.name].values()) > 20
    assert all(n == 1 for counter in result.values() for n in counter.values())
    return result


def test_killed_and_restored_job_writes_what_an_undisturbed_run_writes(
    broker: LocalKafka,
    expected: dict[str, Counter[str]],
    fault_seed: int,
    tmp_path: Path,
) -> None:
    """Exactly once, with news and the per-symbol operator, killed twice at seeded points of a
    checkpoint interval: every bar, signal and alert is written once, as by the undisturbed run."""
    servers = broker.bootstrap_servers
    rng = random.Random(f"{fault_seed}-exactly-once")
    print(f"FAULT_SEED={fault_seed}")  # in the captured output of a failed test

    before = ends(servers)
    group = "faulty-exactly-once"
    env = job_env(broker, tmp_path / "faulty", group, "exactly-once")
    where = run_killed_twice(env, tmp_path / "faulty", servers, group, rng, fault_seed)

    got = outputs(servers, before, read_committed=True)
    for topic in OUTPUTS:
        assert set(got[topic]) == set(expected[topic]), (
            f"{topic}: missing or extra records ({where})"
        )
        assert all(n == 1 for n in got[topic].values()), f"{topic}: duplicates ({where})"


TRADES_ONLY = (topics.TRADES.name,)


@pytest.fixture(scope="module")
def expected_trades_only(
    broker: LocalKafka, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Counter[str]]:
    """What an undisturbed run of a job without news or provider bars writes (its bars in
    bundles: ``MinuteBars``, whose open bars are in the checkpoints)."""
    servers = broker.bootstrap_servers
    before = ends(servers)
    state = tmp_path_factory.mktemp("clean-trades-only")
    env = job_env(broker, state, "clean-trades-only", "at-least-once", trades_only=True)
    proc = start(env, "--from-earliest")
    run_to_the_end(proc, servers, "clean-trades-only", state / "checkpoints", TRADES_ONLY)
    result = outputs(servers, before, read_committed=False)
    assert sum(result[topics.SIGNALS.name].values()) > 20
    assert all(n == 1 for counter in result.values() for n in counter.values())
    return result


def test_a_killed_and_restored_trades_only_job_writes_what_an_undisturbed_run_writes(
    broker: LocalKafka,
    expected_trades_only: dict[str, Counter[str]],
    fault_seed: int,
    tmp_path: Path,
) -> None:
    """Exactly once, killed twice at seeded points of a checkpoint interval: the bundles' window
    state (a minute's partial bars per bucket) and the operator's map state come back from the
    checkpoint, and every bar, signal and alert is written once, as by the undisturbed run."""
    servers = broker.bootstrap_servers
    rng = random.Random(f"{fault_seed}-trades-only")
    before = ends(servers)
    group = "faulty-trades-only"
    env = job_env(broker, tmp_path / "faulty", group, "exactly-once", trades_only=True)
    where = run_killed_twice(env, tmp_path / "faulty", servers, group, rng, fault_seed, TRADES_ONLY)
    got = outputs(servers, before, read_committed=True)
    for topic in OUTPUTS:
        assert set(got[topic]) == set(expected_trades_only[topic]), (
            f"{topic}: missing or extra records ({where})"
        )
        assert all(n == 1 for n in got[topic].values()), f"{topic}: duplicates ({where})"
