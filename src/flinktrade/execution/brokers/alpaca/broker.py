"""Alpaca trading through alpaca-py: ``TradingClient`` for REST, ``TradingStream`` for updates.

alpaca-py sets no request timeout and retries 429/504 itself with a fixed 3 s wait, which for a
``POST /v2/orders`` means re-sending a request that may have succeeded. So the client gets a
session with a timeout on every request and no retries of its own; this module decides. Whatever
comes back (JSON, a proxy's HTML page, an empty body, missing headers, a reset connection, a
timeout) ends as one of the outcomes of ``brokers/base.py``, never as another exception:

- 429: the request was not processed. Wait for ``X-Ratelimit-Reset`` (bounded), then try again.
  ``X-Ratelimit-Remaining: 0`` on any answer also makes the next request wait for the reset.
- timeout, dropped connection, 5xx, an answer that is not Alpaca's JSON: ``OutcomeUnknown`` for
  an order (resolve by ``client_order_id``), ``TransientError`` for a read.
- 422 ``client_order_id must be unique``: ``OrderExists``.
- any other 4xx: ``OrderRefused``; 404 on a look-up means "no such order" only in Alpaca's JSON.

Every request, orders and polling alike, is paced by one ``RequestBudget`` (default 200 in any
rolling minute, Alpaca's documented limit); orders go first, reads leave them a reserve. Before
every send of an order the caller's ``may_send`` guard is asked again (kill switch).

Responses are read raw and parsed here with ``Decimal``, so no quantity or price passes through a
binary float.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream
from pydantic import SecretStr

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
    SendGuard,
    TradeUpdate,
    UpdateHandler,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")

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


def parse_order(data: Any) -> BrokerOrder:
    """An Alpaca order (JSON) as a ``BrokerOrder``; ``TypeError``/``KeyError``/``ValueError``
    /``ArithmeticError`` if it is not one."""
    if not isinstance(data, dict):
        raise TypeError(f"an order must be an object, not {type(data).__name__}")
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


class Priority(IntEnum):
    """Who asks for a request slot: orders go before polling."""

    ORDER = 0
    READ = 1


class NotSent(Exception):
    """A request was not sent: the guard said no, or the wait for a slot would be too long."""


_SLICE_S = 0.25  # longest sleep between two looks at the guard while waiting


def _ask(guard: SendGuard | None) -> None:
    """Raise ``NotSent`` unless the guard lets the request go (a failing guard is a no)."""
    if guard is None:
        return
    try:
        reason = guard()
    except Exception as exc:  # the caller's code: whatever it raises, do not send
        raise NotSent(f"send guard failed ({type(exc).__name__})") from None
    if reason is not None:
        raise NotSent(reason)


class RequestBudget:
    """Client-side pacing: at most ``limit`` requests in any rolling ``window_s``.

    A request holds a slot from before it is sent until ``window_s`` after its answer came back,
    so the broker, which counts arrivals, never sees more than ``limit`` in a window. Orders go
    first: a read waits while an order waits, and leaves the last ``reserve`` slots (default a
    tenth) to orders. ``try_acquire`` is the pure decision (clock injected); ``acquire`` waits.
    """

    def __init__(
        self,
        limit: int = 200,
        window_s: float = 60.0,
        *,
        reserve: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ConfigError("the trading request budget needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self.reserve = limit // 10 if reserve is None else max(0, min(reserve, limit - 1))
        self._clock = clock
        self._done: deque[float] = deque()  # when each answer in the window came back
        self._in_flight = 0
        self._orders_waiting = 0
        self._cond = threading.Condition()

    def used(self) -> int:
        """Slots taken now: requests in flight plus answers within the window."""
        with self._cond:
            return self._used(self._clock())

    def _used(self, now: float) -> int:
        horizon = now - self.window_s
        while self._done and self._done[0] <= horizon:
            self._done.popleft()
        return len(self._done) + self._in_flight

    def try_acquire(self, priority: Priority) -> float:
        """Take a slot (returns 0.0) or say how long to wait before asking again."""
        with self._cond:
            return self._try(priority, self._clock())

    def _try(self, priority: Priority, now: float) -> float:
        used = self._used(now)
        cap = self.limit if priority is Priority.ORDER else self.limit - self.reserve
        yields = priority is Priority.READ and self._orders_waiting > 0
        if used < cap and not yields:
            self._in_flight += 1
            return 0.0
        if self._done and used >= cap:
            return max(self._done[0] + self.window_s - now, 0.001)
        return _SLICE_S  # an answer or a waiting order's turn will free it: look again soon

    def acquire(
        self, priority: Priority, guard: SendGuard | None = None, max_wait_s: float = 60.0
    ) -> None:
        """Wait for a slot (asking the guard between looks); ``NotSent`` if it would take
        longer than ``max_wait_s`` or the guard says no."""
        start = self._clock()
        with self._cond:
            if priority is Priority.ORDER:
                self._orders_waiting += 1
        try:
            while True:
                with self._cond:
                    now = self._clock()
                    delay = self._try(priority, now)
                    if delay == 0.0:
                        return
                    if now + delay - start > max_wait_s:
                        raise NotSent(
                            f"request budget ({self.limit} per {self.window_s:g}s) spent; "
                            f"next slot in {delay:.0f}s"
                        )
                    self._cond.wait(min(delay, _SLICE_S))
                _ask(guard)
        finally:
            if priority is Priority.ORDER:
                with self._cond:
                    self._orders_waiting -= 1
                    self._cond.notify_all()

    def release(self, sent: bool) -> None:
        """Give the slot back: a sent request keeps counting for ``window_s`` from now."""
        with self._cond:
            self._in_flight -= 1
            if sent:
                self._done.append(self._clock())
            self._cond.notify_all()


class _RateLimit:
    """What the broker's last answers said about its rate limit, shared by every request.
    Headers may be missing (a proxy's error page): then nothing is learnt from that answer."""

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self.remaining: int | None = None
        self.reset_at: float | None = None  # epoch seconds
        self.lock = threading.Lock()
        self.waited_s = 0.0

    def observe(self, response: requests.Response) -> None:
        headers = response.headers
        with self.lock:
            remaining = _number(headers.get("X-Ratelimit-Remaining"))
            reset = _number(headers.get("X-Ratelimit-Reset"))
            if remaining is not None:
                self.remaining = int(remaining)
            if reset is not None:
                self.reset_at = reset
            if response.status_code == 429:
                self.remaining = 0
                retry_after = _number(headers.get("Retry-After"))
                if retry_after is not None:
                    self.reset_at = time.time() + retry_after
                elif self.reset_at is None or self.reset_at < time.time():
                    self.reset_at = time.time() + 1.0

    def wait(self, guard: SendGuard | None = None) -> None:
        """Before a request: if the broker said the budget is spent, wait until it resets
        (bounded, asking the guard between looks)."""
        with self.lock:
            if self.remaining is None or self.remaining > 0 or self.reset_at is None:
                return
            until = self.reset_at
            self.remaining = None  # one request probes after the wait
        delay = until - time.time()
        if delay <= 0:
            return
        if delay > self.max_wait_s:
            raise NotSent(f"Alpaca rate limit resets in {delay:.0f}s; not waiting")
        log.warning("Alpaca rate limit reached: waiting %.1fs", delay)
        self.waited_s += delay
        while (left := until - time.time()) > 0:
            time.sleep(min(left, _SLICE_S))
            _ask(guard)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


class _Session(requests.Session):
    """A session whose every request has a timeout and goes through the rate limit, the budget
    and the caller's guard (per thread: ``context.priority``, ``context.guard``)."""

    def __init__(
        self, timeout_s: float, rate: _RateLimit, budget: RequestBudget, max_wait_s: float
    ) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.rate = rate
        self.budget = budget
        self.max_wait_s = max_wait_s
        self.context = threading.local()

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout_s)
        priority: Priority = getattr(self.context, "priority", Priority.READ)
        guard: SendGuard | None = getattr(self.context, "guard", None)
        self.rate.wait(guard)
        self.budget.acquire(priority, guard, self.max_wait_s)
        sent = False
        try:
            _ask(guard)
            sent = True
            response = super().request(method, url, *args, **kwargs)
        finally:
            self.budget.release(sent)
        self.rate.observe(response)
        return response


@dataclass(frozen=True)
class _ErrorAnswer:
    """An HTTP error answer, read without trusting it to be Alpaca's."""

    status: int | None
    message: str
    from_alpaca: bool
    """The body is Alpaca's JSON error (``{"code", "message"}``), not a proxy's page."""


def _error_answer(exc: APIError) -> _ErrorAnswer:
    response = exc.response
    status = getattr(response, "status_code", None)
    text = str(exc.args[0]) if exc.args else ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and "message" in data:
        return _ErrorAnswer(status, str(data["message"])[:200], True)
    headers = getattr(response, "headers", None) or {}
    kind = str(headers.get("Content-Type") or "no content type").split(";")[0].strip()[:40]
    return _ErrorAnswer(status, f"not an Alpaca answer ({kind}, {len(text)} bytes)", False)


def _describe(exc: BaseException) -> str:
    """A short, secret-free name for a failure (never the request or the response body)."""
    if isinstance(exc, requests.Timeout):
        return f"timeout ({type(exc).__name__})"
    if isinstance(exc, ValueError):
        return f"an answer that is not JSON ({type(exc).__name__})"
    return type(exc).__name__


def reconnect_backoff(retries: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds to wait before reconnect attempt ``retries`` (>= 1): ``initial_s`` doubled per
    consecutive failure, capped at ``max_s``, with equal jitter (between half and all of it)."""
    capped = min(max_s, initial_s * 2.0 ** min(max(retries - 1, 0), 30))
    return capped / 2 + rng.uniform(0, capped / 2)


class _Stream(TradingStream):
    """``TradingStream`` that says when it (re)connected (events meanwhile are not replayed) and
    reconnects with our back-off: exponential with jitter, capped, reset once a connection has
    stayed up ``healthy_after_s``. ``delays`` keeps the latest waits it chose."""

    def __init__(
        self,
        on_connect: ReconnectHandler,
        *,
        backoff_initial_s: float,
        backoff_max_s: float,
        healthy_after_s: float = 30.0,
        rng: random.Random | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._on_connect = on_connect
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._healthy_after_s = healthy_after_s
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.delays: deque[float] = deque(maxlen=100)
        self.connects = 0

    def _reconnect_delay(self, retries: int) -> float:
        delay = reconnect_backoff(retries, *self._backoff, self._rng)
        self.delays.append(delay)
        log.warning("trade updates: reconnecting in %.2fs (attempt %d)", delay, retries)
        return delay

    async def _start_ws(self) -> None:
        await super()._start_ws()  # type: ignore[no-untyped-call]
        self.connects += 1
        try:
            self._on_connect()
        except Exception:  # the executor's handler: a failure must not loop the connection
            log.exception("trade updates: the reconnect handler failed")

    async def _consume(self) -> None:
        started = time.monotonic()
        try:
            await super()._consume()  # type: ignore[no-untyped-call]
        finally:
            if time.monotonic() - started >= self._healthy_after_s:
                self._data_received = True  # alpaca-py then starts the back-off afresh


class AlpacaBroker(Broker):
    """Alpaca paper (default) or live trading."""

    name = "alpaca"

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
        self._rate = _RateLimit(max_rate_limit_wait_s)
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
        self._session = _Session(timeout_s, self._rate, self.budget, max_rate_limit_wait_s)
        self._client._retry = 0
        self._client._session = self._session
        self._stream: _Stream | None = None
        self._stream_thread: threading.Thread | None = None

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
                    if _status(exc) == 429 and attempt < self._retries:
                        log.warning("Alpaca: rate limited (429), retrying after the reset")
                        continue
                    raise
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            context.priority, context.guard = Priority.READ, None

    def submit(self, request: OrderRequest, may_send: SendGuard | None = None) -> BrokerOrder:
        if request.qty != request.qty.to_integral_value() or request.type != "market":
            raise OrderRefused("only market orders for whole shares are supported")
        try:
            order_data = MarketOrderRequest(
                symbol=request.symbol,
                qty=float(request.qty),  # a whole number: exact as a float
                side=OrderSide.BUY if request.side == Side.BUY else OrderSide.SELL,
                time_in_force=TimeInForce(request.time_in_force),
                client_order_id=request.client_order_id,
            )
        except ValueError as exc:
            raise OrderRefused(f"invalid order: {type(exc).__name__}") from None
        coid = request.client_order_id
        try:
            raw = self._call(
                self._client.submit_order, order_data, priority=Priority.ORDER, guard=may_send
            )
        except NotSent as exc:
            raise OrderRefused(f"not sent: {exc}") from None
        except APIError as exc:
            answer = _error_answer(exc)
            status = answer.status
            if status == 429:  # Alpaca's or a proxy's: the request was not processed
                raise OrderRefused(f"rate limited: {answer.message}") from None
            if status is None or status >= 500 or not answer.from_alpaca:
                raise OutcomeUnknown(f"HTTP {status}: {answer.message}") from None
            if status == 422 and "client_order_id must be unique" in answer.message:
                raise OrderExists(answer.message) from None
            raise OrderRefused(f"HTTP {status}: {answer.message}") from None
        except Exception as exc:  # timeouts, resets, unreadable bodies: it may have arrived
            raise OutcomeUnknown(f"POST /v2/orders {coid}: {_describe(exc)}") from None
        try:
            order = parse_order(raw)
        except Exception as exc:  # an empty or foreign answer: the order may exist
            raise OutcomeUnknown(
                f"unreadable answer to POST /v2/orders ({_describe(exc)})"
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
            answer = _error_answer(exc)
            if missing and answer.status == 404 and answer.from_alpaca:
                return None
            raise TransientError(f"Alpaca {what}: HTTP {answer.status}: {answer.message}") from None
        except Exception as exc:  # timeouts, resets, bodies that are not JSON
            raise TransientError(f"Alpaca {what}: {_describe(exc)}") from None
        try:
            return parse(raw)
        except Exception as exc:  # an empty or foreign answer
            raise TransientError(f"Alpaca {what}: unreadable answer ({_describe(exc)})") from None

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        return self._read(
            "order look-up",
            parse_order,
            self._client.get_order_by_client_id,
            client_order_id,
            missing=True,
        )

    def open_orders(self) -> list[BrokerOrder]:
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)
        orders = self._read("open orders", _parse_orders, self._client.get_orders, request)
        return orders or []

    def positions(self) -> dict[str, Decimal]:
        held = self._read("positions", _parse_positions, self._client.get_all_positions)
        return held or {}

    def account(self) -> Account:
        account = self._read("account", _parse_account, self._client.get_account)
        if account is None:  # pragma: no cover - only look-ups may be missing
            raise TransientError("Alpaca account: no answer")
        return account

    def market_open(self) -> bool:
        return bool(self._read("clock", _parse_clock, self._client.get_clock))

    def close_all_positions(self) -> None:
        self._read("close all positions", _list, self._client.close_all_positions, True)

    # ------------------------------------------------------------------ stream

    def start_updates(self, on_update: UpdateHandler, on_reconnect: ReconnectHandler) -> None:
        async def handle(message: Any) -> None:
            data = message.get("data") if isinstance(message, dict) else None
            if not isinstance(data, dict) or "order" not in data:
                return
            try:
                update = parse_trade_update(data)
            except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
                log.error("unreadable trade update (%s): %s", exc, json.dumps(data)[:500])
                return
            on_update(update)

        self._stream = _Stream(
            on_reconnect,
            backoff_initial_s=self._reconnect[0],
            backoff_max_s=self._reconnect[1],
            api_key=self._key_id.get_secret_value(),
            secret_key=self._secret_key.get_secret_value(),
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
        self._session.close()


def _status(exc: APIError) -> int | None:
    return getattr(exc.response, "status_code", None)


def _list(raw: Any) -> list[Any]:
    if not isinstance(raw, list):  # an empty body too: "nothing" is [] in Alpaca's JSON
        raise TypeError(f"expected a list, got {type(raw).__name__}")
    return raw


def _object(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TypeError(f"expected an object, got {type(raw).__name__}")
    return raw


def _parse_orders(raw: Any) -> list[BrokerOrder]:
    return [parse_order(_object(o)) for o in _list(raw)]


def _parse_positions(raw: Any) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for item in _list(raw):
        p = _object(item)
        qty = Decimal(str(p["qty"]))
        if p.get("side") == "short" and qty > 0:
            qty = -qty
        if qty:
            out[str(p["symbol"])] = qty
    return out


def _parse_account(raw: Any) -> Account:
    data = _object(raw)
    return Account(
        equity=_required(data, "equity"),
        last_equity=_dec(data.get("last_equity")) or Decimal(0),
        cash=_dec(data.get("cash")) or Decimal(0),
        trading_blocked=bool(data.get("trading_blocked") or data.get("account_blocked")),
    )


def _parse_clock(raw: Any) -> bool:
    is_open = _object(raw)["is_open"]
    if not isinstance(is_open, bool):
        raise TypeError("is_open is not a boolean")
    return is_open


def _required(data: dict[str, Any], name: str) -> Decimal:
    value = _dec(data.get(name))
    if value is None:
        raise KeyError(name)
    return value
