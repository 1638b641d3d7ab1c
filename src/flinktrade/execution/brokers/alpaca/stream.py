"""Alpaca's ``trade_updates`` stream through alpaca-py's ``TradingStream``, on its own thread.

``UpdatesStream`` says when it (re)connected (the executor then looks up what it may have missed:
events meanwhile are not replayed) and reconnects with our back-off (``reconnect_backoff``:
exponential with jitter, capped, reset once a connection has stayed up). ``start_updates`` hands
each readable update to the executor's handler; an unreadable one is logged and skipped. A stop
closes the socket under the pending receive, so the stream's thread ends within a close handshake:
alpaca-py's own loop looks at a stop only between receives of up to 5 s each (every executor's
stop took ~4 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections import deque
from typing import Any

import websockets
from alpaca.trading.stream import TradingStream
from pydantic import SecretStr

from flinktrade.execution.brokers.alpaca.parse import parse_trade_update
from flinktrade.execution.brokers.base import ReconnectHandler, UpdateHandler

log = logging.getLogger(__name__)


def reconnect_backoff(retries: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds to wait before reconnect attempt ``retries`` (>= 1): ``initial_s`` doubled per
    consecutive failure, capped at ``max_s``, with equal jitter (between half and all of it)."""
    capped = min(max_s, initial_s * 2.0 ** min(max(retries - 1, 0), 30))
    return capped / 2 + rng.uniform(0, capped / 2)


class UpdatesStream(TradingStream):
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
        self._closing: asyncio.Future[None] | None = None

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
        except websockets.ConnectionClosed:
            if self._should_run or self._closing is None:
                raise  # a connection lost: alpaca-py reconnects
            await asyncio.wait((self._closing,))  # closed by ``stop_ws``: the run ends
        finally:
            if time.monotonic() - started >= self._healthy_after_s:
                self._data_received = True  # alpaca-py then starts the back-off afresh

    async def stop_ws(self) -> None:
        """alpaca-py's stop, then the socket's close begun (not awaited: ``stop`` waits for this
        coroutine): the pending receive ends with the connection, and ``_consume`` with it."""
        await super().stop_ws()
        if self._ws is not None and self._closing is None:
            self._closing = asyncio.ensure_future(self._ws.close())


def start_updates(
    on_update: UpdateHandler,
    on_reconnect: ReconnectHandler,
    *,
    key_id: SecretStr,
    secret_key: SecretStr,
    paper: bool,
    url: str,
    backoff: tuple[float, float],
) -> tuple[UpdatesStream, threading.Thread]:
    """Subscribe to ``trade_updates`` at ``url`` and run the stream on a daemon thread."""

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

    stream = UpdatesStream(
        on_reconnect,
        backoff_initial_s=backoff[0],
        backoff_max_s=backoff[1],
        api_key=key_id.get_secret_value(),
        secret_key=secret_key.get_secret_value(),
        paper=paper,
        raw_data=True,
        url_override=url,
    )
    stream.subscribe_trade_updates(handle)
    thread = threading.Thread(target=stream.run, name="alpaca-trade-updates", daemon=True)
    thread.start()
    return stream, thread


def stop_updates(stream: UpdatesStream | None, thread: threading.Thread | None) -> None:
    """Stop the stream (if it ever ran) and wait a little for its thread."""
    if stream is not None and stream._loop is not None:
        with contextlib.suppress(RuntimeError, TimeoutError):
            stream.stop()
    if thread is not None:
        thread.join(timeout=5)
