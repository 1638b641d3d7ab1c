"""Notification settings: where Slack is, which events go where, and how fast.

Slack is reached through an incoming webhook (``SLACK_WEBHOOK_URL``) or a bot token and a channel
(``SLACK_BOT_TOKEN``, ``SLACK_CHANNEL``); ``SLACK_API_URL`` overrides the Web API base URL (tests,
Enterprise Grid). Those vendor names are read from the environment and ``.env`` as they are (by
``config.Settings``, whose ``notify`` section this is). Every field can also be set as
``FLINKTRADE_NOTIFY__<FIELD>`` or in the ``[notify]`` table of the TOML file; those win over the
``SLACK_*`` variables. Without a webhook or a token anywhere, the notifier
prints to the console.

Secrets (webhook URLs, the token) are ``SecretStr``; URLs must be ``https://``, except plain
``http://`` to a loopback address (tests, local relays).

A route's ``kinds`` are ``events.AlertKind`` values: an unknown one is refused in one line that
names the nearest known kind.
"""

from __future__ import annotations

from difflib import get_close_matches
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from flinktrade import topics
from flinktrade.events import AlertKind, Severity
from flinktrade.infra.process import is_loopback
from flinktrade.section import Section

DEFAULT_API_URL = "https://slack.com/api/"


class EventType(StrEnum):
    """The kinds of record the notifier reads; routes select by these."""

    ALERT = "alert"
    SIGNAL = "signal"
    ORDER = "order"
    FILL = "fill"


def check_url(url: str, what: str) -> str:
    """``url`` if it is ``https://`` or ``http://`` to loopback; else ``ValueError`` (URL not shown)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        raise ValueError(f"{what} is not a valid URL") from None
    if not host:
        raise ValueError(f"{what} is not a valid URL")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)):
        return url.strip()
    raise ValueError(f"{what} must be an https:// URL (plain http:// only to a loopback address)")


class NotifyTopics(Section):
    """The topics the notifier reads."""

    alerts: str = topics.ALERTS.name
    signals: str = topics.SIGNALS.name
    orders: str = "trading.orders"
    fills: str = "trading.fills"

    def by_type(self) -> dict[str, EventType]:
        return {
            self.alerts: EventType.ALERT,
            self.signals: EventType.SIGNAL,
            self.orders: EventType.ORDER,
            self.fills: EventType.FILL,
        }


class RouteSettings(Section):
    """One route: which notices (all filters must match; an empty list matches all) go where.

    The destination is the route's own ``webhook_url``, else its ``channel`` with the bot token,
    else the top-level webhook, else the bot token with the top-level channel.
    """

    name: str = Field(min_length=1)
    events: list[EventType] = Field(
        default_factory=list, description="alert, signal, order, fill; empty: all."
    )
    min_severity: Severity = Field(
        Severity.INFO, description="Signals, orders and fills are info; rejected orders warning."
    )
    kinds: list[AlertKind] = Field(
        default_factory=list,
        description="Alert kinds (e.g. volume_spike; docs/alerts.md lists them); empty: all.",
    )
    symbols: list[str] = Field(default_factory=list, description="Empty: every symbol.")
    channel: str | None = Field(None, description="Channel for the bot token (#name or an id).")
    webhook_url: SecretStr | None = Field(None, description="An incoming webhook for this route.")

    @field_validator("webhook_url")
    @classmethod
    def _https(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_url(value.get_secret_value(), "the route's webhook_url")
        return value

    @field_validator("kinds", mode="before")
    @classmethod
    def _known_kinds(cls, value: Any) -> Any:
        """Each kind an ``AlertKind`` value, else one line naming the nearest known one."""
        known = [k.value for k in AlertKind]
        for kind in value if isinstance(value, list | tuple) else ():
            if not (isinstance(kind, str) and kind in known):
                text = str(kind)[:60]
                near = get_close_matches(text, known, n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                raise ValueError(f"unknown alert kind {text!r} ({hint}docs/alerts.md lists them)")
        return value


class NotifySettings(Section):
    """Slack destinations, routes, pacing and the consumer of ``flinktrade notify``."""

    model_config = ConfigDict(populate_by_name=True)

    webhook_url: SecretStr | None = Field(
        None, validation_alias="SLACK_WEBHOOK_URL", description="Incoming webhook URL (a secret)."
    )
    bot_token: SecretStr | None = Field(
        None, validation_alias="SLACK_BOT_TOKEN", description="Bot token for chat.postMessage."
    )
    channel: str | None = Field(
        None, validation_alias="SLACK_CHANNEL", description="Channel for the bot token."
    )
    api_url: str = Field(
        DEFAULT_API_URL, validation_alias="SLACK_API_URL", description="Slack Web API base URL."
    )
    routes: list[RouteSettings] = Field(
        default_factory=list, description="Empty: one route with everything to the default place."
    )
    dashboard_url: str | None = Field(None, description="Linked from every message when set.")
    topics: NotifyTopics = NotifyTopics()
    group_id: str = "flinktrade-notify"
    start_from: Literal["latest", "earliest"] = Field(
        "latest", description="Where a consumer group without committed offsets starts."
    )
    min_interval_s: float = Field(
        1.0, ge=0, description="At most one message per this many seconds per channel."
    )
    retry_initial_s: float = Field(1.0, gt=0, description="First back-off after a transient error.")
    retry_max_s: float = Field(60.0, gt=0, description="Longest back-off.")
    request_timeout_s: int = Field(10, ge=1, description="Timeout of one HTTP request to Slack.")
    max_in_flight: int = Field(
        10_000, ge=1, description="Stop reading while this many records await delivery."
    )
    drain_timeout_s: float = Field(
        5.0, ge=0, description="On shutdown, how long to keep posting what is pending."
    )
    dedupe_capacity: int = Field(100_000, ge=1, description="Event ids remembered for dedupe.")

    @field_validator("webhook_url")
    @classmethod
    def _webhook_https(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_url(value.get_secret_value(), "SLACK_WEBHOOK_URL")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_https(cls, value: str) -> str:
        url = check_url(value, "SLACK_API_URL")
        return url if url.endswith("/") else url + "/"

    @field_validator("dashboard_url")
    @classmethod
    def _dashboard(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or any(c in value for c in "<>| ")
        ):
            raise ValueError("dashboard_url must be an http(s):// URL without <, >, | or spaces")
        return value.strip()

    @model_validator(mode="after")
    def _unique_routes(self) -> NotifySettings:
        names = [r.name for r in self.routes]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"route names must be unique: {', '.join(duplicated)}")
        return self

    @property
    def slack_configured(self) -> bool:
        """Whether any Slack credential is set (otherwise notices go to the console)."""
        return (
            self.webhook_url is not None
            or self.bot_token is not None
            or any(r.webhook_url is not None for r in self.routes)
        )
