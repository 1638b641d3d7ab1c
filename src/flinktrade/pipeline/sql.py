"""The job's Flink SQL, generated from settings and the event models.

The Kafka tables (the news and provider-bar sources with their watermarks, sinks with their
delivery guarantees), the provider-bar and news views, and the statements that write dead letters
and per-trade alerts. The per-trade hot path itself is on the DataStream API in the source's task:
a Kafka source for the trades with the tables' consumer settings
(``KafkaTable.consumer_properties``; ``pipeline.job.trade_records``), then two Java functions (``jvm/udf/.../ParseTrades.java`` and
``MinuteBars.java``; ``pipeline.job.trade_path``) that parse and validate, check lateness and build
the 1-minute bars; SQL writes what they send aside. The outputs of the Python operator leave
through a DataStream Kafka sink with the SQL sinks' producer settings
(``KafkaTable.producer_properties``; ``pipeline.job.output_sink``).

Dead letters written from SQL are bounded like ``events.DeadLetter``: ``reason`` to 500
characters, ``payload`` to 64 KiB of UTF-8 (``payload_bytes`` keeps the original size).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flinktrade.config import KafkaSettings, SecurityProtocol
from flinktrade.errors import ConfigError
from flinktrade.events import (
    MAX_DEAD_REASON_CHARS,
    MAX_INTERVAL_MS,
    Alert,
    AlertKind,
    DeadLetter,
    Event,
)
from flinktrade.topics import sql_columns

BAR_INTERVAL_MS = 60_000
MAX_AHEAD_MS = 5 * 60_000
"""How far a provider bar's ``ts`` may lie ahead of its record's timestamp (as ingest's
``MAX_FUTURE_MS`` bounds it against the clock); beyond, it is a dead letter and its record
timestamp, not its ``ts``, is its event time, so it cannot push the watermark."""


SHADED_KAFKA = "org.apache.flink.kafka.shaded.org.apache.kafka"
"""Where flink-sql-connector-kafka relocated the Kafka client's classes (JAAS login modules)."""

_LOGIN_MODULES = {
    "PLAIN": f"{SHADED_KAFKA}.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": f"{SHADED_KAFKA}.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": f"{SHADED_KAFKA}.common.security.scram.ScramLoginModule",
}


def client_properties(kafka: KafkaSettings) -> tuple[tuple[str, str], ...]:
    """The Kafka tables' security settings as the connector's Java client names them (without
    the ``properties.`` prefix): ``security.protocol``, ``sasl.mechanism``, ``sasl.jaas.config``
    (the login module as the connector shades it) and PEM trust/key stores.

    The password is in ``sasl.jaas.config``: Flink and Kafka mask that key (and ``*password*``)
    wherever they print table or client options, and flinktrade never logs the statements. Kafka's
    Java client reads a client certificate and its key from one PEM file, so a key in another file
    is refused here (one ``ConfigError``). PLAINTEXT: none (the client's default)."""
    if kafka.security_protocol is SecurityProtocol.PLAINTEXT:
        return ()
    props: dict[str, str] = {"security.protocol": kafka.security_protocol.value}
    if kafka.uses_sasl and kafka.sasl_username is not None and kafka.sasl_password is not None:
        props["sasl.mechanism"] = kafka.sasl_mechanism.value
        props["sasl.jaas.config"] = (
            f"{_LOGIN_MODULES[kafka.sasl_mechanism.value]} required "
            f'username="{_jaas_quote(kafka.sasl_username)}" '
            f'password="{_jaas_quote(kafka.sasl_password.get_secret_value())}";'
        )
    if kafka.uses_tls:
        if kafka.ssl_ca_location is not None:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = str(kafka.ssl_ca_location)
        if kafka.ssl_certificate_location is not None:
            if kafka.ssl_key_location != kafka.ssl_certificate_location:
                raise ConfigError(
                    "the job's Kafka client reads the client certificate and its key from one PEM "
                    "file: put both in one file and set kafka.ssl_key_location and "
                    "kafka.ssl_certificate_location to it"
                )
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.location"] = str(kafka.ssl_certificate_location)
            if kafka.ssl_key_password is not None:
                props["ssl.key.password"] = kafka.ssl_key_password.get_secret_value()
    return tuple(props.items())


def _jaas_quote(value: str) -> str:
    """``value`` inside a JAAS double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True)
class Fetch:
    """A source's fetch batching: the broker answers a fetch once ``min_bytes`` are there or
    ``max_wait_ms`` have passed, whichever comes first (Kafka's ``fetch.min.bytes`` and
    ``fetch.max.wait.ms``)."""

    min_bytes: int
    max_wait_ms: int


@dataclass(frozen=True)
class KafkaTable:
    """Connection options shared by every Kafka table of one job."""

    bootstrap_servers: str
    group_id: str
    bounded: bool = False
    from_earliest: bool = True
    exactly_once: bool = False
    transactional_id_prefix: str = "flinktrade"
    linger_ms: int = 5
    """How long the sinks' Kafka producers wait to fill a batch."""
    fetch: Fetch | None = None
    """How the sources' Kafka consumers batch their reads (None: Kafka's defaults, an answer to
    every fetch as soon as one byte is there)."""
    properties: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Client settings every table passes to Kafka (``client_properties``: security); kept out
    of ``repr`` since they hold the password."""

    def producer_properties(self) -> dict[str, str]:
        """The Kafka producer settings of every sink of the job, as the Java client names them:
        the SQL sinks' ``properties.*`` and the outputs' DataStream sink (``job.output_sink``)
        both come from here. Exactly once, a transaction may stay open 15 minutes."""
        props = {
            "bootstrap.servers": self.bootstrap_servers,
            **dict(self.properties),
            "linger.ms": str(self.linger_ms),
        }
        if self.exactly_once:
            props["transaction.timeout.ms"] = "900000"
        return props

    def consumer_properties(self) -> dict[str, str]:
        """The Kafka consumer settings of every source of the job, as the Java client names them:
        the SQL tables' ``properties.*`` and the trades' DataStream source (``job.trade_records``)
        both come from here. A new group starts at the beginning (``auto.offset.reset``)."""
        props = {
            "bootstrap.servers": self.bootstrap_servers,
            **dict(self.properties),
            "group.id": self.group_id,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
        if self.fetch is not None:
            props["fetch.min.bytes"] = str(self.fetch.min_bytes)
            props["fetch.max.wait.ms"] = str(self.fetch.max_wait_ms)
        return props

    def source_options(self, topic: str) -> str:
        opts = {
            "connector": "kafka",
            "topic": topic,
            **{f"properties.{k}": v for k, v in self.consumer_properties().items()},
            # Committed offsets (if any) win; a new group starts at the beginning.
            "scan.startup.mode": "earliest-offset" if self.from_earliest else "group-offsets",
        }
        if self.bounded:
            opts["scan.bounded.mode"] = "latest-offset"
        return _with(opts)

    def sink_options(self, topic: str, value_format: str, keyed: bool) -> str:
        opts = {
            "connector": "kafka",
            "topic": topic,
            **{f"properties.{k}": v for k, v in self.producer_properties().items()},
            "value.format": value_format,
        }
        if value_format == "json":
            opts["value.json.encode.decimal-as-plain-number"] = "true"
        if keyed:
            opts |= {"key.format": "raw", "key.fields": "symbol"}
            opts["value.fields-include"] = "ALL" if value_format == "json" else "EXCEPT_KEY"
        return _with(opts | self.delivery_options(topic))

    def delivery_options(self, name: str) -> dict[str, str]:
        """A sink's delivery guarantee; exactly once with transactional ids ``<prefix>-<name>``."""
        if not self.exactly_once:
            return {"sink.delivery-guarantee": "at-least-once"}
        return {
            "sink.delivery-guarantee": "exactly-once",
            "sink.transactional-id-prefix": self.transactional_id(name),
        }

    def transactional_id(self, name: str) -> str:
        """The transactional id prefix of the sink ``name`` (exactly once)."""
        return f"{self.transactional_id_prefix}-{name}"


def _with(options: dict[str, str]) -> str:
    """``'key' = 'value'`` lines of a ``WITH`` clause, quotes in values doubled as SQL wants."""
    return ",\n  ".join(f"'{k}' = '{_sql_quote(v)}'" for k, v in options.items())


def _sql_quote(value: str) -> str:
    return value.replace("'", "''")


def functions() -> list[str]:
    return [
        "CREATE TEMPORARY SYSTEM FUNCTION ft_epoch_ms AS 'io.flinktrade.udf.EpochMillis' "
        "LANGUAGE JAVA",
        "CREATE TEMPORARY SYSTEM FUNCTION ft_dead_payload AS 'io.flinktrade.udf.DeadPayload' "
        "LANGUAGE JAVA",
        "CREATE TEMPORARY SYSTEM FUNCTION ft_payload_bytes AS 'io.flinktrade.udf.PayloadBytes' "
        "LANGUAGE JAVA",
    ]


def interval_literal(ms: int) -> str:
    """``ms`` milliseconds as a SQL interval: in seconds below 100 s (``SECOND`` holds two digits),
    as days to seconds from there (the demo's bound scaled to its time scale is 20 minutes)."""
    if ms < 100_000:
        return f"INTERVAL '{ms / 1000:.3f}' SECOND"
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{rest / 1000:06.3f}' DAY TO SECOND(3)"


def raw_source(
    kafka: KafkaTable,
    table: str,
    topic: str,
    out_of_orderness_ms: int,
    event_time: str | None = None,
    idle_timeout_ms: int | None = None,
) -> str:
    """A topic's records as raw bytes with partition and offset, and an event-time attribute
    ``rt``: the record timestamp (flinktrade's producers set it to the event's ``ts``), or the SQL
    expression ``event_time`` over ``value`` and ``record_ts``. ``idle_timeout_ms`` overrides the
    job-wide ``table.exec.source.idle-timeout`` for this topic's partitions."""
    idle = (
        ""
        if idle_timeout_ms is None
        else f"'scan.watermark.idle-timeout' = '{idle_timeout_ms} ms',\n  "
    )
    if event_time is None:
        time_columns = "`rt` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',"
    else:
        time_columns = (
            "`record_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,\n"
            f"  `rt` AS {event_time},"
        )
    return f"""CREATE TEMPORARY TABLE {table} (
  `value` BYTES,
  `partition` INT METADATA VIRTUAL,
  `offset` BIGINT METADATA VIRTUAL,
  {time_columns}
  WATERMARK FOR `rt` AS `rt` - {interval_literal(out_of_orderness_ms)}
) WITH (
  {kafka.source_options(topic)},
  {idle}'format' = 'raw'
)"""


BUNDLE_FIELDS = 9
"""Tab-separated fields of a line of a bar bundle (``MinuteBars.java``, bundled): symbol, ts,
open, high, low, close, volume, vwap, trades."""


def news_source(
    kafka: KafkaTable, topic: str, out_of_orderness_ms: int, idle_timeout_ms: int | None = None
) -> str:
    """Raw news records; decoded and scored in Python (``NewsScorer``)."""
    return raw_source(
        kafka, "news_raw", topic, out_of_orderness_ms, idle_timeout_ms=idle_timeout_ms
    )


def provider_bars_source(
    kafka: KafkaTable, topic: str, out_of_orderness_ms: int, idle_timeout_ms: int | None = None
) -> str:
    """Provider bars (``market.bars``); decoded in Python (``BarDecoder``).

    Their event time is the bar's end (``ts + interval_ms - 1``), not its start, so a bar is
    handled as soon as the watermark says its interval is over. A record whose JSON lacks those
    fields, or whose ``ts`` is negative or more than ``MAX_AHEAD_MS`` ahead of its record
    timestamp, keeps its record time (it becomes a dead letter anyway)."""
    ts = "TRY_CAST(JSON_VALUE(CAST(`value` AS STRING), '$.ts') AS BIGINT)"
    interval = "TRY_CAST(JSON_VALUE(CAST(`value` AS STRING), '$.interval_ms') AS BIGINT)"
    bar_end = f"""COALESCE(TO_TIMESTAMP_LTZ(
      CASE WHEN {ts} BETWEEN 0 AND ft_epoch_ms(`record_ts`) + {MAX_AHEAD_MS}
      THEN {ts} + CASE WHEN {interval} BETWEEN 1 AND {MAX_INTERVAL_MS} THEN {interval}
        ELSE {BAR_INTERVAL_MS} END - 1 END, 3), `record_ts`)"""
    return raw_source(
        kafka, "provider_bars_raw", topic, out_of_orderness_ms, bar_end, idle_timeout_ms
    )


PROVIDER_BARS_VIEW = """CREATE TEMPORARY VIEW provider_bars_rows AS
SELECT `value`, `partition`, `offset`, ft_epoch_ms(rt) AS ts, ft_epoch_ms(`record_ts`) AS record_ts,
  rt FROM provider_bars_raw"""


NEWS_VIEW = """CREATE TEMPORARY VIEW news_rows AS
SELECT `value`, `partition`, `offset`, ft_epoch_ms(rt) AS ts, rt FROM news_raw"""


def _event_sink(kafka: KafkaTable, table: str, event: type[Event], topic: str, keyed: bool) -> str:
    """A JSON sink whose columns are ``event``'s fields, for events written straight from SQL."""
    columns = ",\n  ".join(f"`{n}` {t}" for n, t in sql_columns(event))
    return f"""CREATE TEMPORARY TABLE {table} (
  {columns}
) WITH (
  {kafka.sink_options(topic, "json", keyed=keyed)}
)"""


def deadletter_sink(kafka: KafkaTable, topic: str) -> str:
    return _event_sink(kafka, "deadletter_sink", DeadLetter, topic, keyed=False)


def bounded_reason(expression: str) -> str:
    """``expression`` (a STRING) cut like ``DeadLetter.reason``: over 500 characters, its first 497
    and ``...``."""
    cut = MAX_DEAD_REASON_CHARS - 3
    return (
        f"CASE WHEN CHAR_LENGTH({expression}) > {MAX_DEAD_REASON_CHARS} "
        f"THEN CONCAT(SUBSTRING({expression}, 1, {cut}), '...') ELSE {expression} END"
    )


def deadletter_insert(dead: str, source_topic: str) -> str:
    """The trades ``ParseTrades`` refused (invalid or late; the view ``dead`` of its dead-letter
    output: ``ts, partition, offset, reason, payload``) as dead letters: a bounded reason and the
    bounded original bytes."""
    return f"""INSERT INTO deadletter_sink
SELECT ts AS ts, ft_epoch_ms(CURRENT_TIMESTAMP) AS ingest_ts,
  '{source_topic}' AS source_topic, CAST(`partition` AS BIGINT) AS `partition`,
  `offset` AS `offset`,
  {bounded_reason("COALESCE(reason, 'invalid record')")} AS reason,
  ft_dead_payload(payload) AS payload, ft_payload_bytes(payload) AS payload_bytes
FROM {dead}"""


def alerts_sink(kafka: KafkaTable, topic: str) -> str:
    """``Alert`` events written from SQL (JSON, keyed by symbol like the Python operator's)."""
    return _event_sink(kafka, "alerts_sink", Alert, topic, keyed=True)


def large_trade_insert(large: str, min_size: int) -> str:
    """A ``large_trade`` alert for every valid, on-time trade of at least ``min_size`` shares: the
    view ``large`` of ``ParseTrades``' large-trade output (``ts, trade_id, symbol, price`` with its
    six decimals as text, ``size``), which holds no others.

    Decided per trade in the JVM, so the alert leaves as soon as the trade is read, without
    waiting for a watermark. The id is ``stable_id("alert", "large_trade", symbol, trade id)``: a
    re-read trade repeats it, two trades in the same millisecond do not share it. Critical from
    twice the threshold, like ``price_gap``."""
    kind = AlertKind.LARGE_TRADE.value
    return f"""INSERT INTO alerts_sink
SELECT ts, ft_epoch_ms(CURRENT_TIMESTAMP) AS ingest_ts,
  SUBSTRING(SHA256(CONCAT_WS('|', 'alert', '{kind}', symbol, trade_id)), 1, 32) AS id,
  '{kind}' AS kind,
  CASE WHEN `size` >= {2 * min_size} THEN 'critical' ELSE 'warning' END AS severity,
  symbol,
  CONCAT('Large trade: ', CAST(`size` AS STRING), ' at ',
    REGEXP_REPLACE(price, '\\.?0+$', '')) AS message,
  CAST(`size` AS DOUBLE) AS `value`, CAST({min_size} AS DOUBLE) AS threshold
FROM {large}"""
