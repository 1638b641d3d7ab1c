"""Builds and runs the flinktrade PyFlink job.

    market.trades --parse/validate (Java UDTF)--+--> deadletter                         (SQL)
                                                +--> 1-min bars --> SMAs --+--> analytics.bars (SQL)
                                                                           +--> strategies (Python,
                                                                                keyed by symbol)
                                                                                --> trading.signals

Two conversions between the Table API and DataStream API make each stage run once: the parsed
trades are shared by the dead-letter and bar branches, and the bars with indicators are shared by
the analytics sink and the strategy operator.
"""

from __future__ import annotations

import logging
import os
import site
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pyflink.common import Configuration, Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import Schema, StreamTableEnvironment

from flinktrade import topics
from flinktrade.config import Delivery, Settings
from flinktrade.infra import jvm
from flinktrade.pipeline import sql
from flinktrade.pipeline.operator import SIGNAL_ROW_TYPE, StrategyOperator, StrategySpec, build_all

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobIO:
    """Which topics the job reads and writes, and how it reads them."""

    bootstrap_servers: str
    trades: str = topics.TRADES.name
    analytics_bars: str = topics.ANALYTICS_BARS.name
    signals: str = topics.SIGNALS.name
    deadletter: str = topics.DEADLETTER.name
    group_id: str = "flinktrade-job"
    bounded: bool = False
    """Stop at the end offsets seen at start (backtests, tests, benchmarks); windows flush at end."""
    from_earliest: bool = False
    """Ignore committed offsets and read from the beginning."""


@dataclass(frozen=True)
class JobOptions:
    parallelism: int = 1
    checkpoint_interval_ms: int = 10_000
    checkpoint_dir: Path | None = None
    out_of_orderness_ms: int = 2_000
    idle_timeout_ms: int = 5_000
    delivery: Delivery = Delivery.AT_LEAST_ONCE
    thread_mode: bool = True
    strategies: tuple[StrategySpec, ...] = field(default_factory=tuple)
    name: str = "flinktrade"

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
            "delivery": job.delivery,
            "thread_mode": job.python_thread_mode,
            "strategies": specs,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _python_path() -> str:
    """PYTHONPATH for the JVM-embedded interpreter (thread mode): this venv and this package."""
    package_root = str(Path(__file__).resolve().parents[2])
    paths = [package_root, *site.getsitepackages()]
    existing = os.environ.get("PYTHONPATH")
    if existing:
        paths.append(existing)
    return os.pathsep.join(dict.fromkeys(paths))


def environment(options: JobOptions) -> tuple[StreamExecutionEnvironment, StreamTableEnvironment]:
    """A configured execution environment (a local MiniCluster unless submitted to a cluster)."""
    jvm.ensure_jars()
    os.environ["PYTHONPATH"] = _python_path()  # read when the gateway JVM starts
    conf = Configuration()
    conf.set_string("pipeline.jars", ";".join(p.resolve().as_uri() for p in jvm.job_jars()))
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.execution-mode", "thread" if options.thread_mode else "process")
    conf.set_string("pipeline.object-reuse", "true")
    conf.set_string("pipeline.name", options.name)
    conf.set_string("table.local-time-zone", "UTC")
    conf.set_string("table.exec.source.idle-timeout", f"{options.idle_timeout_ms} ms")
    conf.set_string("restart-strategy.type", "fixed-delay")
    conf.set_string("restart-strategy.fixed-delay.attempts", "3")
    conf.set_string("restart-strategy.fixed-delay.delay", "2 s")
    conf.set_string("execution.checkpointing.interval", f"{options.checkpoint_interval_ms} ms")
    conf.set_string(
        "execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION"
    )
    conf.set_string("execution.checkpointing.num-retained", "3")
    if options.checkpoint_dir is not None:
        options.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        conf.set_string("execution.checkpointing.dir", options.checkpoint_dir.resolve().as_uri())
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(options.parallelism)
    t_env = StreamTableEnvironment.create(env)
    return env, t_env


def build(t_env: StreamTableEnvironment, io: JobIO, options: JobOptions) -> None:
    """Register the whole job on ``t_env``; ``execute`` it afterwards."""
    strategies = build_all(options.strategies)  # fail fast on bad strategy config
    wanted = {name for _spec, strategy in strategies for name in strategy.indicators()}
    periods = sql.sma_periods(wanted)
    kafka = sql.KafkaTable(
        bootstrap_servers=io.bootstrap_servers,
        group_id=io.group_id,
        bounded=io.bounded,
        from_earliest=io.from_earliest,
        exactly_once=options.delivery is Delivery.EXACTLY_ONCE,
        transactional_id_prefix=io.group_id,
    )
    for statement in sql.functions():
        t_env.execute_sql(statement)
    t_env.execute_sql(sql.trades_source(kafka, io.trades, options.out_of_orderness_ms))
    t_env.execute_sql(sql.PARSED_VIEW)

    # One read + parse of the topic, shared by the dead-letter and the bar branches.
    parsed_stream = t_env.to_data_stream(t_env.from_path("trades_parsed"))
    parsed_schema = (
        Schema.new_builder()
        .column_by_metadata("rt", "TIMESTAMP_LTZ(3)", "rowtime")
        .watermark("rt", "SOURCE_WATERMARK()")
        .build()
    )
    t_env.create_temporary_view("parsed", t_env.from_data_stream(parsed_stream, parsed_schema))

    t_env.execute_sql(sql.bars_view("parsed"))
    indicator_statements, last_view = sql.indicator_views(periods)
    for statement in indicator_statements:
        t_env.execute_sql(statement)
    t_env.execute_sql(sql.analytics_view(last_view, periods))

    # One computation of bars + indicators, shared by the analytics sink and the strategies.
    bars_stream = t_env.to_data_stream(t_env.from_path("analytics"))
    t_env.create_temporary_view("analytics_rows", t_env.from_data_stream(bars_stream))
    signals_stream = bars_stream.key_by(lambda row: row["symbol"], key_type=Types.STRING()).process(
        StrategyOperator(options.strategies), output_type=SIGNAL_ROW_TYPE
    )
    t_env.create_temporary_view("signal_rows", t_env.from_data_stream(signals_stream))

    t_env.execute_sql(sql.deadletter_sink(kafka, io.deadletter))
    t_env.execute_sql(sql.analytics_sink(kafka, io.analytics_bars))
    t_env.execute_sql(sql.signals_sink(kafka, io.signals))
    statements = t_env.create_statement_set()
    statements.add_insert_sql(sql.deadletter_insert("parsed", io.trades))
    statements.add_insert_sql(sql.analytics_insert("analytics_rows"))
    statements.add_insert_sql(sql.SIGNALS_INSERT)
    statements.attach_as_datastream()


def run(io: JobIO, options: JobOptions, wait: bool = True) -> object:
    """Build and start the job; with ``wait`` block until it ends (bounded input or failure).

    Returns the Flink ``JobClient`` (when not waiting) or the ``JobExecutionResult``.
    """
    env, t_env = environment(options)
    build(t_env, io, options)
    log.info(
        "starting job %s: %s -> %s, %s (parallelism %d, %s)",
        options.name,
        io.trades,
        io.analytics_bars,
        io.signals,
        options.parallelism,
        options.delivery.value,
    )
    if wait:
        return env.execute(options.name)
    return env.execute_async(options.name)
