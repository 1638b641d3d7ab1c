"""Alpaca trading through alpaca-py: ``TradingClient`` for REST, ``TradingStream`` for updates.

The only place of ``execution`` that imports alpaca-py, one module a role:

- ``broker``: ``AlpacaBroker`` (submit, cancel, replace, the stream; paper unless live is asked
  for explicitly), on ``reads`` (look-ups, open orders, account, positions, clock, market
  calendar) and ``calls`` (one REST call, its answer mapped to the outcomes of
  ``brokers/base.py``);
- ``session``: the HTTP session the client is given (a timeout on every request, no retries of
  alpaca-py's own, the broker's rate limit waited out);
- ``budget``: ``RequestBudget``, the client-side pacing every request goes through (orders first),
  and the send guard;
- ``answers``: error answers read without trusting them, mapped to the outcomes of
  ``brokers/base.py``;
- ``parse``: Alpaca's JSON as our types, with ``Decimal`` (the calendar and clock as
  ``flinktrade.sessions`` types);
- ``stream``: the ``trade_updates`` stream with our reconnect back-off.
"""

from __future__ import annotations

from flinktrade.execution.brokers.alpaca.broker import (
    LIVE_STREAM_URL,
    LIVE_URL,
    PAPER_STREAM_URL,
    PAPER_URL,
    AlpacaBroker,
    is_live_url,
)
from flinktrade.execution.brokers.alpaca.budget import NotSent, Priority, RequestBudget
from flinktrade.execution.brokers.alpaca.parse import map_status, parse_order, parse_trade_update
from flinktrade.execution.brokers.alpaca.stream import reconnect_backoff

__all__ = [
    "LIVE_STREAM_URL",
    "LIVE_URL",
    "PAPER_STREAM_URL",
    "PAPER_URL",
    "AlpacaBroker",
    "NotSent",
    "Priority",
    "RequestBudget",
    "is_live_url",
    "map_status",
    "parse_order",
    "parse_trade_update",
    "reconnect_backoff",
]
