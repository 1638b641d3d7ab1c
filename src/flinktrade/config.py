"""Settings: one frozen, nested pydantic-settings model read from a TOML file and the environment.

Precedence, highest first: environment variables (``FLINKTRADE_<SECTION>__<FIELD>``, plus the
vendors' own names such as ``APCA_API_KEY_ID``), a ``.env`` file in the working directory, the TOML
file named by ``FLINKTRADE_CONFIG`` (default ``flinktrade.toml`` if it exists), then the defaults
below. Secrets are ``SecretStr`` and print masked.

``load_settings`` also guards the trust boundary: a broker off loopback is refused unless the Kafka
settings authenticate flinktrade (``security_protocol`` SASL_PLAINTEXT/SASL_SSL with a user and
password, or SSL with a client certificate) or ``kafka.allow_unauthenticated_remote`` acknowledges
a broker that does not. The embedded broker (``[broker]``) never authenticates clients.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from flinktrade.api.settings import ApiSettings
from flinktrade.errors import ConfigError
from flinktrade.execution.settings import ExecutionSettings
from flinktrade.infra.process import is_loopback
from flinktrade.ingest.settings import IngestSettings
from flinktrade.notify.settings import NotifySettings
from flinktrade.section import Section

DEFAULT_CONFIG_FILE = "flinktrade.toml"


class SecurityProtocol(StrEnum):
    """How clients talk to the brokers (Kafka's ``security.protocol``)."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    """How a SASL client proves who it is (Kafka's ``sasl.mechanism``)."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class KafkaSettings(Section):
    """Where the Kafka-API cluster is, how flinktrade authenticates to it, and how its topics are
    created on it. Every client flinktrade builds (``bus``) and the job's Kafka sources and sink
    (``pipeline.connectors.KafkaClients``) use the same security settings."""

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka or Redpanda bootstrap servers (host:port,...)."
    )
    partitions: int = Field(4, ge=1, description="Partitions for topics flinktrade creates.")
    replication_factor: int = Field(1, ge=1, description="Replication factor for new topics.")
    retention_ms: int = Field(
        -1,
        ge=-1,
        description=(
            "retention.ms for new topics; -1 keeps records forever, so history with old event "
            "times is not deleted on arrival."
        ),
    )
    security_protocol: SecurityProtocol = Field(
        SecurityProtocol.PLAINTEXT,
        description="PLAINTEXT (no TLS, no authentication), SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    sasl_mechanism: SaslMechanism = Field(
        SaslMechanism.PLAIN,
        description="With SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    sasl_username: str | None = Field(None, description="With SASL_*: the user (required).")
    sasl_password: SecretStr | None = Field(
        None, description="With SASL_*: the user's password (required; a secret)."
    )
    ssl_ca_location: Path | None = Field(
        None,
        description="With SSL/SASL_SSL: PEM file of the CA(s) that signed the brokers' certificates"
        " (unset: the system's CAs for the services, the JVM's for the job).",
    )
    ssl_certificate_location: Path | None = Field(
        None, description="With SSL/SASL_SSL: PEM file of flinktrade's client certificate (chain)."
    )
    ssl_key_location: Path | None = Field(
        None,
        description="With SSL/SASL_SSL: PEM file of the client certificate's private key (for the"
        " job, the same file as the certificate: Kafka's Java client reads both from one file).",
    )
    ssl_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted client key (a secret)."
    )
    allow_unauthenticated_remote: bool = Field(
        False,
        description=(
            "Acknowledge that bootstrap_servers (or the embedded broker's host) is not on loopback "
            "although flinktrade does not authenticate to it (security_protocol PLAINTEXT, or SSL "
            "without a client certificate): whoever can reach the broker can write "
            "trading.signals, and so trade. Without it such settings are refused."
        ),
    )

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        sasl, tls = self.uses_sasl, self.uses_tls
        if sasl and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_username and sasl_password"
            )
        if not sasl and (self.sasl_username or self.sasl_password):
            raise ValueError(
                "sasl_username/sasl_password are set but security_protocol is "
                f"{self.security_protocol} (SASL_PLAINTEXT or SASL_SSL uses them)"
            )
        ssl_files = (
            self.ssl_ca_location,
            self.ssl_certificate_location,
            self.ssl_key_location,
            self.ssl_key_password,
        )
        if not tls and any(f is not None for f in ssl_files):
            raise ValueError(
                "ssl_* settings are set but security_protocol is "
                f"{self.security_protocol} (SSL or SASL_SSL uses them)"
            )
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError(
                "a client certificate needs both ssl_certificate_location and ssl_key_location"
            )
        return self

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in (
            SecurityProtocol.SASL_PLAINTEXT,
            SecurityProtocol.SASL_SSL,
        )

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    @property
    def authenticates(self) -> bool:
        """Whether the brokers learn who flinktrade is: SASL, or TLS with a client certificate."""
        return self.uses_sasl or (self.uses_tls and self.ssl_certificate_location is not None)


class JitCompiler(StrEnum):
    """Which JIT compilers a JVM uses: the job's in-process MiniCluster (``job.jit``) or the local
    broker (``broker.jit``); see docs/benchmarks.md, "The JIT compilers in the timed phase"."""

    C1 = "c1"
    """C1 only (``-XX:TieredStopAtLevel=1``): compiled code at once, no later C2 compile bursts
    competing with the job for the CPU; less CPU and a faster start, a lower peak rate."""
    TIERED = "tiered"
    """The JVM's own default: C1, then C2 for the hottest code, which peaks higher after minutes
    of compiling."""


class BrokerSettings(Section):
    """The embedded single-node Kafka broker started by ``flinktrade infra up``."""

    host: str = "127.0.0.1"
    port: int = Field(9092, ge=1, le=65535)
    controller_port: int = Field(9093, ge=1, le=65535)
    heap: str = Field("1g", description="JVM heap for the broker (-Xmx).")
    nodes: int = Field(
        1,
        ge=1,
        le=9,
        description=(
            "KRaft nodes `infra up` starts (`--brokers`); node i listens on port + 2(i-1) and "
            "controller_port + 2(i-1)."
        ),
    )
    jit: JitCompiler = Field(
        JitCompiler.TIERED,
        description=(
            "JIT compilers of the broker's JVM: 'tiered' (the JVM's default, C2's peak speed for a "
            "broker that runs for long) or 'c1' (C1 only: no C2 compiling in its first minutes; "
            "the tests' short-lived brokers, where C2 took ~40 % of a broker's CPU)."
        ),
    )


class Delivery(StrEnum):
    AT_LEAST_ONCE = "at-least-once"
    EXACTLY_ONCE = "exactly-once"


class LatencyProfile(StrEnum):
    """How the job trades throughput for latency (see docs/analytics.md, "Latency profiles")."""

    DEFAULT = "default"
    LOW = "low"


class GarbageCollector(StrEnum):
    """Which garbage collector the JVM of the job's in-process MiniCluster uses (see
    docs/benchmarks.md, "... the Parallel collector (session 19)")."""

    PARALLEL = "parallel"
    """The Parallel collector: short young collections (1-5 ms every few seconds in the latency
    runs, against G1's 3-8 ms every ~2 s) and no G1 write barrier on every store of a new object
    into Flink's reused rows; old-generation collections stop the job for longer, but the job's
    own heap keeps little beyond its in-flight records."""
    G1 = "g1"
    """G1, the JVM's own default."""


class JobSettings(Section):
    """The PyFlink job."""

    parallelism: int = Field(1, ge=1)
    checkpoint_interval_ms: int = Field(10_000, ge=100)
    out_of_orderness_ms: int = Field(
        2_000, ge=0, description="Watermark bound: how late a trade may arrive and still count."
    )
    idle_timeout_ms: int = Field(
        30_000,
        ge=0,
        description="A partition silent this long stops holding back the watermark. Keep it above"
        " the broker's leader fail-over time (Kafka's broker.session.timeout.ms is 9 s): a partition"
        " whose leader died is silent too, and its trades would arrive late once it is back.",
    )
    side_idle_timeout_ms: int = Field(
        2_000,
        ge=0,
        description="The same for the news and provider-bar topics, which are sparse by nature.",
    )
    news: bool = Field(
        True, description="Score news and fold it into the analytics; false: no news input at all."
    )
    provider_bars: bool = Field(
        True, description="Also analyse provider bars (market.bars); false: only bars from trades."
    )
    bar_buckets: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="With neither news nor provider bars, the bars reach Python in bundles, one per"
        " minute and bucket of symbols: the number of buckets (default: the parallelism). Keep it"
        " for the life of the job's state: a restore with another count restarts the indicators of"
        " the symbols that change bucket.",
    )
    heap: str = Field(
        "1g",
        pattern=r"^([1-9][0-9]*[kKmMgG]?)?$",
        description="Max heap (-Xmx) of the JVM that runs the job's in-process MiniCluster"
        " (`job run`), so its memory stays bounded; empty: the JVM's default (1/4 of RAM).",
    )
    jit: JitCompiler = Field(
        JitCompiler.C1,
        description="JIT compilers of the JVM that runs the job's in-process MiniCluster: 'c1'"
        " (steady latency, less CPU, faster start) or 'tiered' (the JVM's default: C2 too, a higher"
        " peak rate once compiled). A -XX:TieredStopAtLevel or -XX:-TieredCompilation in JVM_ARGS"
        " wins. `infra up --flink` gives its JobManager and TaskManagers the same.",
    )
    gc: GarbageCollector = Field(
        GarbageCollector.PARALLEL,
        description="Garbage collector of the JVM that runs the job's in-process MiniCluster:"
        " 'parallel' (shorter young pauses, less CPU per record) or 'g1' (the JVM's default). A"
        " -XX:+Use...GC in JVM_ARGS wins.",
    )
    delivery: Delivery = Delivery.AT_LEAST_ONCE
    latency_profile: LatencyProfile = Field(
        LatencyProfile.DEFAULT,
        description="'low': flush network buffers, watermarks and Kafka writes within ~1-10 ms,"
        " Kafka reads batched up to 2 ms (more CPU per record); 'default': within ~10-50 ms"
        " (Flink's batching, shortened), reads batched up to 5 ms.",
    )
    group_id: str = "flinktrade-job"
    python_thread_mode: bool = Field(
        default=True, description="Run Python operators in thread mode (embedded interpreter)."
    )
    jobmanager: str = Field(
        "127.0.0.1:8081",
        description="REST host:port of the Flink session cluster (`job submit/list/cancel/...`).",
    )
    cluster_rpc_port: int = Field(
        6123, ge=1, le=65535, description="JobManager RPC port of the local session cluster."
    )
    cluster_taskmanagers: int = Field(1, ge=1, description="TaskManagers of the local cluster.")
    cluster_slots: int = Field(2, ge=1, description="Task slots per local TaskManager.")


class AnalyticsSettings(Section):
    """Anomaly rules and news sentiment in the job. Times are event time."""

    alerts: bool = Field(True, description="Run the anomaly rules at all.")
    price_jump_window: int = Field(
        20, ge=3, description="Bars of log returns the price-jump z-score is measured against."
    )
    price_jump_z: float = Field(
        4.0, gt=0, description="|z| of a bar's log return that raises a price_jump alert."
    )
    volume_spike_window: int = Field(20, ge=3, description="Bars the volume z-score looks back.")
    volume_spike_z: float = Field(4.0, gt=0, description="Volume z-score of a volume_spike alert.")
    gap_pct: float = Field(
        1.0, gt=0, description="Open vs previous close, in percent, that raises a price_gap alert."
    )
    news_shock: float = Field(
        0.6, gt=0, le=1, description="|sentiment| of one story that raises a news_shock alert."
    )
    stale_after_ms: int = Field(
        300_000, ge=60_000, description="No bar for a symbol for this long raises stale_feed."
    )
    sentiment_half_life_ms: int = Field(
        3_600_000, ge=1_000, description="Half-life of the decayed average news sentiment."
    )
    sentiment_window_ms: int = Field(
        86_400_000, ge=1_000, description="News older than this no longer counts for a symbol."
    )
    large_trade_size: int | None = Field(
        None,
        ge=1,
        description="A trade of at least this many shares raises a large_trade alert at once, per"
        " trade (in the JVM, not per bar). Unset: off; what counts as large depends on the market.",
    )


class StrategySettings(Section):
    """One strategy instance: which built-in or plugin, on which symbols, with which parameters."""

    name: str = "sma_cross"
    symbols: list[str] = Field(default_factory=list, description="Empty: every symbol.")
    params: dict[str, float | int | str] = Field(default_factory=dict)


class SimulatorSettings(Section):
    """The market simulator used by the demo and tests."""

    symbols: int = Field(8, ge=1, le=500)
    seed: int = 7
    trades_per_second: float = Field(
        2_000.0, gt=0, description="Pace in wall-clock time; ignored with --fast."
    )
    time_scale: float = Field(
        300.0,
        gt=0,
        description="Event-time seconds per wall-clock second, so the demo shows minute bars quickly.",
    )
    news: bool = True


class Settings(BaseSettings):
    """Everything flinktrade reads from configuration."""

    model_config = SettingsConfigDict(
        env_prefix="FLINKTRADE_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    state_dir: Path = Field(
        Path(".flinktrade"),
        description="Local state: broker data, checkpoints, logs (relative to the working dir).",
    )
    kafka: KafkaSettings = KafkaSettings()
    broker: BrokerSettings = BrokerSettings()
    job: JobSettings = JobSettings()
    strategies: list[StrategySettings] = Field(
        default_factory=lambda: [
            StrategySettings(name="sma_cross", params={"fast": 20, "slow": 50}),
            StrategySettings(name="rsi_reversion", params={"period": 14, "low": 30, "high": 70}),
            StrategySettings(name="bollinger_breakout", params={"period": 20, "k": 2}),
            StrategySettings(name="sentiment_momentum", params={"threshold": 0.3}),
        ]
    )
    analytics: AnalyticsSettings = AnalyticsSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    alpaca_api_key_id: SecretStr | None = Field(
        None, validation_alias="APCA_API_KEY_ID", description="Alpaca key id (Alpaca's own name)."
    )
    alpaca_api_secret_key: SecretStr | None = Field(
        None, validation_alias="APCA_API_SECRET_KEY", description="Alpaca secret key."
    )
    alpaca_api_base_url: str | None = Field(
        None,
        validation_alias="APCA_API_BASE_URL",
        description="Alpaca trading REST base URL (default: paper trading).",
    )
    alpaca_api_data_url: str | None = Field(
        None, validation_alias="APCA_API_DATA_URL", description="Alpaca market data REST base URL."
    )
    alpaca_api_stream_url: str | None = Field(
        None,
        validation_alias="APCA_API_STREAM_URL",
        description="Full WebSocket URL of the market data stream (including the feed path).",
    )
    alpaca_api_news_stream_url: str | None = Field(
        None,
        validation_alias="APCA_API_NEWS_STREAM_URL",
        description="Full WebSocket URL of the news stream.",
    )
    alpaca_api_trading_stream_url: str | None = Field(
        None,
        validation_alias="APCA_API_TRADING_STREAM_URL",
        description="Full WebSocket URL of the trade_updates stream.",
    )
    ingest: IngestSettings = IngestSettings()
    notify: NotifySettings = NotifySettings()
    execution: ExecutionSettings = ExecutionSettings()
    api: ApiSettings = ApiSettings()

    @field_validator("state_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("FLINKTRADE_CONFIG", DEFAULT_CONFIG_FILE))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        if toml_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        dotenv: Mapping[str, str | None] = getattr(dotenv_settings, "env_vars", {})
        sources.append(VendorNamesSource(settings_cls, dotenv))
        return tuple(sources)


VENDOR_NAMES: dict[str, tuple[str, str]] = {
    "SLACK_WEBHOOK_URL": ("notify", "webhook_url"),
    "SLACK_BOT_TOKEN": ("notify", "bot_token"),
    "SLACK_CHANNEL": ("notify", "channel"),
    "SLACK_API_URL": ("notify", "api_url"),
    "FLINKTRADE_API_TOKEN": ("api", "token"),
}
"""Variables read by their own names into a section's field (``APCA_*`` are top-level fields)."""


class VendorNamesSource(PydanticBaseSettingsSource):
    """``VENDOR_NAMES`` from the environment, else the ``.env`` file (as the dotenv source read
    it): the lowest-priority source, so ``FLINKTRADE_<SECTION>__<FIELD>`` and the TOML file win
    over them. Names are matched without regard to case, as the other sources do."""

    def __init__(self, settings_cls: type[BaseSettings], dotenv: Mapping[str, str | None]) -> None:
        super().__init__(settings_cls)
        self.dotenv = dotenv

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the whole mapping

    def __call__(self) -> dict[str, Any]:
        found = {k.lower(): v for k, v in self.dotenv.items() if v is not None}
        found |= {k.lower(): v for k, v in os.environ.items()}
        values: dict[str, dict[str, str]] = {}
        for name, (section, field) in VENDOR_NAMES.items():
            if name.lower() in found:
                values.setdefault(section, {})[field] = found[name.lower()]
        return values


def load_settings(*, check_exposure: bool = True, **overrides: Any) -> Settings:
    """Read the settings, turning any problem into one readable ``ConfigError``.

    With ``check_exposure`` (the default) an unacknowledged non-loopback broker is refused too
    (``check_kafka_exposure``); ``show-config`` looks without that check."""
    config_file = os.environ.get("FLINKTRADE_CONFIG")
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"FLINKTRADE_CONFIG names {config_file!r}, which is not a file")
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid configuration at {where}: {_short(first['msg'])}") from None
    except ValueError as exc:  # e.g. a malformed TOML file or env JSON
        raise ConfigError(f"invalid configuration: {_short(str(exc))}") from None
    except OSError as exc:  # e.g. an unreadable TOML file
        where = exc.filename or config_file or DEFAULT_CONFIG_FILE
        raise ConfigError(f"cannot read the settings file {where}: {exc.strerror}") from None
    if check_exposure:
        check_kafka_exposure(settings)
    return settings


def check_kafka_exposure(settings: Settings) -> None:
    """Refuse a broker off loopback that flinktrade does not authenticate to, unless
    ``kafka.allow_unauthenticated_remote`` acknowledges it: whoever can write ``trading.signals``
    can trade. Authenticated settings (``KafkaSettings.authenticates``) let a remote
    ``bootstrap_servers`` through; the embedded broker off loopback is always refused without the
    acknowledgement, since it never authenticates clients."""
    kafka = settings.kafka
    if kafka.allow_unauthenticated_remote:
        return
    remote = [] if kafka.authenticates else non_loopback_hosts(kafka.bootstrap_servers)
    if not is_loopback(settings.broker.host):
        remote.append(settings.broker.host)
    if remote:
        how = (
            "the embedded broker does not authenticate clients"
            if kafka.authenticates
            else f"flinktrade connects without authentication (security_protocol "
            f"{kafka.security_protocol})"
        )
        raise ConfigError(
            f"Kafka at {', '.join(dict.fromkeys(remote))} is not on loopback and {how}: anyone "
            "who can write trading.signals can trade; set FLINKTRADE_KAFKA__SECURITY_PROTOCOL="
            "SASL_SSL with FLINKTRADE_KAFKA__SASL_USERNAME and FLINKTRADE_KAFKA__SASL_PASSWORD "
            "(or SSL with a client certificate), or FLINKTRADE_KAFKA__ALLOW_UNAUTHENTICATED_REMOTE"
            "=true to accept that"
        )


def _short(message: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters (parsers put the offending input in messages)."""
    line = " ".join(message.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, secrets shown as ``**********`` (or null if unset)."""
    return settings.model_dump(mode="json")


def non_loopback_hosts(servers: str) -> list[str]:
    """The hosts of a ``host:port,host:port`` list (optionally ``SCHEME://``) not on loopback."""
    found = []
    for item in servers.split(","):
        entry = item.strip()
        if not entry:
            continue
        entry = entry.split("://", 1)[-1]
        host = entry.rsplit(":", 1)[0] if entry.count(":") == 1 or "]:" in entry else entry
        if not is_loopback(host):
            found.append(host)
    return found
