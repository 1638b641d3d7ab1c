"""The job's Flink SQL, generated from settings and the event models.

The hot path runs here, in the JVM: one streaming parse-and-validate pass per trade (a small Java
table function), 1-minute OHLCV+VWAP bars (event-time tumbling windows), and SMAs over bar closes
(one OVER window per period, chained, because Flink computes one OVER window per projection).

Numbers: OHLC stay exact ``DECIMAL(18, 6)``; VWAP and indicators are ``DOUBLE``. An SMA is the
exact decimal sum of the closes, converted to double once and divided by the period, so a plain
Python reference reproduces it bit for bit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from flinktrade.errors import ConfigError
from flinktrade.events import AnalyticsBar, DeadLetter
from flinktrade.topics import sql_columns

BAR_INTERVAL_MS = 60_000
_SMA = re.compile(r"^sma_(\d+)$")


@dataclass(frozen=True)
class KafkaTable:
    """Connection options shared by every Kafka table of one job."""

    bootstrap_servers: str
    group_id: str
    bounded: bool = False
    from_earliest: bool = True
    exactly_once: bool = False
    transactional_id_prefix: str = "flinktrade"

    def source_options(self, topic: str) -> str:
        opts = {
            "connector": "kafka",
            "topic": topic,
            "properties.bootstrap.servers": self.bootstrap_servers,
            "properties.group.id": self.group_id,
            "properties.isolation.level": "read_committed",
            "properties.auto.offset.reset": "earliest",
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
            "properties.bootstrap.servers": self.bootstrap_servers,
            "properties.linger.ms": "5",
            "value.format": value_format,
        }
        if value_format == "json":
            opts["value.json.encode.decimal-as-plain-number"] = "true"
        if keyed:
            opts |= {"key.format": "raw", "key.fields": "symbol"}
            opts["value.fields-include"] = "ALL" if value_format == "json" else "EXCEPT_KEY"
        if self.exactly_once:
            opts |= {
                "sink.delivery-guarantee": "exactly-once",
                "sink.transactional-id-prefix": f"{self.transactional_id_prefix}-{topic}",
                "properties.transaction.timeout.ms": "900000",
            }
        else:
            opts["sink.delivery-guarantee"] = "at-least-once"
        return _with(opts)


def _with(options: dict[str, str]) -> str:
    return ",\n  ".join(f"'{k}' = '{v}'" for k, v in options.items())


def sma_periods(indicators: Iterable[str]) -> list[int]:
    """The SMA periods named by indicator columns such as ``sma_20``; other names are refused."""
    periods = set()
    for name in indicators:
        match = _SMA.match(name)
        if not match or int(match.group(1)) < 1:
            raise ConfigError(f"unknown indicator {name!r} (available: sma_<N>)")
        periods.add(int(match.group(1)))
    return sorted(periods)


def functions() -> list[str]:
    return [
        "CREATE TEMPORARY SYSTEM FUNCTION ft_parse_trade AS 'io.flinktrade.udf.ParseTrade' "
        "LANGUAGE JAVA",
        "CREATE TEMPORARY SYSTEM FUNCTION ft_epoch_ms AS 'io.flinktrade.udf.EpochMillis' "
        "LANGUAGE JAVA",
    ]


def trades_source(kafka: KafkaTable, topic: str, out_of_orderness_ms: int) -> str:
    """Raw trade records; event time is the record timestamp (= the trade's ``ts``)."""
    return f"""CREATE TEMPORARY TABLE trades_raw (
  `value` BYTES,
  `partition` INT METADATA VIRTUAL,
  `offset` BIGINT METADATA VIRTUAL,
  `rt` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
  WATERMARK FOR `rt` AS `rt` - INTERVAL '{out_of_orderness_ms / 1000:.3f}' SECOND
) WITH (
  {kafka.source_options(topic)},
  'format' = 'raw'
)"""


PARSED_VIEW = """CREATE TEMPORARY VIEW trades_parsed AS
SELECT t.ok, t.reason, t.symbol, t.price, t.`size`, r.rt AS event_time,
  r.`partition` AS src_partition, r.`offset` AS src_offset,
  CASE WHEN t.ok THEN CAST(NULL AS BYTES) ELSE r.`value` END AS payload
FROM trades_raw AS r, LATERAL TABLE(ft_parse_trade(r.`value`, r.rt)) AS t"""
"""Every record, parsed once: valid ones typed, invalid ones with a reason and their bytes.

The job turns this view into a DataStream and back (as ``parsed``, with ``rt`` the event-time
attribute carried over from the source's watermarks), so that the dead-letter branch and the bar
branch share one read and one parse of the topic."""


def bars_view(parsed: str) -> str:
    return f"""CREATE TEMPORARY VIEW bars AS
SELECT symbol, window_time AS rt,
  FIRST_VALUE(price) AS `open`, MAX(price) AS high, MIN(price) AS low,
  LAST_VALUE(price) AS `close`, SUM(`size`) AS volume,
  SUM(CAST(price AS DOUBLE) * `size`) / SUM(`size`) AS vwap, COUNT(*) AS trades
FROM TABLE(TUMBLE(
  (SELECT symbol, price, `size`, rt FROM {parsed} WHERE ok), DESCRIPTOR(rt), INTERVAL '1' MINUTE))
GROUP BY symbol, window_start, window_end, window_time"""


def indicator_views(periods: list[int]) -> tuple[list[str], str]:
    """Views adding one ``sma_N`` column each; returns the statements and the last view's name."""
    statements, previous = [], "bars"
    for i, n in enumerate(periods):
        name = f"bars_ind_{i}"
        statements.append(
            f"""CREATE TEMPORARY VIEW {name} AS
SELECT *, CASE WHEN COUNT(*) OVER w >= {n} THEN CAST(SUM(`close`) OVER w AS DOUBLE) / {n} END
  AS sma_{n}
FROM {previous}
WINDOW w AS (PARTITION BY symbol ORDER BY rt ROWS BETWEEN {n - 1} PRECEDING AND CURRENT ROW)"""
        )
        previous = name
    return statements, previous


def analytics_view(source: str, periods: list[int]) -> str:
    """Bars shaped as ``AnalyticsBar`` (plus ``rt``), indicators in one map column.

    Prices travel as exact decimal strings here: PyFlink's DataStream bridge cannot carry
    ``DECIMAL`` types, and strings convert back without loss (see ``analytics_insert``)."""
    entries = ", ".join(f"'sma_{n}', sma_{n}" for n in periods)
    indicators = f"MAP[{entries}]" if periods else "CAST(MAP['', 0.0] AS MAP<STRING, DOUBLE>)"
    return f"""CREATE TEMPORARY VIEW analytics AS
SELECT ft_epoch_ms(rt) + 1 - {BAR_INTERVAL_MS} AS ts,
  ft_epoch_ms(CURRENT_TIMESTAMP) AS ingest_ts,
  symbol, CAST(`open` AS STRING) AS `open`, CAST(high AS STRING) AS high,
  CAST(low AS STRING) AS low, CAST(`close` AS STRING) AS `close`, volume, vwap, trades,
  CAST({BAR_INTERVAL_MS} AS BIGINT) AS interval_ms,
  {indicators} AS indicators,
  rt
FROM {source}"""


def analytics_sink(kafka: KafkaTable, topic: str) -> str:
    columns = ",\n  ".join(f"`{n}` {t}" for n, t in sql_columns(AnalyticsBar))
    return f"""CREATE TEMPORARY TABLE analytics_sink (
  {columns},
  `kafka_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
) WITH (
  {kafka.sink_options(topic, "json", keyed=True)}
)"""


def analytics_insert(source: str) -> str:
    names = ", ".join(
        f"CAST(`{n}` AS {t}) AS `{n}`" if t.startswith("DECIMAL") else f"`{n}`"
        for n, t in sql_columns(AnalyticsBar)
    )
    return (
        f"INSERT INTO analytics_sink SELECT {names}, TO_TIMESTAMP_LTZ(ts, 3) AS kafka_ts "
        f"FROM {source}"
    )


def deadletter_sink(kafka: KafkaTable, topic: str) -> str:
    columns = ",\n  ".join(f"`{n}` {t}" for n, t in sql_columns(DeadLetter))
    return f"""CREATE TEMPORARY TABLE deadletter_sink (
  {columns}
) WITH (
  {kafka.sink_options(topic, "json", keyed=False)}
)"""


def deadletter_insert(parsed: str, source_topic: str) -> str:
    return f"""INSERT INTO deadletter_sink
SELECT ft_epoch_ms(rt) AS ts, ft_epoch_ms(CURRENT_TIMESTAMP) AS ingest_ts,
  '{source_topic}' AS source_topic, CAST(src_partition AS BIGINT) AS `partition`,
  src_offset AS `offset`, reason, COALESCE(CAST(payload AS STRING), '') AS payload
FROM {parsed} WHERE NOT ok"""


def signals_sink(kafka: KafkaTable, topic: str) -> str:
    """Signals arrive from the Python operator already encoded (``events.encode``)."""
    return f"""CREATE TEMPORARY TABLE signals_sink (
  `symbol` STRING,
  `payload` BYTES,
  `kafka_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
) WITH (
  {kafka.sink_options(topic, "raw", keyed=True)}
)"""


SIGNALS_INSERT = (
    "INSERT INTO signals_sink SELECT symbol, payload, TO_TIMESTAMP_LTZ(ts, 3) FROM signal_rows"
)
