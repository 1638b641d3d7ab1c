"""Builds and runs the flinktrade PyFlink job.

    market.trades --parse/validate, late check (Java, ParseTrades)--+--> deadletter (invalid, late)
                                                                     +--> 1-min bars (Java,
    market.news --decode + sentiment (Python)--+--> deadletter          MinuteBars) --+
                                               +--> per-symbol news -------------------+
                                                                                       v
        analytics operator (Python, keyed by symbol, event-time order): indicators, sentiment,
        anomaly rules, strategies --> analytics.bars, trading.signals, alerts

Per trade, everything runs in the JVM, in the Kafka source's task (``trade_records``, a DataStream
Kafka source, and ``trade_path``): one parse of each record, the late check against the watermark,
the bars of each minute. The Python side sees one row per symbol per minute (or one bundle per
minute and bucket) plus the news, never individual trades; the dead letters of refused trades and
the optional per-trade ``large_trade`` alert are made in Java beside the parse. Every output,
encoded already, leaves through one DataStream Kafka sink (``output_sink``). Without a news topic
(``JobIO.news`` None) the news branch is left out and the operator has one input.

The job is built on the DataStream API alone: no table environment, so no planner to load and
unpack (~1.5 s), no SQL to plan (~2 s) and no generated code to compile when the tasks start
(docs/benchmarks.md, session 33).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyflink import java_gateway
from pyflink.common import Configuration, Row, Types
from pyflink.common.typeinfo import TypeInformation, _from_java_type
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.data_stream import ConnectedStreams, KeyedStream
from pyflink.java_gateway import get_gateway

from flinktrade import topics
from flinktrade.config import (
    AnalyticsSettings,
    Delivery,
    GarbageCollector,
    JitCompiler,
    LatencyProfile,
    Settings,
)
from flinktrade.errors import ConfigError
from flinktrade.infra import cds, embedded, jvm
from flinktrade.pipeline import connectors
from flinktrade.pipeline.analytics import StrategySpec, SymbolModel
from flinktrade.pipeline.operator import (
    BAR_ROW_TYPE,
    NEWS_ROW_TYPE,
    OUTPUT_LOT_TYPE,
    OUTPUT_ROW_TYPE,
    AnalyticsOperator,
    BarAnalyticsOperator,
    BarDecoder,
    BundledBarOperator,
    NewsScorer,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobIO:
    """Which topics the job reads and writes, and how it reads them."""

    bootstrap_servers: str
    trades: str = topics.TRADES.name
    news: str | None = topics.NEWS.name
    """News to score and fold into the analytics (None: no news branch in the job at all)."""
    bars: str | None = topics.BARS.name
    """Provider bars to analyse as they are (None: only bars built from trades)."""
    analytics_bars: str = topics.ANALYTICS_BARS.name
    signals: str = topics.SIGNALS.name
    alerts: str = topics.ALERTS.name
    deadletter: str = topics.DEADLETTER.name
    group_id: str = "flinktrade-job"
    bounded: bool = False
    """Stop at the end offsets seen at start (backtests, tests, benchmarks); windows flush at end."""
    from_earliest: bool = False
    """Ignore committed offsets and read from the beginning."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> JobIO:
        """The production topics, with the news and provider-bar inputs as configured."""
        job = settings.job
        values: dict[str, Any] = {
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "group_id": job.group_id,
            "news": topics.NEWS.name if job.news else None,
            "bars": topics.BARS.name if job.provider_bars else None,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class JobOptions:
    parallelism: int = 1
    checkpoint_interval_ms: int = 10_000
    checkpoint_dir: Path | None = None
    out_of_orderness_ms: int = 2_000
    idle_timeout_ms: int = 30_000
    """Trades: a partition silent this long stops holding back the watermark (above the
    broker's leader fail-over time, or a fail-over makes the partition's trades late)."""
    side_idle_timeout_ms: int = 2_000
    """News and provider bars: sparse by nature, so a silent partition is let go quickly. Neither
    timeout applies to a bounded run, where every partition ends and is waited for."""
    delivery: Delivery = Delivery.AT_LEAST_ONCE
    latency_profile: LatencyProfile = LatencyProfile.DEFAULT
    thread_mode: bool = True
    strategies: tuple[StrategySpec, ...] = field(default_factory=tuple)
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)
    bar_buckets: int | None = None
    """A job whose only input is its trades hands its bars to Python in bundles, one per minute
    and bucket of symbols (``operator.BundledBarOperator``): the number of buckets (None: the
    parallelism), fixed for the life of the job's state, since a restore with another count
    starts the symbols that moved afresh. One bucket is one Python call per minute; the buckets
    spread the symbols over up to that many parallel tasks."""
    restore_from: Path | str | None = None
    """A retained checkpoint (or savepoint) directory to start from, or a URI the cluster reads
    (``s3://...``, ``hdfs://...``) given as a string."""
    name: str = "flinktrade"
    restart_attempts: int = 3
    """Restarts (2 s apart) before a failing local job gives up; tests set 0 so that any failure
    shows instead of being retried away."""
    jobmanager: str | None = None
    """``host:port`` of a Flink cluster's REST endpoint to submit to (None: a local MiniCluster)."""
    heap: str | None = "1g"
    """``-Xmx`` of the JVM the job starts (the pyflink gateway, which hosts the local MiniCluster;
    only the job's client when submitting to a cluster). None or empty: the JVM's default, a
    quarter of the machine's memory, which lets a long-running job's heap (and RSS) grow far
    beyond what it needs before the collector gives memory back. Applies only if this process
    has not started the gateway yet (the first job of a process fixes it)."""
    jit: JitCompiler = JitCompiler.C1
    """The JIT compilers of the gateway JVM (``jvm_args_with_jit``); like ``heap``, only for a JVM this
    process starts."""
    gc: GarbageCollector = GarbageCollector.PARALLEL
    """The garbage collector of the gateway JVM (``jvm_args_with_gc``); like ``heap``, only for a
    JVM this process starts."""
    kafka_properties: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """How every Kafka source and sink of the job authenticates (``connectors.client_properties`` of
    ``KafkaSettings``: security protocol, SASL login, TLS files). Empty: a PLAINTEXT cluster. Out
    of ``repr``, since it holds the password."""

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> JobOptions:
        job = settings.job
        specs = tuple(
            StrategySpec(s.name, dict(s.params), frozenset(s.symbols)) for s in settings.strategies
        )
        values: dict[str, object] = {
            "parallelism": job.parallelism,
            "checkpoint_interval_ms": job.checkpoint_interval_ms,
            "checkpoint_dir": settings.state_dir / "checkpoints",
            "out_of_orderness_ms": job.out_of_orderness_ms,
            "idle_timeout_ms": job.idle_timeout_ms,
            "side_idle_timeout_ms": job.side_idle_timeout_ms,
            "delivery": job.delivery,
            "latency_profile": job.latency_profile,
            "thread_mode": job.python_thread_mode,
            "heap": job.heap or None,
            "jit": job.jit,
            "gc": job.gc,
            "bar_buckets": job.bar_buckets,
            "strategies": specs,
            "analytics": settings.analytics,
            "kafka_properties": connectors.client_properties(settings.kafka),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


DEFAULT_CONF = {
    "execution.buffer-timeout.interval": "10 ms",  # Flink's default 100 ms per network hop
    "pipeline.auto-watermark-interval": "50 ms",  # Flink's default 200 ms: bars close on watermarks
}
"""Flink settings of ``LatencyProfile.DEFAULT``. Flink's own defaults held bars 272-327 ms (p50) /
428 ms (p99) at 2,000 trades/s; these 66-71 / 101-108 ms, for ~5-15 % more CPU at that rate and
the same catch-up rate (105-111 k against 98-105 k trades/s; docs/benchmarks.md). Python bundles
and the sinks' ``linger.ms`` (5 ms) keep their defaults."""

LOW_LATENCY_CONF = {
    "execution.buffer-timeout.interval": "1 ms",  # Flink's default 100 ms per network hop
    "pipeline.auto-watermark-interval": "10 ms",  # Flink's default 200 ms
}
"""Flink settings of ``LatencyProfile.LOW``; its Kafka sinks also write with ``linger.ms`` 0."""

LOW_LATENCY_PROCESS_CONF = {
    "python.fn-execution.bundle.size": "1",  # process mode batches Python input (default 1000)
    "python.fn-execution.bundle.time": "1",  # ... and flushes it every 1000 ms by default
}
"""``LatencyProfile.LOW``'s settings for Python workers in process mode only. In thread mode (the
default) the embedded operators hand every record to Python at once and never hold a bundle (their
``invokeFinishBundle`` does nothing, so a watermark is never held back either): there a 1 ms
bundle time only woke each Python operator's task thread 1,000 times a second for nothing, a
timer thread of its own busy with it (~9 % of the job's JVM CPU at 1,000 trades/s,
async-profiler)."""


def profile_conf(profile: LatencyProfile, thread_mode: bool) -> dict[str, str]:
    """The Flink settings of ``profile`` for a job whose Python operators run in thread mode or
    (``thread_mode`` False) in Python worker processes."""
    if profile is LatencyProfile.LOW:
        return LOW_LATENCY_CONF | ({} if thread_mode else LOW_LATENCY_PROCESS_CONF)
    return dict(DEFAULT_CONF)


SOURCE_FETCH = {
    LatencyProfile.LOW: connectors.Fetch(min_bytes=2048, max_wait_ms=2),
    LatencyProfile.DEFAULT: connectors.Fetch(min_bytes=65536, max_wait_ms=5),
}
"""How each profile's Kafka sources batch their reads. Kafka's own defaults (an answer as soon as
one byte is there) made the source's fetch thread send one small fetch after another: at 5,000
trades/s in the low-latency profile it was the job's busiest thread (~a third of its JVM's CPU,
async-profiler) and the broker answered thousands of fetches a second, on the 2 cores the job
shares with it. Each profile now lets a fetch wait up to about what its sinks wait to batch
(``linger.ms``), or until a few records (LOW) or a full batch (DEFAULT) are there
(docs/benchmarks.md, "The sources' fetches")."""


def jvm_args_with_heap(jvm_args: str | None, heap: str | None) -> str | None:
    """``JVM_ARGS`` with ``-Xmx<heap>`` added, unless it already sets a max heap or ``heap`` is
    None or empty."""
    args = (jvm_args or "").split()
    if not heap or any(a.startswith(("-Xmx", "-XX:MaxHeapSize")) for a in args):
        return jvm_args
    return " ".join([*args, f"-Xmx{heap}"])


C1_ONLY = jvm.C1_ONLY
_JIT_OPTIONS = ("-XX:TieredStopAtLevel", "-XX:-TieredCompilation", "-XX:+TieredCompilation")


def jvm_args_with_jit(jvm_args: str | None, jit: JitCompiler) -> str | None:
    """``JVM_ARGS`` with the option that makes ``jit`` so (C1 only: ``C1_ONLY``; tiered: the
    JVM's default, nothing), unless it already chooses the compilers itself.

    Why C1 by default: at 2,000 trades/s after a warm-up of 300,000, C2 still compiled on ~0.3-0.5
    of the 2 cores through the timed phase, and the job's outputs queued behind it (bars p99
    579-8,327 ms in the low-latency profile, 68-85 ms with C1 only; docs/benchmarks.md)."""
    args = (jvm_args or "").split()
    if not jvm.jit_options(jit) or any(a.startswith(_JIT_OPTIONS) for a in args):
        return jvm_args
    return " ".join([*args, *jvm.jit_options(jit)])


PARALLEL_GC = ("-XX:+UseParallelGC", "-XX:MetaspaceSize=256m")
"""The Parallel collector, and a first class-metadata threshold above what the job's JVM loads
while it starts (the JVM's default, ~21 MB, made the Parallel collector stop the JVM for two full
collections of 70-135 ms while the job deployed; G1 meets the same threshold concurrently)."""


def jvm_args_with_gc(jvm_args: str | None, gc: GarbageCollector) -> str | None:
    """``JVM_ARGS`` with the options that make ``gc`` so (``PARALLEL_GC``; G1: the JVM's default,
    nothing), unless it already chooses a collector itself.

    Why Parallel by default: in alternated runs it took the job's CPU down ~7 % at 5,000 trades/s
    (no G1 write barrier on every store of a new object into the rows Flink reuses: 6-13 % of the
    source's task thread), with young pauses of 1-5 ms every ~4.5 s against G1's 3-8 ms every ~2 s
    (docs/benchmarks.md)."""
    args = (jvm_args or "").split()
    if gc is not GarbageCollector.PARALLEL or any(
        a.startswith("-XX:+Use") and a.endswith("GC") for a in args
    ):
        return jvm_args
    return " ".join([*args, *PARALLEL_GC])


def jvm_args_with_tmpdir(jvm_args: str | None) -> str:
    """``JVM_ARGS`` with ``-Djava.io.tmpdir`` set to this process's own folder
    (``jvm.process_tmpdir``, which also removes the folders of gone processes), unless it sets
    one already."""
    args = (jvm_args or "").split()
    if any(a.startswith("-Djava.io.tmpdir=") for a in args):
        return " ".join(args)
    return " ".join([*args, f"-Djava.io.tmpdir={jvm.process_tmpdir()}"])


def _start_gateway(
    heap: str | None,
    jit: JitCompiler = JitCompiler.C1,
    gc: GarbageCollector = GarbageCollector.PARALLEL,
) -> None:
    """Start pyflink's gateway JVM (it runs the local MiniCluster) with ``-Xmx<heap>``, the JIT
    compilers ``jit``, the garbage collector ``gc``, the class-data archive of ``infra.cds``
    (when there is one for it) and a temporary folder of its own (``jvm_args_with_tmpdir``) on
    the ``JVM_ARGS`` pyflink passes to it, and the job's jars on its class path
    (``jvm.gateway_class_path``). Both variables are restored afterwards, so no other JVM this
    process starts inherits them."""
    if java_gateway._gateway is not None:  # already started: too late to bound it
        return
    names = ("JVM_ARGS", jvm.GATEWAY_CLASS_PATH_ENV)
    before = {name: os.environ.get(name) for name in names}
    bounded = jvm_args_with_gc(
        jvm_args_with_jit(jvm_args_with_heap(before["JVM_ARGS"], heap), jit), gc
    )
    if not cds.names_archive(bounded):  # the set-up's class-data archive, when it matches
        bounded = " ".join([bounded or "", *cds.flags(cds.GATEWAY)]).strip() or None
    os.environ["JVM_ARGS"] = jvm_args_with_tmpdir(bounded)
    os.environ[jvm.GATEWAY_CLASS_PATH_ENV] = jvm.gateway_class_path(
        before[jvm.GATEWAY_CLASS_PATH_ENV]
    )
    try:
        get_gateway()
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def shipped_jars(options: JobOptions) -> list[Path]:
    """The job's jars it ships (``pipeline.jars``): all of them to a cluster; to the local
    MiniCluster only those missing from the gateway JVM's class path (as when something else
    started the gateway), since a jar on both would have its classes loaded again, from the blob
    store, by the job's user-code class loader (``jvm.gateway_class_path``)."""
    jars = jvm.job_jars()
    if options.jobmanager is not None:
        return jars
    system = get_gateway().jvm.java.lang.System
    on_path = {
        os.path.realpath(entry) for entry in system.getProperty("java.class.path").split(os.pathsep)
    }
    return [jar for jar in jars if os.path.realpath(jar) not in on_path]


def environment(options: JobOptions) -> StreamExecutionEnvironment:
    """A configured execution environment (a local MiniCluster unless submitted to a cluster)."""
    jvm.ensure_jars()
    os.environ["PYTHONPATH"] = embedded.python_path()  # read when the gateway JVM starts
    _start_gateway(options.heap, options.jit, options.gc)
    cwd = str(Path.cwd())
    if cwd not in sys.path:  # the console script does not put it there, ``python -m`` does
        sys.path.append(cwd)
    conf = Configuration()
    shipped = shipped_jars(options)
    if shipped:
        conf.set_string("pipeline.jars", ";".join(p.resolve().as_uri() for p in shipped))
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.execution-mode", "thread" if options.thread_mode else "process")
    conf.set_string("pipeline.object-reuse", "true")
    conf.set_string("pipeline.name", options.name)
    if options.restart_attempts > 0:
        conf.set_string("restart-strategy.type", "fixed-delay")
        conf.set_string("restart-strategy.fixed-delay.attempts", str(options.restart_attempts))
    else:
        conf.set_string("restart-strategy.type", "none")
    conf.set_string("restart-strategy.fixed-delay.delay", "2 s")
    conf.set_string("execution.checkpointing.interval", f"{options.checkpoint_interval_ms} ms")
    conf.set_string(
        "execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION"
    )
    conf.set_string("execution.checkpointing.num-retained", "3")
    # aligned barriers (Flink's default, kept): BundledBarOperator writes its states when it
    # reads the checkpoint markers sent ahead of each barrier, which an unaligned one overtakes
    conf.set_string("execution.checkpointing.unaligned.enabled", "false")
    for key, value in profile_conf(options.latency_profile, options.thread_mode).items():
        conf.set_string(key, value)
    if options.checkpoint_dir is not None:
        options.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        conf.set_string("execution.checkpointing.dir", options.checkpoint_dir.resolve().as_uri())
    if options.restore_from is not None:
        where = options.restore_from
        uri = where if isinstance(where, str) else where.resolve().as_uri()
        conf.set_string("execution.state-recovery.path", uri)
    if options.thread_mode:
        embedded.register_without_init()  # no Beam in the client: it runs no worker
    with _worker_mode("process" if options.thread_mode else None):
        if options.jobmanager is not None:
            env = _remote_environment(conf, options.jobmanager)
        else:
            env = StreamExecutionEnvironment.get_execution_environment(conf)
        env.set_parallelism(options.parallelism)
    return env


WORKER_MODE_ENV = "_python_worker_execution_mode"
"""What pyflink's environments read when they are made: unset, each starts a loopback server for
Python workers in the client (a gRPC server, and the import of Apache Beam: ~2 s on this machine)
whenever the job runs in a local MiniCluster; ``process`` starts none."""


@contextlib.contextmanager
def _worker_mode(mode: str | None) -> Iterator[None]:
    """``WORKER_MODE_ENV`` set to ``mode`` while the environments are made (unless the caller set
    it already). In thread mode the Python functions run inside the JVM and no worker ever
    connects to the loopback server, so the job skips it (``process``); in process mode the
    MiniCluster's workers need it, and pyflink's default stands."""
    if mode is None or WORKER_MODE_ENV in os.environ:
        yield
        return
    os.environ[WORKER_MODE_ENV] = mode
    try:
        yield
    finally:
        os.environ.pop(WORKER_MODE_ENV, None)


def _remote_environment(conf: Configuration, jobmanager: str) -> StreamExecutionEnvironment:
    """Target a running cluster's REST endpoint instead of an in-process MiniCluster.

    The job graph and the connector and UDF jars (``pipeline.jars``) are uploaded with the job.
    flinktrade itself and its Python dependencies must already be importable on the TaskManagers:
    the local session cluster puts this source tree and venv on their ``PYTHONPATH``; a remote one
    needs them on its image (see docs/scaling.md). The source is deliberately not shipped per job
    (``python.files``): in thread mode a TaskManager keeps one Python interpreter for all its jobs,
    so the first job's copy of the package stays imported after that copy is deleted, and a later
    job then fails with ``No module named 'flinktrade.pipeline.job'``.
    """
    host, _, port = jobmanager.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--jobmanager must be host:port, not {jobmanager!r}")
    conf.set_string("execution.target", "remote")
    conf.set_string("execution.attached", "true")  # execute() waits; execute_async() does not
    conf.set_string("rest.address", host)
    conf.set_string("rest.port", port)
    # TaskManagers come and go on a cluster: keep retrying with back-off instead of giving up
    # after three quick attempts while the lost TaskManager's slots are still being released.
    conf.set_string("restart-strategy.type", "exponential-delay")
    conf.set_string("restart-strategy.exponential-delay.initial-backoff", "1 s")
    conf.set_string("restart-strategy.exponential-delay.max-backoff", "10 s")
    conf.set_string("restart-strategy.exponential-delay.attempts-before-reset-backoff", "20")
    # getExecutionEnvironment() in a plain Python process always builds a local environment;
    # the environment's own constructor honours execution.target.
    j_env_class = (
        get_gateway().jvm.org.apache.flink.streaming.api.environment.StreamExecutionEnvironment
    )
    return StreamExecutionEnvironment(j_env_class(conf._j_configuration))


@contextlib.contextmanager
def _java_types_converted_once() -> Iterator[None]:
    """While it lasts, PyFlink converts each distinct Java type back to its own once.

    Every ``filter`` and ``key_by`` asks for its input's type as PyFlink's ``TypeInformation``
    (``typeinfo._from_java_type``), which tests the Java type against each kind it knows, field
    by field, one py4j round trip a test: ~250 round trips for a row of a dozen fields, ~1,500 of
    the build's ~3,800 (docs/benchmarks.md, session 21). A Java type is known here by its class
    and its ``toString`` (which spells every field's name and type): two round trips."""
    from pyflink.common import typeinfo

    original = typeinfo._from_java_type
    converted: dict[tuple[str, str], Any] = {}

    def once(j_type_info: Any) -> Any:
        key = (str(j_type_info.getClass().getName()), str(j_type_info.toString()))
        found = converted.get(key)
        if found is None:
            found = converted[key] = original(j_type_info)
        return found

    typeinfo._from_java_type = once
    try:
        yield
    finally:
        typeinfo._from_java_type = original


def build(env: StreamExecutionEnvironment, io: JobIO, options: JobOptions) -> None:
    """Register the whole job on ``env``; ``execute`` it afterwards."""
    with _java_types_converted_once():
        _build(env, io, options)


def kafka_clients(io: JobIO, options: JobOptions) -> connectors.KafkaClients:
    """The Kafka settings every source and sink of the job is built with."""
    return connectors.KafkaClients(
        bootstrap_servers=io.bootstrap_servers,
        group_id=io.group_id,
        bounded=io.bounded,
        from_earliest=io.from_earliest,
        exactly_once=options.delivery is Delivery.EXACTLY_ONCE,
        transactional_id_prefix=io.group_id,
        linger_ms=0 if options.latency_profile is LatencyProfile.LOW else 5,
        fetch=SOURCE_FETCH[options.latency_profile],
        properties=options.kafka_properties,
    )


def _build(env: StreamExecutionEnvironment, io: JobIO, options: JobOptions) -> None:
    SymbolModel(options.strategies, options.analytics)  # fail fast on bad strategy config
    kafka = kafka_clients(io, options)
    j_env = env._j_stream_execution_environment
    udf = get_gateway().jvm.io.flinktrade.udf
    # An idle source stops holding the watermark back. In a bounded run every partition ends (an
    # empty one at once) and none is ever waited on for ever, while a side input merely slow to
    # start would see the trades' end-of-input watermark pass all of its records: no idleness.
    side_idle = None if io.bounded else options.side_idle_timeout_ms
    trade_idle = None if io.bounded else options.idle_timeout_ms

    # A job with neither news nor provider bars takes its bars in bundles (below).
    bundled = not io.news and not io.bars
    buckets = options.bar_buckets or options.parallelism
    large_trade = options.analytics.large_trade_size if options.analytics.alerts else None
    records = trade_records(j_env, kafka, io.trades, options.out_of_orderness_ms, trade_idle)
    trades = trade_path(records, options.parallelism, buckets, bundled, large_trade)
    bars = None if bundled else trades.bars
    deadletter_topic = io.deadletter

    def dead_letters(decoded: DataStream) -> DataStream:
        """The dead letters a Python decoder (``BarDecoder``, ``NewsScorer``) sent as ``dead``
        rows, as output rows."""
        return decoded.filter(lambda row: row["kind"] == "dead").map(
            lambda row: Row(deadletter_topic, None, row["text"].encode(), row["ts"]),
            output_type=OUTPUT_ROW_TYPE,
        )

    # Outputs beside the analytics operator's, all OUTPUT_ROW_TYPE rows: the trades the parse
    # refused and its large-trade alerts (made in Java, chained behind it), and the side inputs'
    # dead letters.
    output_type = OUTPUT_ROW_TYPE.get_java_type_info()
    refused = trades.parsed.getSideOutput(udf.ParseTrades.DEAD)
    aside = DataStream(
        refused.map(udf.DeadLetters(io.deadletter, io.trades), output_type).name("DeadLetters")
    )
    if large_trade is not None:
        large = trades.parsed.getSideOutput(udf.ParseTrades.LARGE)
        alerts = large.map(udf.LargeTradeAlerts(io.alerts, large_trade), output_type)
        aside = aside.union(DataStream(alerts.name("LargeTradeAlerts")))
    if io.bars:
        assert bars is not None
        provider = DataStream(
            kafka_source(
                j_env,
                kafka,
                io.bars,
                udf.RawRecords.bars(),
                PROVIDER_BARS_SOURCE_NAME,
                options.out_of_orderness_ms,
                side_idle,
                event_time=udf.RawRecords.eventTime(),
            )
        ).flat_map(BarDecoder(io.bars), output_type=BAR_ROW_TYPE)
        bars = bars.union(provider)
        aside = aside.union(dead_letters(bars))
        bars = bars.filter(lambda row: row["kind"] == "bar")
    topic_of = {
        "AnalyticsBar": io.analytics_bars,
        "Signal": io.signals,
        "Alert": io.alerts,
        "DeadLetter": io.deadletter,
    }
    sources = {"trades": io.trades, "bars": io.bars or io.trades, "news": io.news or io.trades}
    operator = AnalyticsOperator(options.strategies, options.analytics, topic_of, sources)
    if io.news:
        assert bars is not None
        news = DataStream(
            kafka_source(
                j_env,
                kafka,
                io.news,
                udf.RawRecords.news(),
                NEWS_SOURCE_NAME,
                options.out_of_orderness_ms,
                side_idle,
            )
        ).flat_map(NewsScorer(io.news), output_type=NEWS_ROW_TYPE)
        aside = aside.union(dead_letters(news))
        stories = news.filter(lambda row: row["kind"] == "news")
        outputs = ConnectedStreams(
            keyed_in_java(bars, 1, Types.STRING()),  # a bar's symbol
            # by position: rows of a Python map may arrive without their field names
            stories.key_by(lambda row: row[1], key_type=Types.STRING()),
        ).process(operator, output_type=OUTPUT_ROW_TYPE)
    elif bars is not None:
        outputs = keyed_in_java(bars, 1, Types.STRING()).process(
            BarAnalyticsOperator(operator), output_type=OUTPUT_ROW_TYPE
        )
    else:  # the trades' bars are the only input: one Python call per minute and bucket
        lots = trades.bars.key_by(lambda row: row[0], key_type=Types.INT()).process(
            BundledBarOperator(operator, buckets), output_type=OUTPUT_LOT_TYPE
        )
        unpacked = lots._j_data_stream.flatMap(  # in Java, chained behind the operator
            udf.OutputLots(), output_type
        )
        outputs = DataStream(unpacked.name("OutputLots"))
    output_sink(kafka, outputs.union(aside), topic_of.values())


def keyed_in_java(stream: DataStream, index: int, key_type: TypeInformation) -> KeyedStream:
    """``stream.key_by(lambda row: row[index], key_type)`` with each row's key put in front of it
    in Java (``KeyedRows``, jvm/udf) instead of PyFlink's Python ``AddKey`` function, which cost
    every bar a crossing into Python and back (~9 % of a news job's Python in a catch-up,
    docs/benchmarks.md, session 32). The keyed Python operator behind it gets the same
    ``(key, row)`` rows, keyed by field 0 with PyFlink's own ``KeyByKeySelector``."""
    gateway = get_gateway()
    j_stream = stream._j_data_stream
    row_type = _from_java_type(j_stream.getTransformation().getOutputType())
    with_key = j_stream.map(
        gateway.jvm.io.flinktrade.udf.KeyedRows(index),
        Types.ROW([key_type, row_type]).get_java_type_info(),
    ).name("KeyedRows")
    j_keyed = with_key.keyBy(
        gateway.jvm.KeyByKeySelector(), Types.ROW([key_type]).get_java_type_info()
    )
    return KeyedStream(j_keyed, row_type, stream)


@dataclass(frozen=True)
class TradePath:
    parsed: Any
    """``ParseTrades``' output, the valid, on-time trades (a Java ``DataStream``; its side outputs
    ``ParseTrades.DEAD`` and ``ParseTrades.LARGE``)."""
    bars: DataStream
    """Bundles (``(bucket, lines)``) or, not bundled, one ``BAR_ROW_TYPE`` row per bar."""


TRADE_SOURCE_NAME = "trades_raw"
"""The trades' Kafka source in the job's plan (``Source: trades_raw``), as its SQL table was
named."""
NEWS_SOURCE_NAME = "news_raw"
"""The news' Kafka source in the job's plan."""
PROVIDER_BARS_SOURCE_NAME = "provider_bars_raw"
"""The provider bars' Kafka source in the job's plan."""


def kafka_source(
    j_env: Any,
    kafka: connectors.KafkaClients,
    topic: str,
    deserializer: Any,
    name: str,
    out_of_orderness_ms: int,
    idle_timeout_ms: int | None,
    event_time: Any = None,
) -> Any:
    """``topic``'s records as a Java ``DataStream`` of what ``deserializer`` (a Java
    ``KafkaRecordDeserializationSchema``) makes of them: a DataStream ``KafkaSource`` on the Java
    environment ``j_env`` with the job's consumer settings (``KafkaClients.consumer_properties``:
    group, isolation, fetch batching, security), starting at the earliest offset, or at the group's
    committed offsets and the earliest for a new group, bounded at the latest offsets of the start
    for a bounded run. Event time is the record timestamp, or what the Java timestamp assigner
    ``event_time`` reads from a record; the watermark lags the newest by ``out_of_orderness_ms``
    (``LaggingWatermarks``: a record exactly that far behind is on time), per partition, and a
    partition silent for ``idle_timeout_ms`` (None or 0: never) stops holding it back."""
    jvm = get_gateway().jvm
    source = jvm.org.apache.flink.connector.kafka.source
    offsets = source.enumerator.initializer.OffsetsInitializer
    reset = jvm.org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.OffsetResetStrategy
    topics = jvm.java.util.ArrayList()
    topics.add(topic)
    builder = (
        source.KafkaSource.builder()
        .setBootstrapServers(kafka.bootstrap_servers)
        .setGroupId(kafka.group_id)
        .setTopics(topics)
        .setProperties(_java_properties(kafka.consumer_properties()))
        .setStartingOffsets(
            offsets.earliest() if kafka.from_earliest else offsets.committedOffsets(reset.EARLIEST)
        )
        .setDeserializer(deserializer)
    )
    if kafka.bounded:
        builder = builder.setBounded(offsets.latest())
    watermarks = jvm.io.flinktrade.udf.LaggingWatermarks(out_of_orderness_ms)
    if event_time is not None:
        watermarks = watermarks.withTimestampAssigner(event_time)
    if idle_timeout_ms is not None and idle_timeout_ms > 0:
        watermarks = watermarks.withIdleness(jvm.java.time.Duration.ofMillis(idle_timeout_ms))
    return j_env.fromSource(builder.build(), watermarks, name)


def trade_records(
    j_env: Any,
    kafka: connectors.KafkaClients,
    topic: str,
    out_of_orderness_ms: int,
    idle_timeout_ms: int | None,
) -> Any:
    """The trades topic's records (``kafka_source``) as a Java ``DataStream`` of
    ``TradeRecords``' tuples ``(value, partition, offset, record timestamp)``, the record
    timestamp their event time.

    This replaced a SQL table read through ``toDataStream``: each record became an internal row,
    its metadata appended and the watermark expression evaluated on it, ~0.4 us a trade of the
    source task's ~2.3 (docs/benchmarks.md, session 23's frame profile)."""
    udf = get_gateway().jvm.io.flinktrade.udf
    return kafka_source(
        j_env, kafka, topic, udf.TradeRecords(), TRADE_SOURCE_NAME, out_of_orderness_ms,
        idle_timeout_ms,
    )  # fmt: skip


def trade_path(
    records: Any,
    parallelism: int,
    buckets: int,
    bundled: bool,
    large_trade: int | None,
) -> TradePath:
    """The trades topic's records (``trade_records``) to 1-minute bars, in two Java functions on
    the DataStream API (``jvm/udf``): ``ParseTrades`` parses and validates each record, checks it
    against the watermark and finds its bucket, in the source's task; ``MinuteBars`` keeps each
    bucket's open bars and sends a minute's on when the watermark passes its end. What
    ``ParseTrades`` refuses and the trades of at least ``large_trade`` shares leave through its
    side outputs (``TradePath.parsed``).

    At parallelism 1 ``MinuteBars`` is chained to it: the stream is declared keyed by bucket as it
    is (every key group is the one task's), so no trade crosses to another task; above, the trades
    are partitioned by bucket.

    This replaced SQL's chain (a table function's parse, the late check's projection, a round trip
    through a DataStream shared by the dead-letter and bar branches, the window's slicing and the
    hand-off to its task), which held the source's task at ~11 us a trade (docs/benchmarks.md,
    session 22)."""
    gateway = get_gateway()
    udf = gateway.jvm.io.flinktrade.udf
    parse = udf.ParseTrades(buckets, large_trade or 0)
    parsed = records.process(parse, udf.ParseTrades.TRADE_TYPE).name("ParseTrades")
    bucket_of = udf.TradeBucket()
    if parallelism == 1:
        utils = gateway.jvm.org.apache.flink.streaming.api.datastream.DataStreamUtils
        keyed = utils.reinterpretAsKeyedStream(parsed, bucket_of)
    else:
        keyed = parsed.keyBy(bucket_of)
    bar_type = udf.MinuteBars.BUNDLE_TYPE if bundled else BAR_ROW_TYPE.get_java_type_info()
    # bundled, with a checkpoint marker per bucket ahead of each barrier (BundledBarOperator)
    bars = keyed.transform("MinuteBars", bar_type, udf.MinuteBars.operator(bundled, buckets))
    return TradePath(parsed, DataStream(bars))


OUTPUT_SINK_NAME = "outputs_sink"
"""The outputs' Kafka sink in the job's plan, as its SQL table was named."""


def output_sink(kafka: connectors.KafkaClients, outputs: DataStream, topics: Iterable[str]) -> None:
    """Write ``outputs`` (``OUTPUT_ROW_TYPE`` rows: topic, key or none, payload, timestamp, each
    payload already encoded) to Kafka: a DataStream ``KafkaSink`` whose serializer
    (``OutputRecords``, ``jvm/udf``) takes each record's topic, key, value and timestamp from the
    row as it is, with the job's producer settings and delivery guarantee
    (``KafkaClients.producer_properties``, transactional ids ``<prefix>-outputs``). A row naming a
    topic not in ``topics`` fails the job (a bug, not a bad record).

    This replaced a SQL table sink read from the stream by ``fromDataStream``: each row became an
    internal row, a projection converted its timestamp and the table's raw formats copied key and
    value again (docs/benchmarks.md, session 26)."""
    jvm = get_gateway().jvm
    kafka_sink = jvm.org.apache.flink.connector.kafka.sink
    guarantee = jvm.org.apache.flink.connector.base.DeliveryGuarantee
    names = jvm.java.util.HashSet()
    for topic in topics:
        names.add(topic)
    builder = (
        kafka_sink.KafkaSink.builder()
        .setKafkaProducerConfig(_java_properties(kafka.producer_properties()))  # servers too
        .setRecordSerializer(jvm.io.flinktrade.udf.OutputRecords(names))
    )
    if kafka.exactly_once:
        builder = builder.setDeliveryGuarantee(guarantee.EXACTLY_ONCE).setTransactionalIdPrefix(
            kafka.transactional_id("outputs")
        )
    else:
        builder = builder.setDeliveryGuarantee(guarantee.AT_LEAST_ONCE)
    outputs._j_data_stream.sinkTo(builder.build()).name(OUTPUT_SINK_NAME)


def _java_properties(values: dict[str, str]) -> Any:
    """``values`` as a ``java.util.Properties`` (a Kafka client's settings for a connector)."""
    props = get_gateway().jvm.java.util.Properties()
    for key, value in values.items():
        props.setProperty(key, value)
    return props


def prepare(io: JobIO, options: JobOptions) -> StreamExecutionEnvironment:
    """The job's environment with the whole job registered on it, not started yet (``execute``
    or ``execute_async`` it). Needs no broker: the topics are first read when the job runs. A
    local thread-mode job's embedded Python starts meanwhile (``warm_up_embedded_python``)."""
    env = environment(options)
    build(env, io, options)
    if options.thread_mode and options.jobmanager is None:
        warm_up_embedded_python(io, options)
    return env


EMBEDDED_RUNTIME = (
    "pyflink.fn_execution.embedded.operation_utils",
    "pyflink.fn_execution.datastream.embedded.operations",
)
"""PyFlink's modules a thread-mode Python operator imports as it initialises."""


def warm_up_embedded_python(io: JobIO, options: JobOptions) -> Any:
    """Start the Python interpreter the gateway JVM embeds for the job's thread-mode operators,
    and import in it what they import (PyFlink's embedded runtime, ``pipeline.operator`` with
    the events, settings and analytics core, the strategies' plugin modules, the news scorer's
    lexicon), on a Java thread (``EmbeddedPython``, jvm/udf): returns at once. The operators'
    interpreters share that interpreter's modules, so the tasks' start no longer pays for the
    imports (2-4 s of the demo's, docs/benchmarks.md, session 33). Best effort: what fails here
    is logged by the JVM, and the operators import (and report) on their own. Returns the Java
    thread doing it."""
    modules = [*EMBEDDED_RUNTIME, "flinktrade.pipeline.operator"]
    modules += [s.name.partition(":")[0] for s in options.strategies if ":" in s.name]
    code = [
        "import importlib",
        f"for name in {list(dict.fromkeys(modules))!r}:",
        "    try:",
        "        importlib.import_module(name)",
        "    except Exception:",  # a plugin's own error: its operator reports it
        "        pass",
    ]
    if io.news:
        code += ["from flinktrade import sentiment", "sentiment.score('warm up')"]
    udf = get_gateway().jvm.io.flinktrade.udf
    return udf.EmbeddedPython.warmUp(sys.executable, "\n".join(code))


def run(io: JobIO, options: JobOptions, wait: bool = True) -> object:
    """Build and start the job; with ``wait`` block until it ends (bounded input or failure).

    Returns the Flink ``JobClient`` (when not waiting) or the ``JobExecutionResult``.
    """
    env = prepare(io, options)
    log.info(
        "starting job %s: %s, %s -> %s, %s, %s (parallelism %d, %s)",
        options.name,
        io.trades,
        io.news,
        io.analytics_bars,
        io.signals,
        io.alerts,
        options.parallelism,
        options.delivery.value,
    )
    if wait:
        return env.execute(options.name)
    return env.execute_async(options.name)
