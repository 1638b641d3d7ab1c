"""The real job in a Flink MiniCluster over a known simulated input, checked against the reference.

The job runs once for the module (start-up costs seconds); the tests read what it wrote.
Indicators are checked against TA-Lib in the unit tests; here against the plain reference SMA, to
1e-9 (the job sums floats, the reference exact decimals).
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import get_j_env_configuration

from flinktrade import bus, events, sentiment
from flinktrade.config import AnalyticsSettings, KafkaSettings, LatencyProfile
from flinktrade.infra import jvm
from flinktrade.ingest.simulator import MarketSimulator, RawTrade
from flinktrade.pipeline.analytics import StrategySpec
from flinktrade.pipeline.job import (
    C1_ONLY,
    EMBEDDED_RUNTIME,
    PARALLEL_GC,
    SOURCE_FETCH,
    JobIO,
    JobOptions,
    build,
    environment,
    kafka_clients,
    run,
)
from flinktrade.testing import reference

pytestmark = pytest.mark.integration

SYMBOLS = 6
TRADES = 60_000
BAD_RECORDS: list[tuple[bytes, str]] = [
    (b"not json at all", "malformed JSON"),
    (b'{"id":"b1","symbol":"AAPL","price":-3.5,"size":1,"ts":%(ts)d}', "price out of range"),
    (b'{"id":"b2","symbol":"AAPL","price":"NaN","size":1,"ts":%(ts)d}', "price is not a number"),
    (b'{"id":"b3","symbol":"AAPL","price":10.5,"size":0,"ts":%(ts)d}', "size must be positive"),
    (b'{"id":"b4","price":10.5,"size":3,"ts":%(ts)d}', "missing field: symbol"),
    (b'{"id":"b5","symbol":"AAPL","price":10.5,"size":3,"ts":1}', "differs from the record"),
    (b"[1, 2, 3]", "not a JSON object"),
]
NEWS = [  # (minutes after the first trade, symbol(s), headline)
    (3, ["AAPL"], "Apple beats estimates and raises guidance on record iPhone demand"),
    (9, ["AAPL", "MSFT"], "Regulators open antitrust lawsuit against Apple and Microsoft"),
    (15, ["MSFT"], "Microsoft shares steady ahead of conference"),
]
BAD_NEWS = b'{"id": "n-bad", "headline": 42, "symbols": ["AAPL"], "ts": 1704205800000}'
PROVIDER_BARS = [  # daily bars from a provider, analysed as they are
    events.Bar(
        symbol="PRV",
        ts=1_704_153_600_000 + day * 86_400_000,
        open=Decimal(f"{100 + day}.25"),
        high=Decimal(f"{102 + day}.5"),
        low=Decimal(f"{99 + day}.125"),
        close=Decimal(f"{101 + day}.75"),
        volume=10_000 + day,
        interval_ms=86_400_000,
    )
    for day in range(25)
]
BAD_BAR = b'{"symbol": "PRV", "open": "x", "ts": 1704153600000}'
LARGE_TRADE = 495  # ~1% of the simulator's trades
GAP_PCT = 0.08  # low, so that the simulated minute bars open away from the last close sometimes
STRATEGIES = (
    StrategySpec("sma_cross", {"fast": 5, "slow": 12, "name": "sma_5_12"}),
    StrategySpec("sma_cross", {"fast": 3, "slow": 8, "name": "sma_3_8"}, frozenset({"AAPL"})),
)


@dataclass
class Run:
    trades: list[RawTrade]
    bars: list[events.AnalyticsBar]
    signals: list[events.Signal]
    alerts: list[events.Alert]
    deadletters: list[events.DeadLetter]
    news: list[events.NewsItem]
    names: dict[str, str]
    plan: dict[str, int] | None = None
    """Operator name -> parallelism in the job's execution plan (parallel run only)."""


@pytest.fixture(scope="module")
def job_run(kafka, tmp_path_factory: pytest.TempPathFactory) -> Run:  # type: ignore[no-untyped-def]
    servers = kafka.bootstrap_servers
    suffix = tmp_path_factory.mktemp("job").name
    names = {
        "trades": f"trades.{suffix}",
        "news": f"news.{suffix}",
        "bars": f"pbars.{suffix}",
        "analytics_bars": f"bars.{suffix}",
        "signals": f"signals.{suffix}",
        "alerts": f"alerts.{suffix}",
        "deadletter": f"dl.{suffix}",
    }
    bus.ensure_topics(KafkaSettings(bootstrap_servers=servers, partitions=4), names.values())
    trades = MarketSimulator(symbols=SYMBOLS, seed=42, gap_ms=50, news=False).trades(TRADES)
    producer = bus.EventProducer(servers)
    for i, t in enumerate(trades):
        producer.send_raw(names["trades"], t.to_json(t.ts), t.symbol.encode(), t.ts)
        if i == TRADES // 2:  # bad records in the middle of the stream must not disturb it
            for payload, _reason in BAD_RECORDS:
                producer.send_raw(names["trades"], payload % {b"ts": t.ts}, b"AAPL", t.ts)
    t0 = trades[0].ts
    news = [
        events.NewsItem(id=f"n{i}", headline=headline, symbols=symbols, ts=t0 + minutes * 60_000)
        for i, (minutes, symbols, headline) in enumerate(NEWS)
    ]
    for item in news:
        producer.send(item, names["news"])
    producer.send_raw(names["news"], BAD_NEWS, b"AAPL", t0)
    for bar in PROVIDER_BARS:
        producer.send(bar, names["bars"])
    producer.send_raw(names["bars"], BAD_BAR, b"PRV", t0)
    producer.flush()

    io = JobIO(
        bootstrap_servers=servers, bounded=True, from_earliest=True, group_id=suffix, **names
    )
    checkpoints = Path(str(tmp_path_factory.mktemp("checkpoints")))
    run(
        io,
        JobOptions(
            strategies=STRATEGIES,
            checkpoint_dir=checkpoints,
            checkpoint_interval_ms=2000,
            analytics=AnalyticsSettings(gap_pct=GAP_PCT, large_trade_size=LARGE_TRADE),
        ),
    )
    return Run(
        trades=trades,
        bars=bus.decode_all(servers, names["analytics_bars"], events.AnalyticsBar),
        signals=bus.decode_all(servers, names["signals"], events.Signal),
        alerts=bus.decode_all(servers, names["alerts"], events.Alert),
        deadletters=bus.decode_all(servers, names["deadletter"], events.DeadLetter),
        news=news,
        names=names,
    )


def _parallel_run(
    kafka: Any, job_run: Run, tmp_path: Path, suffix: str, trades_only: bool = False
) -> Run:
    """``job_run``'s input through the job at parallelism 2 (2 source readers over 4 partitions),
    into output topics of its own; ``trades_only``: without the news and provider-bar inputs."""
    servers = kafka.bootstrap_servers
    names: dict[str, Any] = dict(job_run.names)
    for key in ("analytics_bars", "signals", "alerts", "deadletter"):
        names[key] = f"{names[key]}.{suffix}"
    bus.ensure_topics(
        KafkaSettings(bootstrap_servers=servers, partitions=4),
        [names[k] for k in ("analytics_bars", "signals", "alerts", "deadletter")],
    )
    if trades_only:
        names["news"] = names["bars"] = None
    io = JobIO(
        bootstrap_servers=servers,
        bounded=True,
        from_earliest=True,
        group_id=f"{names['trades']}.{suffix}",
        **names,
    )
    options = JobOptions(
        parallelism=2,
        strategies=STRATEGIES,
        checkpoint_dir=tmp_path,
        analytics=AnalyticsSettings(gap_pct=GAP_PCT, large_trade_size=LARGE_TRADE),
    )
    env = environment(options)  # the plan of exactly this job, as run() builds it
    # thread mode: no loopback server for Python workers was started (none would connect to it)
    configured = get_j_env_configuration(env._j_stream_execution_environment)
    assert not configured.containsKey("python.loopback-server.address")
    # the job's jars are on the gateway JVM's own class path, so the local job ships none: its
    # classes are loaded once, by the JVM's class loader, from the class-data archive
    # (jvm.gateway_class_path), not from a per-job copy in the blob store
    system = get_gateway().jvm.java.lang.System
    class_path = system.getProperty("java.class.path").split(os.pathsep)
    assert {str(jar) for jar in jvm.job_jars()} <= set(class_path)
    assert not configured.containsKey("pipeline.jars")
    lang = get_gateway().jvm.java.lang
    parse = lang.Class.forName("io.flinktrade.udf.ParseTrades")
    assert parse.getClassLoader() == lang.ClassLoader.getSystemClassLoader()
    # the gateway JVM (the MiniCluster's) runs C1 only, the default ``jit``
    runtime = get_gateway().jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    assert C1_ONLY in list(runtime.getInputArguments())
    # ... and the Parallel collector, the default ``gc``
    assert set(PARALLEL_GC) <= set(runtime.getInputArguments())
    # ... and keeps its temporary files in this process's own folder
    tmpdir = Path(get_gateway().jvm.java.lang.System.getProperty("java.io.tmpdir"))
    assert tmpdir.name == str(os.getpid()) and tmpdir.parent.name.startswith("flinktrade-jvm-")
    # the default latency profile's shortened batching (DEFAULT_CONF)
    assert env.get_config().get_auto_watermark_interval() == 50
    assert env.get_buffer_timeout() == 10
    build(env, io, options)
    # ... and its sources' fetch batching (SOURCE_FETCH): in the consumer settings every
    # DataStream source of the job is built with (job.kafka_source)
    fetch = SOURCE_FETCH[LatencyProfile.DEFAULT]
    consumer = kafka_clients(io, options).consumer_properties()
    assert consumer["fetch.min.bytes"] == str(fetch.min_bytes)
    assert consumer["fetch.max.wait.ms"] == str(fetch.max_wait_ms)
    # ... and no table planner: the job is built on the DataStream API alone, so the JVM never
    # unpacked the planner's jar (~1.5 s of the job's start, docs/benchmarks.md, session 33)
    assert not list(tmpdir.glob("flink-table-planner_*.jar"))
    nodes = json.loads(env.get_execution_plan())["nodes"]
    plan = {f"{n['type']} #{n['id']}": int(n["parallelism"]) for n in nodes}
    run(io, options)
    return Run(
        plan=plan,
        trades=job_run.trades,
        bars=bus.decode_all(servers, names["analytics_bars"], events.AnalyticsBar),
        signals=bus.decode_all(servers, names["signals"], events.Signal),
        alerts=bus.decode_all(servers, names["alerts"], events.Alert),
        deadletters=bus.decode_all(servers, names["deadletter"], events.DeadLetter),
        news=[] if trades_only else job_run.news,
        names=names,
    )


@pytest.fixture(scope="module")
def parallel_run(kafka, job_run: Run, tmp_path_factory: pytest.TempPathFactory) -> Run:  # type: ignore[no-untyped-def]
    """The same input through the job at parallelism 2 (2 source readers over 4 partitions)."""
    return _parallel_run(kafka, job_run, Path(str(tmp_path_factory.mktemp("checkpoints-p2"))), "p2")


@pytest.fixture(scope="module")
def expected_bars(job_run: Run) -> list[reference.RefBar]:
    bars = reference.bars((t.symbol, t.price, t.size, t.ts) for t in job_run.trades)
    reference.add_sma(bars, [3, 5, 8, 12])
    return bars


@pytest.fixture(scope="module")
def trades_only_run(kafka, job_run: Run, tmp_path_factory: pytest.TempPathFactory) -> Run:  # type: ignore[no-untyped-def]
    """The same trades through a job without news or provider bars at parallelism 2: its bars
    reach Python in bundles, one per minute and bucket (two buckets, one per task)."""
    checkpoints = Path(str(tmp_path_factory.mktemp("checkpoints-t2")))
    return _parallel_run(kafka, job_run, checkpoints, "t2", trades_only=True)


def _assert_bars_equal_the_reference(
    bars: list[events.AnalyticsBar], expected_bars: list[reference.RefBar]
) -> None:
    got = sorted((b for b in bars if b.symbol != "PRV"), key=lambda b: (b.symbol, b.ts))
    assert len(got) == len(expected_bars)
    for bar, ref in zip(got, expected_bars, strict=True):
        assert (bar.symbol, bar.ts) == (ref.symbol, ref.ts)
        assert (bar.open, bar.high, bar.low, bar.close) == (ref.open, ref.high, ref.low, ref.close)
        assert bar.volume == ref.volume and bar.trades == ref.trades
        assert bar.vwap is not None and math.isclose(bar.vwap, ref.vwap, rel_tol=1e-12)
        for name in ("sma_3", "sma_5", "sma_8", "sma_12"):
            got_value, want = bar.indicators[name], ref.indicators[name]
            if want is None:
                assert got_value is None, (bar.symbol, bar.ts, name)
            else:
                assert got_value is not None, (bar.symbol, bar.ts, name)
                assert math.isclose(got_value, want, rel_tol=0, abs_tol=1e-9), (bar.symbol, name)


def test_bars_equal_the_reference(job_run: Run, expected_bars: list[reference.RefBar]) -> None:
    _assert_bars_equal_the_reference(job_run.bars, expected_bars)


def test_a_job_with_trades_only_bundles_its_bars_and_writes_the_reference_at_parallelism_2(
    job_run: Run, trades_only_run: Run, expected_bars: list[reference.RefBar]
) -> None:
    """Bars in bundles (``BundledBarOperator``, two buckets over two tasks): the same bars and
    indicators as the reference, the same signals as the job with every input (its strategies
    read no news), and the same dead letters for the bad trades."""
    plan = trades_only_run.plan
    assert plan is not None and set(plan.values()) == {2}, plan
    assert any("KEYED PROCESS" in name.upper() for name in plan), sorted(plan)
    _assert_bars_equal_the_reference(trades_only_run.bars, expected_bars)

    def content(items: list[Any]) -> list[str]:
        return sorted(e.model_dump_json(exclude={"ingest_ts"}) for e in items)

    assert content(trades_only_run.signals) == content(job_run.signals)
    trade_letters = [d for d in job_run.deadletters if d.source_topic == job_run.names["trades"]]
    assert content(trades_only_run.deadletters) == content(trade_letters)


def test_bars_are_keyed_and_timestamped_by_symbol_and_time(kafka, job_run: Run) -> None:  # type: ignore[no-untyped-def]
    assert all(isinstance(b.open, Decimal) for b in job_run.bars)
    assert {b.symbol for b in job_run.bars} == {t.symbol for t in job_run.trades} | {"PRV"}


def test_signals_equal_the_reference_exactly(
    job_run: Run, expected_bars: list[reference.RefBar]
) -> None:
    expected = {("sma_5_12", *s) for s in reference.sma_cross_signals(expected_bars, 5, 12)} | {
        ("sma_3_8", *s)
        for s in reference.sma_cross_signals([b for b in expected_bars if b.symbol == "AAPL"], 3, 8)
    }
    got = [(s.strategy, s.symbol, s.bar_ts, s.side.value) for s in job_run.signals]
    assert len(got) == len(set(got)), "duplicate signals"
    assert set(got) == expected
    assert len(expected) > 10


def test_signals_carry_ids_prices_and_triggering_indicators(
    job_run: Run, expected_bars: list[reference.RefBar]
) -> None:
    by_key = {(b.symbol, b.ts): b for b in expected_bars}
    for s in job_run.signals:
        ref = by_key[(s.symbol, s.bar_ts)]
        assert s.id == events.Signal.make_id(s.strategy, s.symbol, s.bar_ts)
        assert s.price == ref.close
        assert s.ts == s.bar_ts + 60_000
        names = {"sma_5_12": ("sma_5", "sma_12"), "sma_3_8": ("sma_3", "sma_8")}[s.strategy]
        assert set(s.indicators) == set(names)
        fast, slow = (s.indicators[n] for n in names)
        assert fast is not None and slow is not None
        assert (fast > slow) == (s.side is events.Side.BUY)


def test_bad_records_go_to_the_deadletter_with_reason_and_bytes(job_run: Run) -> None:
    trade_letters = [d for d in job_run.deadletters if d.source_topic.startswith("trades.")]
    assert len(trade_letters) == len(BAD_RECORDS)
    reasons = sorted(d.reason for d in trade_letters)
    for _payload, expected in BAD_RECORDS:
        assert any(expected in r for r in reasons), (expected, reasons)
    assert any(d.payload == "not json at all" for d in trade_letters)
    assert all(d.offset is not None and d.partition is not None for d in job_run.deadletters)
    news_letters = [d for d in job_run.deadletters if d.source_topic.startswith("news.")]
    assert [d.payload for d in news_letters] == [BAD_NEWS.decode()]
    assert "headline" in news_letters[0].reason


def test_news_sentiment_reaches_the_bars_at_full_precision(job_run: Run) -> None:
    """Each bar carries the score of the latest story about its symbol that came before its end."""
    checked = 0
    for bar in job_run.bars:
        end = bar.ts + bar.interval_ms
        before = [n for n in job_run.news if bar.symbol in n.symbols and n.ts < end]
        latest = max(before, key=lambda n: n.ts) if before else None
        want = sentiment.score(latest.headline, latest.summary) if latest else None
        assert bar.indicators["sentiment"] == want, (bar.symbol, bar.ts)
        if latest is not None:
            checked += 1
            assert bar.indicators["sentiment_avg"] is not None
    assert checked > 20
    scores = {sentiment.score(n.headline, n.summary) for n in job_run.news}
    assert len(scores) == len(job_run.news), "the headlines should score differently"


def test_price_gap_alerts_match_the_reference(
    job_run: Run, expected_bars: list[reference.RefBar]
) -> None:
    expected = set()
    for previous, bar in itertools.pairwise(expected_bars):
        if previous.symbol == bar.symbol:
            gap = abs(bar.open - previous.close) / previous.close * 100
            if gap >= Decimal(str(GAP_PCT)):
                expected.add((bar.symbol, bar.ts + 60_000))
    got = [(a.symbol, a.ts) for a in job_run.alerts if a.kind == "price_gap" and a.symbol != "PRV"]
    assert len(got) == len(set(got)), "duplicate alerts"
    assert set(got) == expected
    assert expected, "the input should have some gaps at this threshold"
    per_bar = [a for a in job_run.alerts if a.kind != "large_trade"]
    assert all(a.id == events.Alert.make_id(a.kind, a.symbol, a.ts) for a in per_bar)


def test_large_trades_raise_one_alert_each_per_trade(job_run: Run) -> None:
    large = [t for t in job_run.trades if t.size >= LARGE_TRADE]
    got = {a.id: a for a in job_run.alerts if a.kind == "large_trade"}
    assert large and len(got) == len(large)
    for t in large:
        alert = got[events.stable_id("alert", "large_trade", t.symbol, t.id)]
        assert (alert.symbol, alert.ts, alert.value, alert.threshold) == (
            t.symbol,
            t.ts,
            float(t.size),
            float(LARGE_TRADE),
        )
        assert alert.severity is events.Severity.WARNING  # critical from 2x: above the max size
        assert alert.message == f"Large trade: {t.size} at {t.price.normalize():f}"


def test_the_parallel_run_really_runs_every_operator_twice(parallel_run: Run) -> None:
    """Parallelism 2 is in effect where the next test claims it: both Kafka readers, the parsing,
    the windows, the Python operators and the sinks (none pinned to 1 by the planner)."""
    assert parallel_run.plan is not None
    assert any(name.startswith("Source: trades_raw") for name in parallel_run.plan)
    assert any(name.startswith("Keyed Co-Process") for name in parallel_run.plan)
    # the trade path's Java functions (``job.trade_path``), not SQL's chain
    assert any(name.startswith("ParseTrades") for name in parallel_run.plan), parallel_run.plan
    assert any(name.startswith("MinuteBars") for name in parallel_run.plan), parallel_run.plan
    # the outputs' DataStream Kafka sink (``job.output_sink``), not a SQL table's (``outputs_sink[n]``)
    sink = [name for name in parallel_run.plan if name.startswith("outputs_sink: Writer")]
    assert sink, parallel_run.plan
    # ... which also writes the refused trades and the large-trade alerts, made in Java, and the
    # side inputs come from DataStream sources: no SQL table, no planner (job._build)
    for name in (
        "DeadLetters",
        "LargeTradeAlerts",
        "Source: news_raw",
        "Source: provider_bars_raw",
    ):
        assert any(node.startswith(name) for node in parallel_run.plan), (name, parallel_run.plan)
    assert set(parallel_run.plan.values()) == {2}, parallel_run.plan


def test_parallelism_2_writes_what_parallelism_1_writes(job_run: Run, parallel_run: Run) -> None:
    def content(items: list[Any]) -> list[str]:
        return sorted(e.model_dump_json(exclude={"ingest_ts"}) for e in items)

    assert content(parallel_run.signals) == content(job_run.signals)
    assert content(parallel_run.bars) == content(job_run.bars)
    assert content(parallel_run.alerts) == content(job_run.alerts)
    assert len(parallel_run.deadletters) == len(job_run.deadletters)


def test_provider_bars_are_analysed_as_they_are(job_run: Run) -> None:
    got = sorted((b for b in job_run.bars if b.symbol == "PRV"), key=lambda b: b.ts)
    assert [(b.ts, b.open, b.high, b.low, b.close, b.volume, b.interval_ms) for b in got] == [
        (b.ts, b.open, b.high, b.low, b.close, b.volume, b.interval_ms) for b in PROVIDER_BARS
    ]
    closes = [float(b.close) for b in PROVIDER_BARS]
    assert got[18].indicators["sma_20"] is None
    assert math.isclose(got[19].indicators["sma_20"] or 0.0, sum(closes[:20]) / 20, abs_tol=1e-9)
    letters = [d for d in job_run.deadletters if d.source_topic.startswith("pbars.")]
    assert [d.payload for d in letters] == [BAD_BAR.decode()]


def test_the_minicluster_jvm_has_a_bounded_heap(job_run: Run) -> None:
    """``JobOptions.heap`` (1g by default) is the max heap of the JVM that ran the job, not the
    JVM's default of a quarter of the machine's memory (soak runs grew the job's RSS without
    bound)."""
    from pyflink.java_gateway import get_gateway

    max_heap = get_gateway().jvm.java.lang.Runtime.getRuntime().maxMemory()
    assert 256 * 2**20 < max_heap <= 2**30


PLAN_IN_A_FRESH_PROCESS = """
import sys
from flinktrade.pipeline.job import JobIO, JobOptions, prepare
io = JobIO(bootstrap_servers="127.0.0.1:9", bounded=True, from_earliest=True)
prepare(io, JobOptions(thread_mode={thread_mode}))
print(sorted(m for m in ("apache_beam", "pandas") if m in sys.modules))
"""


@pytest.mark.parametrize("thread_mode", [True, False])
def test_a_thread_mode_client_plans_the_job_without_the_python_workers_runtime(
    thread_mode: bool,
) -> None:
    """A job whose Python runs in the JVM (thread mode, the default) is planned without importing
    Apache Beam (nor pandas through it) in the client: 0.8-0.9 s of every job's start
    (``infra.embedded.register_without_init``). A process-mode client imports it as PyFlink does, and
    the whole job (news, provider bars, every Python operator) is planned either way."""
    code = PLAN_IN_A_FRESH_PROCESS.format(thread_mode=thread_mode)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert imported == ([] if thread_mode else ["apache_beam", "pandas"])


WARM_UP_IN_A_FRESH_PROCESS = """
from pyflink.java_gateway import get_gateway
from flinktrade.pipeline.job import JobIO, JobOptions, build, environment, warm_up_embedded_python
io = JobIO(bootstrap_servers="127.0.0.1:9", bounded=True, from_earliest=True)
options = JobOptions(thread_mode=True, checkpoint_dir=None)
env = environment(options)
build(env, io, options)
warm_up_embedded_python(io, options).join()
jvm = get_gateway().jvm
config = jvm.pemja.core.PythonInterpreterConfig.newBuilder().build()  # the JVM's one interpreter
interpreter = jvm.pemja.core.PythonInterpreter(config)
interpreter.exec("import sys; found = sorted(m for m in {modules!r} if m in sys.modules)")
print(list(interpreter.get("found")))
"""


def test_the_embedded_python_is_started_and_given_the_jobs_imports_ahead_of_the_job() -> None:
    """``warm_up_embedded_python`` (``prepare`` runs it for a local thread-mode job) starts the
    gateway JVM's embedded interpreter and imports what the operators import, so the tasks' start
    does not (2-4 s of the demo's, docs/benchmarks.md, session 33). A fresh process: the JVM has
    run no Python operator, so only the warm-up can have imported these."""
    modules = ["flinktrade.pipeline.operator", "flinktrade.sentiment", *EMBEDDED_RUNTIME]
    code = WARM_UP_IN_A_FRESH_PROCESS.format(modules=modules)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert found == sorted(modules)


RUN_IN_THE_EMBEDDED_INTERPRETER = """
from pyflink.common import Types
from flinktrade.pipeline.job import JobOptions, environment

def imported(_):
    import sys
    runtime = sys.modules["pyflink.fn_execution"]
    beam = [m for m in ("apache_beam", "pandas") if m in sys.modules]
    return repr((sorted(beam), runtime.PYFLINK_CYTHON_ENABLED))

env = environment(JobOptions(thread_mode=True))
stream = env.from_collection([0], type_info=Types.INT()).map(imported, Types.STRING())
with stream.execute_and_collect() as rows:
    print(list(rows)[0])
"""


def test_the_jvms_embedded_interpreter_runs_python_operators_without_beam() -> None:
    """The interpreter a thread-mode job's JVM embeds for its Python operators imports PyFlink's
    worker runtime without Apache Beam and pandas (``infra.embedded``, through the
    ``sitecustomize`` first on the JVM's path): half of the tasks' start in the demo. A fresh
    process, so that its gateway JVM is started by ``environment`` (this module's is shared)."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_IN_THE_EMBEDDED_INTERPRETER],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert ast.literal_eval(done.stdout.strip().splitlines()[-1]) == ([], False)


def test_the_build_converts_each_java_type_once_to_what_pyflink_makes_of_it(job_run: Run) -> None:
    """``job._java_types_converted_once``: the same ``TypeInformation`` PyFlink's own conversion
    gives, for every row type the job hands between Python operators; one conversion per type
    (the second is the same object); types that differ in a field's name or type stay apart; and
    PyFlink's conversion is back in place afterwards."""
    from pyflink.common import Types, typeinfo

    from flinktrade.pipeline.job import _java_types_converted_once
    from flinktrade.pipeline.operator import BAR_ROW_TYPE, NEWS_ROW_TYPE, OUTPUT_ROW_TYPE

    original = typeinfo._from_java_type
    renamed = Types.ROW_NAMED(["kind", "symbol2"], [Types.STRING(), Types.STRING()])
    retyped = Types.ROW_NAMED(["kind", "symbol"], [Types.STRING(), Types.LONG()])
    plain = Types.ROW_NAMED(["kind", "symbol"], [Types.STRING(), Types.STRING()])
    types = [BAR_ROW_TYPE, NEWS_ROW_TYPE, OUTPUT_ROW_TYPE, renamed, retyped, plain]
    java = [t.get_java_type_info() for t in types]
    with _java_types_converted_once():
        first = [typeinfo._from_java_type(j) for j in java]
        again = [typeinfo._from_java_type(j) for j in java]
    assert typeinfo._from_java_type is original
    assert first == [original(j) for j in java] == types
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert len({id(t) for t in first}) == len(types)
