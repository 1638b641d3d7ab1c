"""Slack over slack_sdk: incoming webhooks (``WebhookClient``) and ``chat.postMessage``
(``WebClient``). The only module that imports slack_sdk.

Both clients get ``RateLimitErrorRetryHandler``, so an HTTP 429 waits as ``Retry-After`` says
before the request is repeated, and ``ConnectionErrorRetryHandler`` for a dropped connection.
What is still refused afterwards becomes a ``DeliveryError`` of the right group (``classify``).

Secrets: slack_sdk logs the request URL (a webhook URL is the secret) at DEBUG and, on retries, at
INFO. Each client therefore logs through its own logger, set to WARNING and filtered so that the
URL and the token are replaced by ``[redacted]``; our errors carry only Slack's error code.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import SecretStr
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from flinktrade.notify.format import Message
from flinktrade.notify.sinks import (
    DeliveryError,
    DestinationError,
    MessageRejected,
    TransientDeliveryError,
)

log = logging.getLogger(__name__)

TRANSIENT_CODES = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "timeout",
    }
)
"""Error codes worth retrying (besides HTTP 429, 408 and 5xx)."""

DESTINATION_CODES = frozenset(
    {
        "access_denied",
        "account_inactive",
        "action_prohibited",
        "channel_is_archived",
        "channel_not_found",
        "ekm_access_denied",
        "enterprise_is_restricted",
        "invalid_auth",
        "invalid_token",
        "is_archived",
        "missing_scope",
        "no_active_hooks",
        "no_permission",
        "no_service",
        "no_service_id",
        "no_team",
        "not_allowed_token_type",
        "not_authed",
        "not_in_channel",
        "org_login_required",
        "posting_to_general_channel_denied",
        "restricted_action",
        "restricted_action_read_only_channel",
        "team_access_not_granted",
        "team_disabled",
        "team_not_found",
        "token_expired",
        "token_revoked",
        "user_not_found",
    }
)
"""Error codes that mean no message can reach this destination until the configuration changes."""

HINTS = {
    "channel_not_found": "the channel does not exist, or the app cannot see it",
    "is_archived": "the channel is archived",
    "channel_is_archived": "the channel is archived",
    "not_in_channel": "invite the app to the channel",
    "invalid_auth": "the token is invalid",
    "not_authed": "no token was sent",
    "token_revoked": "the token was revoked",
    "invalid_token": "the webhook is invalid or was revoked",
    "no_service": "the webhook is invalid or was removed",
    "missing_scope": "the app needs the chat:write scope",
}

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,79}$")
_REDACTED = "[redacted]"


def classify(status: int, code: str, retry_after: float | None = None) -> DeliveryError:
    """The error for Slack's answer: HTTP status plus its short error code."""
    if status in (408, 429) or status >= 500 or code in TRANSIENT_CODES:
        return TransientDeliveryError(code, f"HTTP {status}", retry_after)
    if code in DESTINATION_CODES or status in (401, 403, 404, 410):
        return DestinationError(code, HINTS.get(code, f"HTTP {status}"))
    return MessageRejected(code, f"HTTP {status}")


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


class _Redact(logging.Filter):
    """Replaces the secrets in every record of one client's logger, arguments included."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        return True


def _sdk_logger(key: str, secrets: tuple[str, ...]) -> logging.Logger:
    logger = logging.getLogger(f"{__name__}.sdk.{key}")
    logger.setLevel(logging.WARNING)  # slack_sdk logs request URLs at DEBUG and INFO
    for old in list(logger.filters):
        logger.removeFilter(old)
    logger.addFilter(_Redact(secrets))
    return logger


def _retry_handlers() -> list[RetryHandler]:
    """One quick retry of a dropped connection, one wait-and-retry of a 429; anything longer is
    the delivery worker's back-off, which sees Slack's ``Retry-After`` too."""
    return [
        ConnectionErrorRetryHandler(
            max_retry_count=1, interval_calculator=FixedValueRetryIntervalCalculator(0.25)
        ),
        RateLimitErrorRetryHandler(max_retry_count=1),
    ]


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def _code(body: object, status: int) -> str:
    text = str(body or "").strip()
    return text if _CODE.match(text) else f"http_{status}"


def _unexpected(exc: Exception, secrets: tuple[str, ...]) -> DeliveryError:
    detail = redact(f"{type(exc).__name__}: {exc}", secrets)[:300]
    if isinstance(exc, SlackRequestError):
        return DestinationError("invalid_request", detail)
    return TransientDeliveryError("network_error", detail)


class WebhookSink:
    """Posts to one incoming webhook (the URL is the secret and names the channel)."""

    def __init__(self, url: SecretStr, *, min_interval_s: float = 1.0, timeout_s: int = 10) -> None:
        raw = url.get_secret_value()
        digest = _digest(raw)
        self.key = f"webhook:{digest}"
        self.description = f"incoming webhook {digest[:6]}"
        self.min_interval_s = min_interval_s
        self._secrets = (raw,)
        self._client = WebhookClient(
            raw,
            timeout=timeout_s,
            logger=_sdk_logger(digest, self._secrets),
            retry_handlers=_retry_handlers(),
        )

    def post(self, message: Message) -> None:
        body = {**message.payload(), "unfurl_links": False, "unfurl_media": False}
        try:
            response = self._client.send_dict(body)
        except Exception as exc:
            raise _unexpected(exc, self._secrets) from None
        if response.status_code == 200:
            return
        code = _code(response.body, response.status_code)
        raise classify(response.status_code, code, _retry_after(response.headers))

    def close(self) -> None:
        """Nothing to release: every request opens its own connection."""


class WebApiSink:
    """Posts with ``chat.postMessage`` to one channel, with a bot token."""

    def __init__(
        self,
        token: SecretStr,
        channel: str,
        api_url: str = "https://slack.com/api/",
        *,
        min_interval_s: float = 1.0,
        timeout_s: int = 10,
    ) -> None:
        self.channel = channel
        digest = _digest(api_url, channel)
        self.key = f"api:{api_url}:{channel.lstrip('#').lower()}"
        self.description = f"{channel} via Web API"
        self.min_interval_s = min_interval_s
        self._secrets = (token.get_secret_value(),)
        self._client = WebClient(
            token=token.get_secret_value(),
            base_url=api_url,
            timeout=timeout_s,
            logger=_sdk_logger(digest, self._secrets),
            retry_handlers=_retry_handlers(),
        )

    def post(self, message: Message) -> None:
        try:
            self._client.chat_postMessage(
                channel=self.channel,
                text=message.text,
                blocks=list(message.blocks) or None,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            response = exc.response
            data = response.data if isinstance(response.data, dict) else {}
            code = _code(data.get("error"), response.status_code)
            raise classify(response.status_code, code, _retry_after(response.headers)) from None
        except Exception as exc:
            raise _unexpected(exc, self._secrets) from None

    def close(self) -> None:
        """Nothing to release: every request opens its own connection."""
