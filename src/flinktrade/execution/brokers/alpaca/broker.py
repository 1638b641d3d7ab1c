"""``AlpacaBroker``: Alpaca paper (default) or live trading through alpaca-py's ``TradingClient``.

Orders are the spec's type (market, limit, stop, stop-limit, trailing stop; shares, fractional or
not, or a notional; Alpaca's ``bracket``/``oto``/``oco`` classes for absolute-price exits), mapped
to alpaca-py's request classes by ``order_requests`` and submitted with our ``client_order_id``;
``cancel`` looks the order up by that id and deletes it; reads are the look-up by that id, open
orders (nested: a bracket's legs inside their parent),
positions, account, clock and the market calendar (``calendar``, kept for a day). Whatever comes
back (JSON, a proxy's HTML page, an empty body, missing headers, a reset connection, a timeout) ends as one of
the outcomes of ``brokers/base.py``, never as another exception (``answers`` says which). A 429
is waited out and tried again (``rate_limit_retries``) before it counts; before every send of an
order the caller's ``may_send`` guard is asked again (kill switch). The client's HTTP session is
``session.PacedSession`` (timeouts, pacing by ``budget.RequestBudget``); updates come from
``stream``; the wire is parsed in ``parse``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetCalendarRequest, GetOrdersRequest
from pydantic import SecretStr

from flinktrade import sessions
from flinktrade.errors import ConfigError, TransientError
from flinktrade.execution.brokers.alpaca.answers import describe, error_answer, status_of
from flinktrade.execution.brokers.alpaca.budget import NotSent, Priority, RequestBudget
from flinktrade.execution.brokers.alpaca.order_requests import to_alpaca
from flinktrade.execution.brokers.alpaca.parse import (
    as_list,
    parse_account,
    parse_calendar,
    parse_clock,
    parse_market_clock,
    parse_order,
    parse_orders,
    parse_positions,
)
from flinktrade.execution.brokers.alpaca.session import PacedSession, RateLimit
from flinktrade.execution.brokers.alpaca.stream import UpdatesStream, start_updates, stop_updates
from flinktrade.execution.brokers.base import (
    Account,
    Broker,
    BrokerOrder,
    OrderExists,
    OrderRefused,
    OrderRequest,
    OutcomeUnknown,
    ReconnectHandler,
    SendGuard,
    UpdateHandler,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")

CALENDAR_TTL_S = 86_400.0
"""How long an answer of ``GET /v2/calendar`` is used before it is asked for again."""

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


class AlpacaBroker(Broker):
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

    # ------------------------------------------------------------------ calls

    def _call(
        self,
        fn: Callable[..., Any],
        *args: Any,
        priority: Priority = Priority.READ,
        guard: SendGuard | None = None,
    ) -> Any:
        """One REST call through alpaca-py. A 429 is waited out (the session waits for the
        reset) and tried again, the guard asked before each send; other failures raise."""
        context = self._session.context
        context.priority, context.guard = priority, guard
        try:
            for attempt in range(self._retries + 1):
                try:
                    return fn(*args)
                except APIError as exc:
                    if status_of(exc) == 429 and attempt < self._retries:
                        log.warning("Alpaca: rate limited (429), retrying after the reset")
                        continue
                    raise
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            context.priority, context.guard = Priority.READ, None

    def submit(self, request: OrderRequest, may_send: SendGuard | None = None) -> BrokerOrder:
        try:
            order_data = to_alpaca(request)
        except ValueError as exc:
            raise OrderRefused(f"invalid order: {_first_line(exc)}") from None
        coid = request.client_order_id
        try:
            raw = self._call(
                self._client.submit_order, order_data, priority=Priority.ORDER, guard=may_send
            )
        except NotSent as exc:
            raise OrderRefused(f"not sent: {exc}") from None
        except APIError as exc:
            answer = error_answer(exc)
            status = answer.status
            if status == 429:  # Alpaca's or a proxy's: the request was not processed
                raise OrderRefused(f"rate limited: {answer.message}") from None
            if status is None or status >= 500 or not answer.from_alpaca:
                raise OutcomeUnknown(f"HTTP {status}: {answer.message}") from None
            if status == 422 and "client_order_id must be unique" in answer.message:
                raise OrderExists(answer.message) from None
            raise OrderRefused(f"HTTP {status}: {answer.message}") from None
        except Exception as exc:  # timeouts, resets, unreadable bodies: it may have arrived
            raise OutcomeUnknown(f"POST /v2/orders {coid}: {describe(exc)}") from None
        try:
            order = parse_order(raw)
        except Exception as exc:  # an empty or foreign answer: the order may exist
            raise OutcomeUnknown(
                f"unreadable answer to POST /v2/orders ({describe(exc)})"
            ) from None
        if order.client_order_id != coid:
            raise OutcomeUnknown(f"the answer to POST /v2/orders {coid} names another order")
        return order

    def _read(
        self,
        what: str,
        parse: Callable[[Any], _T],
        fn: Callable[..., Any],
        *args: Any,
        missing: bool = False,
    ) -> _T | None:
        """A read: its parsed answer, None for Alpaca's own 404 if ``missing``, otherwise
        ``TransientError`` whatever went wrong."""
        try:
            raw = self._call(fn, *args)
        except NotSent as exc:
            raise TransientError(f"Alpaca {what}: not sent: {exc}") from None
        except APIError as exc:
            answer = error_answer(exc)
            if missing and answer.status == 404 and answer.from_alpaca:
                return None
            raise TransientError(f"Alpaca {what}: HTTP {answer.status}: {answer.message}") from None
        except Exception as exc:  # timeouts, resets, bodies that are not JSON
            raise TransientError(f"Alpaca {what}: {describe(exc)}") from None
        try:
            return parse(raw)
        except Exception as exc:  # an empty or foreign answer
            raise TransientError(f"Alpaca {what}: unreadable answer ({describe(exc)})") from None

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        """The order with ``client_order_id`` (with its legs), None if Alpaca has none."""
        return self._read(
            "order look-up",
            parse_order,
            self._client.get_order_by_client_id,
            client_order_id,
            missing=True,
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

    def open_orders(self) -> list[BrokerOrder]:
        # nested: a bracket's exits come inside their parent (``legs``) and are listed with it
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, nested=True)
        orders = self._read("open orders", parse_orders, self._client.get_orders, request)
        return orders or []

    def positions(self) -> dict[str, Decimal]:
        held = self._read("positions", parse_positions, self._client.get_all_positions)
        return held or {}

    def account(self) -> Account:
        account = self._read("account", parse_account, self._client.get_account)
        if account is None:  # pragma: no cover - only look-ups may be missing
            raise TransientError("Alpaca account: no answer")
        return account

    def market_open(self) -> bool:
        return bool(self._read("clock", parse_clock, self._client.get_clock))

    def clock(self) -> sessions.MarketClock:
        """``GET /v2/clock``: the broker's time, whether the market is open, next open/close."""
        clock = self._read("clock", parse_market_clock, self._client.get_clock)
        if clock is None:  # pragma: no cover - only look-ups may be missing
            raise TransientError("Alpaca clock: no answer")
        return clock

    def calendar(self, start: date, end: date) -> sessions.Calendar:
        """``GET /v2/calendar`` from ``start`` to ``end`` (ET dates, both included), asked for
        at most once a day per range; merge it over ``sessions.bundled()`` to use it."""
        now = time.monotonic()
        kept = self._calendars.get((start, end))
        if kept is not None and now - kept[0] < CALENDAR_TTL_S:
            return kept[1]
        request = GetCalendarRequest(start=start, end=end)
        calendar = self._read(
            "calendar",
            lambda raw: parse_calendar(raw, start, end),
            self._client.get_calendar,
            request,
        )
        if calendar is None:  # pragma: no cover - only look-ups may be missing
            raise TransientError("Alpaca calendar: no answer")
        if len(self._calendars) >= 8:  # a few ranges are in use at a time: stay bounded
            self._calendars.clear()
        self._calendars[(start, end)] = (now, calendar)
        return calendar

    def close_all_positions(self) -> None:
        self._read("close all positions", as_list, self._client.close_all_positions, True)

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


def _first_line(exc: ValueError) -> str:
    """alpaca-py's (pydantic's) refusal in one bounded line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text[:200]
