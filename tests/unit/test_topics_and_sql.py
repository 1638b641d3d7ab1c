import re

import pytest

from flinktrade import events, topics


def test_prices_are_scaled_decimals_and_never_floats() -> None:
    columns = dict(topics.sql_columns(events.AnalyticsBar))
    for name in ("open", "high", "low", "close"):
        assert columns[name] == "DECIMAL(18, 6)"
    assert columns["indicators"] == "MAP<STRING, DOUBLE>"
    assert columns["volume"] == "BIGINT"


@pytest.mark.parametrize("event", [t.event for t in topics.ALL])
def test_no_decimal_without_scale_anywhere(event: type[events.Event]) -> None:
    for _name, typ in topics.sql_columns(event):
        assert not re.search(r"DECIMAL(?!\(\d+, \d+\))", typ)


def test_topic_lookup() -> None:
    assert topics.by_name("trading.signals").event is events.Signal
    with pytest.raises(KeyError, match="known"):
        topics.by_name("nope")


def test_the_low_latency_profile_writes_without_linger() -> None:
    from flinktrade.pipeline.connectors import KafkaClients

    # the job's one DataStream sink (job.output_sink) takes the producer properties as they are
    assert KafkaClients("b", "g", linger_ms=0).producer_properties()["linger.ms"] == "0"
    assert KafkaClients("b", "g").producer_properties()["linger.ms"] == "5"


def test_exactly_once_sinks_write_in_transactions_named_by_the_group() -> None:
    from flinktrade.pipeline.connectors import KafkaClients

    once = KafkaClients("b", "grp", exactly_once=True, transactional_id_prefix="grp")
    assert once.transactional_id("outputs") == "grp-outputs"  # job.output_sink's prefix
    assert once.producer_properties()["transaction.timeout.ms"] == "900000"
    assert "transaction.timeout.ms" not in KafkaClients("b", "grp").producer_properties()


def test_a_source_batches_its_fetches_as_its_settings_say() -> None:
    from flinktrade.pipeline.connectors import Fetch, KafkaClients

    assert not {"fetch.min.bytes", "fetch.max.wait.ms"} & set(
        KafkaClients("b", "g").consumer_properties()  # Kafka's own
    )
    batched = KafkaClients("b", "g", fetch=Fetch(min_bytes=4096, max_wait_ms=3))
    # every DataStream source of the job (job.kafka_source) takes the consumer properties as
    # they are
    props = batched.consumer_properties()
    assert (props["fetch.min.bytes"], props["fetch.max.wait.ms"]) == ("4096", "3")
    assert not any(key.startswith("fetch.") for key in batched.producer_properties())


def test_python_bundles_are_set_only_for_python_worker_processes() -> None:
    """In thread mode a bundle is never held (the embedded operators hand each record over at
    once): a 1 ms bundle time there only wakes the task threads for nothing."""
    from flinktrade.config import LatencyProfile
    from flinktrade.pipeline.job import profile_conf

    bundle = ("python.fn-execution.bundle.size", "python.fn-execution.bundle.time")
    threads = profile_conf(LatencyProfile.LOW, thread_mode=True)
    processes = profile_conf(LatencyProfile.LOW, thread_mode=False)
    assert not any(key in threads for key in bundle)
    assert [processes[key] for key in bundle] == ["1", "1"]
    assert threads["execution.buffer-timeout.interval"] == "1 ms"
    assert {k: v for k, v in processes.items() if k not in bundle} == threads
    for thread_mode in (True, False):  # the default profile leaves bundles to Flink
        assert not any(key in profile_conf(LatencyProfile.DEFAULT, thread_mode) for key in bundle)


def _java_constant(source: str, name: str) -> str:
    match = re.search(rf"\b{name}\s*=\s*(?:new BigDecimal\(\")?([-\w.*\s]+?)\"?\)?;", source)
    assert match, name
    return match.group(1).replace("_", "").replace("L", "").strip()


def test_the_java_parser_has_the_bounds_of_the_event_models() -> None:
    """TradeParser.java and flinktrade.events state the same bounds (the poison-pill suite checks
    that they also apply them the same way)."""
    from pathlib import Path

    udf = Path(__file__).parents[2] / "jvm" / "udf" / "src" / "io" / "flinktrade" / "udf"
    parse = (udf / "TradeParser.java").read_text()
    assert _java_constant(parse, "MIN_PRICE") == str(events.MIN_PRICE)
    assert _java_constant(parse, "MAX_PRICE") == str(events.MAX_PRICE)
    assert int(_java_constant(parse, "PRICE_DECIMALS")) == events.PRICE_DECIMALS
    assert int(_java_constant(parse, "MAX_SIZE")) == events.MAX_SIZE
    assert int(_java_constant(parse, "MAX_TS")) == events.MAX_TS_MS
    assert int(_java_constant(parse, "MAX_SYMBOL_LENGTH")) == events.MAX_SYMBOL_CHARS
    payload = (udf / "DeadPayload.java").read_text()
    assert _java_constant(payload, "MAX_BYTES") == "64 * 1024"
    assert events.MAX_DEAD_PAYLOAD_BYTES == 64 * 1024


def test_the_java_side_inputs_and_dead_letters_have_the_python_bounds() -> None:
    """The Java functions that replaced the job's SQL (``RawRecords``' bar end, ``DeadLetters``'
    cut reason) state the bounds the Python side decodes with (``test_java_outputs`` checks that
    they also apply them the same way)."""
    from pathlib import Path

    from flinktrade.pipeline import connectors

    udf = Path(__file__).parents[2] / "jvm" / "udf" / "src" / "io" / "flinktrade" / "udf"
    raw = (udf / "RawRecords.java").read_text()
    assert int(_java_constant(raw, "BAR_INTERVAL_MS")) == connectors.BAR_INTERVAL_MS
    assert _java_constant(raw, "MAX_AHEAD_MS") == "5 * 60000"
    assert connectors.MAX_AHEAD_MS == 5 * 60_000
    assert _java_constant(raw, "MAX_INTERVAL_MS") == "366 * 86400000"
    assert events.MAX_INTERVAL_MS == 366 * 86_400_000
    dead = (udf / "DeadLetters.java").read_text()
    assert int(_java_constant(dead, "MAX_REASON_CHARS")) == events.MAX_DEAD_REASON_CHARS


def test_the_job_jvm_gets_a_bounded_heap_unless_jvm_args_already_set_one() -> None:
    from flinktrade.pipeline.job import jvm_args_with_heap

    assert jvm_args_with_heap(None, "1g") == "-Xmx1g"
    assert jvm_args_with_heap("-Dx=1", "768m") == "-Dx=1 -Xmx768m"
    assert jvm_args_with_heap("-Xmx4g -Dx=1", "1g") == "-Xmx4g -Dx=1"
    assert jvm_args_with_heap("-XX:MaxHeapSize=2g", "1g") == "-XX:MaxHeapSize=2g"
    assert jvm_args_with_heap(None, None) is None
    assert jvm_args_with_heap("-Dx=1", "") == "-Dx=1"


def test_the_job_jvm_runs_c1_only_unless_told_otherwise_or_jvm_args_choose() -> None:
    from flinktrade.config import JitCompiler
    from flinktrade.pipeline.job import C1_ONLY, jvm_args_with_jit

    assert jvm_args_with_jit(None, JitCompiler.C1) == C1_ONLY
    assert jvm_args_with_jit("-Xmx1g", JitCompiler.C1) == f"-Xmx1g {C1_ONLY}"
    assert jvm_args_with_jit("-Xmx1g", JitCompiler.TIERED) == "-Xmx1g"
    assert jvm_args_with_jit(None, JitCompiler.TIERED) is None
    for own in ("-XX:TieredStopAtLevel=4", "-XX:-TieredCompilation", "-XX:+TieredCompilation"):
        assert jvm_args_with_jit(f"-Dx=1 {own}", JitCompiler.C1) == f"-Dx=1 {own}"


def test_the_job_jvm_collects_with_parallel_unless_told_otherwise_or_jvm_args_choose() -> None:
    from flinktrade.config import GarbageCollector, JobSettings
    from flinktrade.pipeline.job import PARALLEL_GC, jvm_args_with_gc

    assert JobSettings().gc is GarbageCollector.PARALLEL
    assert "-XX:+UseParallelGC" in PARALLEL_GC
    assert jvm_args_with_gc(None, GarbageCollector.PARALLEL) == " ".join(PARALLEL_GC)
    assert jvm_args_with_gc("-Xmx1g", GarbageCollector.PARALLEL) == "-Xmx1g " + " ".join(
        PARALLEL_GC
    )
    assert jvm_args_with_gc("-Xmx1g", GarbageCollector.G1) == "-Xmx1g"
    assert jvm_args_with_gc(None, GarbageCollector.G1) is None
    for own in ("-XX:+UseG1GC", "-XX:+UseZGC", "-XX:+UseSerialGC", "-XX:+UseParallelGC"):
        assert jvm_args_with_gc(f"-Dx=1 {own}", GarbageCollector.PARALLEL) == f"-Dx=1 {own}"


def test_a_thread_mode_job_tells_pyflink_to_start_no_loopback_worker_server(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """pyflink reads the variable when an environment is made: ``process`` starts no loopback
    server (nothing connects to it in thread mode); unset, it starts one (process mode needs it).
    The variable is set only while the environments are made, and a caller's own value wins."""
    import os

    from flinktrade.pipeline.job import WORKER_MODE_ENV, _worker_mode

    monkeypatch.delenv(WORKER_MODE_ENV, raising=False)
    with _worker_mode("process"):
        assert os.environ[WORKER_MODE_ENV] == "process"
    assert WORKER_MODE_ENV not in os.environ
    with _worker_mode(None):
        assert WORKER_MODE_ENV not in os.environ
    monkeypatch.setenv(WORKER_MODE_ENV, "loopback")
    with _worker_mode("process"):
        assert os.environ[WORKER_MODE_ENV] == "loopback"
    assert os.environ[WORKER_MODE_ENV] == "loopback"


def test_the_job_heap_setting_reaches_the_job_options(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from flinktrade.config import JobSettings, Settings
    from flinktrade.pipeline.job import JobOptions

    assert JobOptions.from_settings(Settings(state_dir=tmp_path)).heap == "1g"
    settings = Settings(state_dir=tmp_path, job=JobSettings(heap="512m"))
    assert JobOptions.from_settings(settings).heap == "512m"
    assert (
        JobOptions.from_settings(Settings(state_dir=tmp_path, job=JobSettings(heap=""))).heap
        is None
    )
    with pytest.raises(ValidationError):
        JobSettings(heap="-Xmx1g")


def test_the_bar_bucket_setting_reaches_the_job(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``FLINKTRADE_JOB__BAR_BUCKETS``: unset, the job uses its parallelism; set, that count
    reaches the job; below 1 it is refused."""
    from pydantic import ValidationError

    from flinktrade.config import JobSettings, Settings
    from flinktrade.pipeline.job import JobOptions

    assert JobOptions.from_settings(Settings(state_dir=tmp_path)).bar_buckets is None
    settings = Settings(state_dir=tmp_path, job=JobSettings(bar_buckets=8))
    assert JobOptions.from_settings(settings).bar_buckets == 8
    with pytest.raises(ValidationError):
        JobSettings(bar_buckets=0)
