"""API settings: where ``flinktrade serve`` listens, its token, what it reads and keeps.

The ``api`` section of ``config.Settings``, which reads it. The token comes from
``FLINKTRADE_API_TOKEN`` (or ``FLINKTRADE_API__TOKEN``, or the ``[api]`` table of the TOML file,
which win over it) and is a ``SecretStr``. Without one, ``flinktrade serve`` makes up a random token
and prints it once; binding to anything but a loopback address without a configured token is
refused. Other fields: ``FLINKTRADE_API__<FIELD>``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, ConfigDict, Field, SecretStr

from flinktrade import topics
from flinktrade.section import Section


class ApiTopics(Section):
    """The topics the API reads, by the short names the stream uses."""

    bars: str = topics.ANALYTICS_BARS.name
    signals: str = topics.SIGNALS.name
    alerts: str = topics.ALERTS.name
    orders: str = topics.ORDERS.name
    fills: str = topics.FILLS.name
    news: str = topics.NEWS.name

    def by_kind(self) -> dict[str, str]:
        """Short name (``bars``, ``signals``, ...) to topic name."""
        return {
            "bars": self.bars,
            "signals": self.signals,
            "alerts": self.alerts,
            "orders": self.orders,
            "fills": self.fills,
            "news": self.news,
        }


class ApiSettings(Section):
    """Everything ``flinktrade serve`` reads (the ``api`` section of ``config.Settings``)."""

    model_config = ConfigDict(populate_by_name=True)

    host: str = Field("127.0.0.1", description="Address to bind; non-loopback needs a token.")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind (0: any free port).")
    token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("FLINKTRADE_API_TOKEN", "FLINKTRADE_API__TOKEN", "token"),
        description="Bearer token every route but /health requires (generated when unset).",
    )
    topics: ApiTopics = ApiTopics()
    backfill: int = Field(
        2_000, ge=0, description="Records per partition read back from each topic at start-up."
    )
    bars_per_symbol: int = Field(1_000, ge=10, description="Bars kept in memory per symbol.")
    max_symbols: int = Field(
        2_000,
        ge=1,
        description="Symbols whose bars are kept; beyond it the least recently updated is dropped.",
    )
    events_kept: int = Field(
        1_000, ge=10, description="Signals, alerts, orders, fills and news kept in memory each."
    )
    default_limit: int = Field(200, ge=1, description="Rows a list route returns without limit.")
    max_limit: int = Field(5_000, ge=1, description="Largest limit a list route accepts.")
    stream_queue: int = Field(
        1_000, ge=10, description="Messages queued per WebSocket client before it is dropped."
    )
    max_stream_clients: int = Field(
        100, ge=1, description="WebSocket clients at once; more are closed with 1013."
    )
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest request body accepted (413 beyond it)."
    )
    max_label_values: int = Field(
        50,
        ge=1,
        description=(
            "Distinct values per Prometheus label taken from records (strategy, alert kind); "
            'later ones are counted as "other".'
        ),
    )
    job_idle_after_s: float = Field(
        30.0, gt=0, description="/health reports the job idle after this long without a bar."
    )
    web_dir: Path | None = Field(
        None,
        description="Where web/node_modules lives (default: the repository's web/ folder).",
    )
