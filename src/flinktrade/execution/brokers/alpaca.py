"""Alpaca trading through alpaca-py: ``TradingClient`` for REST, ``TradingStream`` for updates.

alpaca-py sets no request timeout and retries 429/504 itself with a fixed 3 s wait, which for a
``POST /v2/orders`` means re-sending a request that may have succeeded. So the client gets a
session with a timeout on every request and no retries of its own; this module decides:

- 429: the request was not processed. Wait for ``X-Ratelimit-Reset`` (bounded), then try again.
  ``X-Ratelimit-Remaining: 0`` on any answer also makes the next request wait for the reset.
- timeout, dropped connection, 5xx: ``OutcomeUnknown`` (resolve by ``client_order_id``).
- 422 ``client_order_id must be unique``: ``OrderExists``.
- any other 4xx: ``OrderRefused``.

Responses are read raw and parsed here with ``Decimal``, so no quantity or price passes through a
binary float.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream

from flinktrade.errors import ConfigError, TransientError
from flinktrade.events import OrderStatus, Side
from flinktrade.execution.brokers.base import (
    Account,
    Broker,
    BrokerOrder,
    OrderExists,
    OrderRefused,
    OrderRequest,
    OutcomeUnknown,
    ReconnectHandler,
    TradeUpdate,
    UpdateHandler,
)

log = logging.getLogger(__name__)

PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
PAPER_STREAM_URL = "wss://paper-api.alpaca.markets/stream"
LIVE_STREAM_URL = "wss://api.alpaca.markets/stream"

_STATUS = {
    "new": OrderStatus.NEW,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "replaced": OrderStatus.CANCELED,  # this order is over; its replacement is another order
    "pending_new": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED,
    "done_for_day": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED,
    "pending_review": OrderStatus.ACCEPTED,
}


def map_status(status: str, filled_qty: Decimal = Decimal(0)) -> OrderStatus:
    """Our status for an Alpaca status word; unknown words count as open (keep following)."""
    mapped = _STATUS.get(status, OrderStatus.ACCEPTED)
    if mapped == OrderStatus.ACCEPTED and filled_qty > 0:
        return OrderStatus.PARTIALLY_FILLED
    return mapped


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def parse_order(data: dict[str, Any]) -> BrokerOrder:
    """An Alpaca order (JSON) as a ``BrokerOrder``."""
    filled = _dec(data.get("filled_qty")) or Decimal(0)
    status = str(data.get("status") or "")
    return BrokerOrder(
        id=str(data["id"]),
        client_order_id=str(data.get("client_order_id") or ""),
        symbol=str(data.get("symbol") or ""),
        side=Side(str(data.get("side") or "buy")),
        qty=_dec(data.get("qty")),
        status=map_status(status, filled),
        filled_qty=filled,
        filled_avg_price=_dec(data.get("filled_avg_price")),
        broker_status=status,
    )


def parse_trade_update(data: dict[str, Any]) -> TradeUpdate:
    """The ``data`` of a ``trade_updates`` message as a ``TradeUpdate``."""
    stamp = data.get("timestamp")
    ts = 0
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            from datetime import datetime

            ts = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    execution = data.get("execution_id")
    return TradeUpdate(
        event=str(data.get("event") or ""),
        order=parse_order(data["order"]),
        execution_id=None if execution is None else str(execution),
        price=_dec(data.get("price")),
        qty=_dec(data.get("qty")),
        position_qty=_dec(data.get("position_qty")),
        ts=ts,
    )


def is_live_url(url: str | None) -> bool:
    """Whether a trading URL reaches real money: anything but paper and loopback is live."""
    if url is None:
        return False
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "::1") or host.startswith("127."):
        return False
    return not host.startswith("paper-api.")


class _RateLimit:
    """What the last answers said about the rate limit, shared by every request."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self.remaining: int | None = None
        self.reset_at: float | None = None  # epoch seconds
        self.lock = threading.Lock()
        self.waited_s = 0.0

    def observe(self, response: requests.Response) -> None:
        headers = response.headers
        with self.lock:
            with contextlib.suppress(TypeError, ValueError):
                self.remaining = int(headers["X-Ratelimit-Remaining"])
            with contextlib.suppress(TypeError, ValueError):
                self.reset_at = float(headers["X-Ratelimit-Reset"])
            if response.status_code == 429:
                self.remaining = 0
                retry_after = headers.get("Retry-After")
                if retry_after and retry_after.isdigit():
                    self.reset_at = time.time() + int(retry_after)
                elif self.reset_at is None or self.reset_at < time.time():
                    self.reset_at = time.time() + 1.0

    def wait(self) -> None:
        """Before a request: if the budget is spent, sleep until it resets (bounded)."""
        with self.lock:
            if self.remaining is None or self.remaining > 0 or self.reset_at is None:
                return
            delay = self.reset_at - time.time()
            self.remaining = None  # one request probes after the wait
        if delay <= 0:
            return
        if delay > self.max_wait_s:
            raise TransientError(f"Alpaca rate limit resets in {delay:.0f}s; not waiting")
        log.warning("Alpaca rate limit reached: waiting %.1fs", delay)
        self.waited_s += delay
        time.sleep(delay)


class _Session(requests.Session):
    """A session whose every request has a timeout and respects the rate limit."""

    def __init__(self, timeout_s: float, rate: _RateLimit) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.rate = rate

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout_s)
        self.rate.wait()
        response = super().request(method, url, *args, **kwargs)
        self.rate.observe(response)
        return response


class _Stream(TradingStream):
    """``TradingStream`` that says when it (re)connected: events meanwhile are not replayed."""

    def __init__(self, on_connect: ReconnectHandler, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_connect = on_connect

    async def _start_ws(self) -> None:
        await super()._start_ws()  # type: ignore[no-untyped-call]
        self._on_connect()


class AlpacaBroker(Broker):
    """Alpaca paper (default) or live trading."""

    name = "alpaca"

    def __init__(
        self,
        key_id: str,
        secret_key: str,
        *,
        base_url: str | None = None,
        stream_url: str | None = None,
        live: bool = False,
        timeout_s: float = 10.0,
        max_rate_limit_wait_s: float = 30.0,
        rate_limit_retries: int = 3,
    ) -> None:
        if not key_id or not secret_key:
            raise ConfigError("Alpaca needs APCA_API_KEY_ID and APCA_API_SECRET_KEY")
        if is_live_url(base_url) and not live:
            raise ConfigError(
                "APCA_API_BASE_URL points at live trading; pass --live "
                "--i-understand-this-is-real-money to trade real money"
            )
        self.paper = not live
        self.base_url = (base_url or (LIVE_URL if live else PAPER_URL)).rstrip("/")
        self.stream_url = stream_url or (LIVE_STREAM_URL if live else PAPER_STREAM_URL)
        self._key_id, self._secret_key = key_id, secret_key
        self._rate = _RateLimit(max_rate_limit_wait_s)
        self._retries = rate_limit_retries
        self._client = TradingClient(
            key_id, secret_key, paper=self.paper, raw_data=True, url_override=self.base_url
        )
        # alpaca-py has no options for these: no retries of its own (we decide what may be
        # retried), and a session that bounds every request.
        self._client._retry = 0
        self._client._session = _Session(timeout_s, self._rate)
        self._stream: _Stream | None = None
        self._stream_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ calls

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        """One REST call with 429 handled; other failures raise as they come."""
        for attempt in range(self._retries + 1):
            try:
                return fn(*args)
            except APIError as exc:
                if exc.status_code == 429 and attempt < self._retries:
                    log.warning("Alpaca %s: rate limited (429), retrying after the reset", what)
                    self._rate.wait()
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def submit(self, request: OrderRequest) -> BrokerOrder:
        side = OrderSide.BUY if request.side == Side.BUY else OrderSide.SELL
        if request.qty != request.qty.to_integral_value() or request.type != "market":
            raise OrderRefused("only market orders for whole shares are supported")
        order_data = MarketOrderRequest(
            symbol=request.symbol,
            qty=float(request.qty),  # a whole number: exact as a float
            side=side,
            time_in_force=TimeInForce(request.time_in_force),
            client_order_id=request.client_order_id,
        )
        try:
            raw = self._call("submit order", self._client.submit_order, order_data)
        except APIError as exc:
            status = exc.status_code
            message = _message(exc)
            if status is None or status >= 500:
                raise OutcomeUnknown(f"HTTP {status}: {message}") from None
            if status == 422 and "client_order_id must be unique" in message:
                raise OrderExists(message) from None
            if status == 429:
                raise OrderRefused(f"rate limited: {message}") from None
            raise OrderRefused(f"HTTP {status}: {message}") from None
        except TransientError as exc:  # rate limit wait too long: not sent
            raise OrderRefused(str(exc)) from None
        except requests.RequestException as exc:
            raise OutcomeUnknown(f"{type(exc).__name__}") from None
        if not isinstance(raw, dict):
            raise OutcomeUnknown("empty answer to POST /v2/orders")
        return parse_order(raw)

    def _read(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return self._call(what, fn, *args)
        except APIError as exc:
            raise TransientError(
                f"Alpaca {what}: HTTP {exc.status_code}: {_message(exc)}"
            ) from None
        except requests.RequestException as exc:
            raise TransientError(f"Alpaca {what}: {type(exc).__name__}") from None

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        try:
            raw = self._call("get order", self._client.get_order_by_client_id, client_order_id)
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise TransientError(
                f"Alpaca order look-up: HTTP {exc.status_code}: {_message(exc)}"
            ) from None
        except requests.RequestException as exc:
            raise TransientError(f"Alpaca order look-up: {type(exc).__name__}") from None
        return parse_order(raw)

    def open_orders(self) -> list[BrokerOrder]:
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)
        raw = self._read("open orders", self._client.get_orders, request)
        return [parse_order(o) for o in raw or []]

    def positions(self) -> dict[str, Decimal]:
        raw = self._read("positions", self._client.get_all_positions)
        out: dict[str, Decimal] = {}
        for p in raw or []:
            qty = Decimal(str(p["qty"]))
            if p.get("side") == "short" and qty > 0:
                qty = -qty
            if qty:
                out[str(p["symbol"])] = qty
        return out

    def account(self) -> Account:
        raw = self._read("account", self._client.get_account)
        return Account(
            equity=_dec(raw.get("equity")) or Decimal(0),
            last_equity=_dec(raw.get("last_equity")) or Decimal(0),
            cash=_dec(raw.get("cash")) or Decimal(0),
            trading_blocked=bool(raw.get("trading_blocked") or raw.get("account_blocked")),
        )

    def market_open(self) -> bool:
        raw = self._read("clock", self._client.get_clock)
        return bool(raw.get("is_open"))

    def close_all_positions(self) -> None:
        self._read("close all positions", self._client.close_all_positions, True)

    # ------------------------------------------------------------------ stream

    def start_updates(self, on_update: UpdateHandler, on_reconnect: ReconnectHandler) -> None:
        async def handle(message: Any) -> None:
            data = message.get("data") if isinstance(message, dict) else None
            if not isinstance(data, dict) or "order" not in data:
                return
            try:
                update = parse_trade_update(data)
            except (KeyError, ValueError, ArithmeticError) as exc:
                log.error("unreadable trade update (%s): %s", exc, json.dumps(data)[:500])
                return
            on_update(update)

        self._stream = _Stream(
            on_reconnect,
            api_key=self._key_id,
            secret_key=self._secret_key,
            paper=self.paper,
            raw_data=True,
            url_override=self.stream_url,
        )
        self._stream.subscribe_trade_updates(handle)
        self._stream_thread = threading.Thread(
            target=self._stream.run, name="alpaca-trade-updates", daemon=True
        )
        self._stream_thread.start()

    def close(self) -> None:
        stream = self._stream
        if stream is not None and stream._loop is not None:
            with contextlib.suppress(RuntimeError, TimeoutError):
                stream.stop()
        if self._stream_thread is not None:
            self._stream_thread.join(timeout=5)
        self._client._session.close()


def _message(exc: APIError) -> str:
    try:
        return str(exc.message)
    except (ValueError, KeyError, TypeError):
        return str(exc)[:200]
