"""``AlpacaBroker``: Alpaca paper (default) or live trading through alpaca-py's ``TradingClient``.

Orders are the spec's type (market, limit, stop, stop-limit, trailing stop; shares, fractional or
not, or a notional; Alpaca's ``bracket``/``oto``/``oco`` classes for absolute-price exits), mapped
to alpaca-py's request classes by ``order_requests`` and submitted with our ``client_order_id``;
``cancel`` looks the order up by that id and deletes it; ``replace`` looks it up and ``PATCH``es it
(alpaca-py's ``ReplaceOrderRequest``, the new ``client_order_id`` in it; whole shares only, as
alpaca-py's ``qty`` is an int), its answers mapped as ``submit``'s; reads are the look-up by that id, open
orders (nested: a bracket's legs inside their parent),
positions, account, clock and the market calendar (``calendar``, kept for a day). Whatever comes
back (JSON, a proxy's HTML page, an empty body, missing headers, a reset connection, a timeout) ends as one of
the outcomes of ``brokers/base.py``, never as another exception (``answers`` says which). A 429
is waited out and tried again (``rate_limit_retries``) before it counts; before every send of an
order the caller's ``may_send`` guard is asked again (kill switch). The client's HTTP session is
``session.PacedSession`` (timeouts, pacing by ``budget.RequestBudget``); updates come from
``stream``; the wire is parsed in ``parse``. The broker is in parts: ``calls`` (one REST call,
its answer mapped to an outcome), ``reads`` (the reads, the base class) and this module (sending,
cancelling, replacing, the stream).
"""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal
from urllib.parse import urlsplit

from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import ReplaceOrderRequest
from pydantic import SecretStr

from flinktrade import sessions
from flinktrade.errors import ConfigError, TransientError
from flinktrade.execution.brokers.alpaca.answers import describe, error_answer
from flinktrade.execution.brokers.alpaca.budget import NotSent, Priority, RequestBudget
from flinktrade.execution.brokers.alpaca.order_requests import to_alpaca
from flinktrade.execution.brokers.alpaca.reads import AlpacaReads
from flinktrade.execution.brokers.alpaca.session import PacedSession, RateLimit
from flinktrade.execution.brokers.alpaca.stream import UpdatesStream, start_updates, stop_updates
from flinktrade.execution.brokers.base import (
    Broker,
    BrokerOrder,
    OrderRefused,
    OrderRequest,
    OutcomeUnknown,
    ReconnectHandler,
    SendGuard,
    UpdateHandler,
)

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
PAPER_STREAM_URL = "wss://paper-api.alpaca.markets/stream"
LIVE_STREAM_URL = "wss://api.alpaca.markets/stream"


def is_live_url(url: str | None) -> bool:
    """Whether a trading URL reaches real money: anything but paper and loopback is live."""
    if url is None:
        return False
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "::1") or host.startswith("127."):
        return False
    return not host.startswith("paper-api.")


class AlpacaBroker(AlpacaReads, Broker):
    """Alpaca paper (default) or live trading."""

    name = "alpaca"
    fractional = True

    def __init__(
        self,
        key_id: str | SecretStr,
        secret_key: str | SecretStr,
        *,
        base_url: str | None = None,
        stream_url: str | None = None,
        live: bool = False,
        timeout_s: float = 10.0,
        max_rate_limit_wait_s: float = 30.0,
        rate_limit_retries: int = 3,
        requests_per_minute: int = 200,
        budget: RequestBudget | None = None,
        reconnect_initial_s: float = 1.0,
        reconnect_max_s: float = 30.0,
    ) -> None:
        key = key_id if isinstance(key_id, SecretStr) else SecretStr(key_id)
        secret = secret_key if isinstance(secret_key, SecretStr) else SecretStr(secret_key)
        if not key.get_secret_value() or not secret.get_secret_value():
            raise ConfigError("Alpaca needs APCA_API_KEY_ID and APCA_API_SECRET_KEY")
        if is_live_url(base_url) and not live:
            raise ConfigError(
                "APCA_API_BASE_URL points at live trading; pass --live "
                "--i-understand-this-is-real-money to trade real money"
            )
        self.paper = not live
        self.base_url = (base_url or (LIVE_URL if live else PAPER_URL)).rstrip("/")
        self.stream_url = stream_url or (LIVE_STREAM_URL if live else PAPER_STREAM_URL)
        self._key_id, self._secret_key = key, secret
        self._rate = RateLimit(max_rate_limit_wait_s)
        self.budget = budget or RequestBudget(requests_per_minute, 60.0)
        self._retries = rate_limit_retries
        self._reconnect = (reconnect_initial_s, reconnect_max_s)
        self._client = TradingClient(
            key.get_secret_value(),
            secret.get_secret_value(),
            paper=self.paper,
            raw_data=True,
            url_override=self.base_url,
        )
        # alpaca-py has no options for these: no retries of its own (we decide what may be
        # retried), and a session that bounds and paces every request.
        self._session = PacedSession(timeout_s, self._rate, self.budget, max_rate_limit_wait_s)
        self._client._retry = 0
        self._client._session = self._session
        self._stream: UpdatesStream | None = None
        self._stream_thread: threading.Thread | None = None
        self._calendars: dict[tuple[date, date], tuple[float, sessions.Calendar]] = {}

    def submit(self, request: OrderRequest, may_send: SendGuard | None = None) -> BrokerOrder:
        try:
            order_data = to_alpaca(request)
        except ValueError as exc:
            raise OrderRefused(f"invalid order: {_first_line(exc)}") from None
        return self._order_call(
            "POST /v2/orders",
            request.client_order_id,
            self._client.submit_order,
            order_data,
            guard=may_send,
        )

    def replace(
        self,
        client_order_id: str,
        new_client_order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        trail: Decimal | None = None,
    ) -> BrokerOrder:
        """``PATCH /v2/orders/{id}`` of the order with ``client_order_id`` (looked up first for
        its id); a look-up that fails is ``OutcomeUnknown`` (nothing was sent: the new id is not
        found and the replace may be asked again)."""
        if qty is not None and qty != qty.to_integral_value():
            raise OrderRefused(f"alpaca-py replaces whole share quantities only, not {qty}")
        try:
            found = self.get_order(client_order_id)
        except TransientError as exc:
            raise OutcomeUnknown(f"replace of {client_order_id}: {exc}") from None
        if found is None or found.status.final:
            raise OrderRefused(f"replace of {client_order_id}: the order is not open")
        try:
            data = ReplaceOrderRequest(
                qty=None if qty is None else int(qty),
                limit_price=_float(limit_price),
                stop_price=_float(stop_price),
                trail=_float(trail),
                client_order_id=new_client_order_id,
            )
        except ValueError as exc:
            raise OrderRefused(f"invalid replace: {_first_line(exc)}") from None
        return self._order_call(
            f"PATCH /v2/orders/{found.id}",
            new_client_order_id,
            self._client.replace_order_by_id,
            found.id,
            data,
        )

    def cancel(self, client_order_id: str) -> bool:
        """``DELETE /v2/orders/{id}`` of the order with ``client_order_id`` (looked up first for
        its id): Alpaca's 404 or 422 ("not cancelable": final already) is False, nothing to do."""
        found = self.get_order(client_order_id)
        if found is None or found.status.final:
            return False
        try:
            self._call(self._client.cancel_order_by_id, found.id, priority=Priority.ORDER)
        except NotSent as exc:
            raise TransientError(f"Alpaca cancel of {client_order_id}: not sent: {exc}") from None
        except APIError as exc:
            answer = error_answer(exc)
            if answer.from_alpaca and answer.status in (404, 422):
                return False
            raise TransientError(
                f"Alpaca cancel of {client_order_id}: HTTP {answer.status}: {answer.message}"
            ) from None
        except Exception as exc:  # timeouts, resets: the cancel may have been taken
            raise TransientError(f"Alpaca cancel of {client_order_id}: {describe(exc)}") from None
        return True

    # ------------------------------------------------------------------ stream

    def start_updates(self, on_update: UpdateHandler, on_reconnect: ReconnectHandler) -> None:
        self._stream, self._stream_thread = start_updates(
            on_update,
            on_reconnect,
            key_id=self._key_id,
            secret_key=self._secret_key,
            paper=self.paper,
            url=self.stream_url,
            backoff=self._reconnect,
        )

    def close(self) -> None:
        stop_updates(self._stream, self._stream_thread)
        self._session.close()


def _float(value: Decimal | None) -> float | None:
    """A price as alpaca-py takes it (ours are on the tick: the same digits on the wire)."""
    return None if value is None else float(value)


def _first_line(exc: ValueError) -> str:
    """alpaca-py's (pydantic's) refusal in one bounded line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text[:200]
