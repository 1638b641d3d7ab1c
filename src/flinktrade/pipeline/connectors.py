"""The job's Kafka connections: the consumer and producer settings of its DataStream Kafka sources
and sink, and the constants its Java functions share with the Python operators.

Every input is read by a DataStream ``KafkaSource`` (``pipeline.job.kafka_source``): the trades
as ``TradeRecords``' tuples for the Java trade path (``ParseTrades``, ``MinuteBars``), news and
provider bars as ``RawRecords``' rows for their Python decoders. Every output leaves through one
DataStream ``KafkaSink`` (``pipeline.job.output_sink``): the Python operator's records, and the
dead letters and large-trade alerts the Java parse sends aside (``DeadLetters``,
``LargeTradeAlerts``). The job uses no Table API and no SQL: the planner it needed for its earlier
SQL tables cost the job's start ~3 s (docs/benchmarks.md, session 33).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flinktrade.config import KafkaSettings, SecurityProtocol
from flinktrade.errors import ConfigError

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
    """The job's Kafka security settings as the connector's Java client names them:
    ``security.protocol``, ``sasl.mechanism``, ``sasl.jaas.config`` (the login module as the
    connector shades it) and PEM trust/key stores.

    The password is in ``sasl.jaas.config``: Flink and Kafka mask that key (and ``*password*``)
    wherever they print client options, and flinktrade never logs them. Kafka's Java client reads
    a client certificate and its key from one PEM file, so a key in another file is refused here
    (one ``ConfigError``). PLAINTEXT: none (the client's default)."""
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
class KafkaClients:
    """Connection settings shared by every Kafka source and sink of one job."""

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
    """Client settings every source and sink passes to Kafka (``client_properties``: security);
    kept out of ``repr`` since they hold the password."""

    def producer_properties(self) -> dict[str, str]:
        """The Kafka producer settings of the job's sink (``job.output_sink``), as the Java client
        names them. Exactly once, a transaction may stay open 15 minutes."""
        props = {
            "bootstrap.servers": self.bootstrap_servers,
            **dict(self.properties),
            "linger.ms": str(self.linger_ms),
        }
        if self.exactly_once:
            props["transaction.timeout.ms"] = "900000"
        return props

    def consumer_properties(self) -> dict[str, str]:
        """The Kafka consumer settings of every source of the job (``job.kafka_source``), as the
        Java client names them. A new group starts at the beginning (``auto.offset.reset``)."""
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

    def transactional_id(self, name: str) -> str:
        """The transactional id prefix of the sink ``name`` (exactly once)."""
        return f"{self.transactional_id_prefix}-{name}"


BUNDLE_FIELDS = 9
"""Tab-separated fields of a line of a bar bundle (``MinuteBars.java``, bundled): symbol, ts,
open, high, low, close, volume, vwap, trades."""
