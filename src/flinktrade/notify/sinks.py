"""Where messages go: the ``Sink`` interface and the errors a sink raises, grouped by what to do.

A chat service is one module implementing ``Sink`` (``slack.py``); ``console.py`` is the sink used
when no chat service is configured. Error messages never carry a URL or a token.
"""

from __future__ import annotations

from typing import Protocol

from flinktrade.errors import ConfigError, FlinktradeError, TransientError
from flinktrade.notify.format import Message


class Sink(Protocol):
    """One destination (a channel). ``key`` identifies it for pacing: two routes posting to the
    same channel share one key. ``description`` is safe to log (no secrets)."""

    key: str
    description: str
    min_interval_s: float

    def post(self, message: Message) -> None:
        """Deliver one message; return only when the service accepted it, else raise a
        ``DeliveryError``."""

    def close(self) -> None:
        """Release connections; ``post`` is not called afterwards."""


class DeliveryError(FlinktradeError):
    """A message was not accepted. ``code`` is the service's short error (``channel_not_found``)."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        super().__init__(f"{code}: {detail}" if detail else code)


class TransientDeliveryError(DeliveryError, TransientError):
    """Try again later (rate limited, 5xx, network); ``retry_after`` is the service's wish, if any."""

    def __init__(self, code: str, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(code, detail)
        self.retry_after = retry_after


class DestinationError(DeliveryError, ConfigError):
    """The destination cannot take any message (bad token, channel not found or archived): no
    retry helps until the configuration is fixed."""


class MessageRejected(DeliveryError):
    """This message was refused (e.g. ``invalid_blocks``); others may still go through."""
