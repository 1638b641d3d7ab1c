"""The Alpaca broker's REST calls through alpaca-py, every answer mapped to an outcome.

``_call`` makes one call on the paced session (its priority and the send guard set for it): a 429
is waited out (the session waits for the reset) and tried again up to ``rate_limit_retries``
times. ``_order_call`` is a call that creates an order: its answer is the order, ``OrderExists``,
``OrderRefused`` or ``OutcomeUnknown`` (``brokers/base.py``; ``answers`` reads error answers
without trusting them). ``_read`` is any other call: its parsed answer, None for Alpaca's own 404
where a look-up may miss, otherwise ``TransientError`` whatever went wrong (JSON, a proxy's HTML
page, an empty body, a reset connection, a timeout).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from flinktrade.errors import TransientError
from flinktrade.execution.brokers.alpaca.answers import describe, error_answer, status_of
from flinktrade.execution.brokers.alpaca.budget import NotSent, Priority
from flinktrade.execution.brokers.alpaca.parse import parse_order
from flinktrade.execution.brokers.alpaca.session import PacedSession
from flinktrade.execution.brokers.base import (
    BrokerOrder,
    OrderExists,
    OrderRefused,
    OutcomeUnknown,
    SendGuard,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class AlpacaCalls:
    """REST calls of the Alpaca broker: the client, its session and how often a 429 is retried
    (set by ``AlpacaBroker``)."""

    _client: TradingClient
    _session: PacedSession
    _retries: int

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

    def _order_call(
        self,
        what: str,
        coid: str,
        fn: Callable[..., Any],
        *args: Any,
        guard: SendGuard | None = None,
    ) -> BrokerOrder:
        """A call that creates order ``coid``, its answer mapped to the outcomes of
        ``brokers/base.py``: the order, ``OrderExists``, ``OrderRefused`` or ``OutcomeUnknown``."""
        try:
            raw = self._call(fn, *args, priority=Priority.ORDER, guard=guard)
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
            raise OutcomeUnknown(f"{what} {coid}: {describe(exc)}") from None
        try:
            order = parse_order(raw)
        except Exception as exc:  # an empty or foreign answer: the order may exist
            raise OutcomeUnknown(f"unreadable answer to {what} ({describe(exc)})") from None
        if order.client_order_id != coid:
            raise OutcomeUnknown(f"the answer to {what} {coid} names another order")
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
