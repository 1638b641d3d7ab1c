"""Ingest settings: which topics the Alpaca ingest writes and how hard it retries.

The ``ingest`` section of ``config.Settings``: ``FLINKTRADE_INGEST__<FIELD>`` (nested:
``FLINKTRADE_INGEST__TOPICS__BARS``), the ``.env`` file, or the ``[ingest]`` table of the TOML file.
Alpaca's credentials and URLs are not here: they are the main settings' ``APCA_*`` fields.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from flinktrade import topics
from flinktrade.section import Section


class IngestTopics(Section):
    """Where each kind of record goes."""

    trades: str = topics.TRADES.name
    quotes: str = topics.QUOTES.name
    bars: str = topics.BARS.name
    news: str = topics.NEWS.name
    alerts: str = topics.ALERTS.name
    deadletter: str = topics.DEADLETTER.name

    def all(self) -> list[str]:
        return [self.trades, self.quotes, self.bars, self.news, self.alerts, self.deadletter]


class IngestSettings(Section):
    """Tuning of ``flinktrade ingest``."""

    model_config = ConfigDict(extra="ignore")  # unknown keys of [ingest] were always ignored

    topics: IngestTopics = IngestTopics()
    request_timeout_s: float = Field(15.0, gt=0, description="Timeout of every REST request.")
    max_attempts: int = Field(8, ge=1, description="Tries per page on errors and 5xx.")
    max_rate_limit_wait_s: float = Field(120.0, gt=0, description="Longest single 429 wait.")
    reconnect_min_s: float = Field(1.0, gt=0, description="First stream reconnect delay.")
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest stream reconnect delay.")
    silence_s: float = Field(
        120.0,
        gt=0,
        description=(
            "Market stream connected but silent this long in the regular session: alert, "
            "reconnect and backfill."
        ),
    )
    max_future_ms: int = Field(
        300_000, ge=0, description="Refuse records timed further than this ahead of the clock."
    )
