"""The REST side of the fake Alpaca market data API: pages of bars, trades and news.

``/v2/stocks/bars``, ``/v2/stocks/trades`` (``{"bars"|"trades": {symbol: [...]},
"next_page_token"}``, ordered by symbol then time) and ``/v1beta1/news`` (``{"news": [...],
"next_page_token"}``), paginated with ``limit`` and an opaque ``page_token``, authenticated with
the ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers (HTTP 401 otherwise). Faults armed on
``DataRest`` answer before anything else: ``rate_limit`` (HTTP 429 with ``Retry-After`` and
``X-Ratelimit-Limit/Remaining/Reset``) and ``fail`` (bursts of 5xx). The records come from the
fake's ``MarketTruth``; the answers are ``websockets`` responses, as REST and the streams share one
port.
"""

from __future__ import annotations

import base64
import email.utils
import json
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from flinktrade.testing._loopback import FaultPlan
from flinktrade.testing.alpaca_market import MarketTruth, parse_time

MAX_LIMIT = {"bars": 10_000, "trades": 10_000, "news": 50}
DEFAULT_LIMIT = {"bars": 1_000, "trades": 1_000, "news": 10}
KINDS = {"/v2/stocks/bars": "bars", "/v2/stocks/trades": "trades", "/v1beta1/news": "news"}


@dataclass(frozen=True)
class RestRequest:
    """One REST request as the fake saw it and the status it answered."""

    path: str
    params: dict[str, str]
    status: int
    at: float
    """``time.monotonic()`` when it arrived."""


@dataclass(frozen=True)
class _Fault:
    status: int
    headers: dict[str, str]
    body: str


class DataRest:
    """Answers REST requests from ``market``, records them (``requests``) and serves armed
    faults first. ``lock`` is the fake's: it guards ``requests``."""

    def __init__(
        self, market: MarketTruth, key_id: str, secret_key: str, lock: threading.RLock
    ) -> None:
        self.market = market
        self.key_id = key_id
        self.secret_key = secret_key
        self.lock = lock
        self.requests: list[RestRequest] = []
        self.faults: FaultPlan[_Fault] = FaultPlan()

    def rate_limit(
        self, times: int, retry_after: float | None, reset_in: float | None, path: str | None,
        after: int,
    ) -> None:  # fmt: skip
        headers = {"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": "0"}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        if reset_in is not None:
            headers["X-Ratelimit-Reset"] = str(math.ceil(time.time() + reset_in))
        body = json.dumps({"code": 42910000, "message": "rate limit exceeded"})
        self.faults.arm(_Fault(429, headers, body), times, scope=path, after=after)

    def fail(self, times: int, status: int, path: str | None, after: int) -> None:
        body = json.dumps({"code": status * 100_000, "message": HTTPStatus(status).phrase})
        self.faults.arm(_Fault(status, {}, body), times, scope=path, after=after)

    def count(self, path: str | None = None, status: int | None = None) -> int:
        with self.lock:
            return sum(
                1
                for r in self.requests
                if (path is None or r.path == path) and (status is None or r.status == status)
            )

    def handle(self, request: Request) -> Response:
        """Answer one plain (not upgrade) request and record it."""
        parts = urlsplit(request.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        status, body, headers = self._answer(parts.path, params, request.headers)
        with self.lock:
            self.requests.append(RestRequest(parts.path, params, status, time.monotonic()))
        return response(status, body, headers)

    def _answer(
        self, path: str, params: dict[str, str], headers: Headers
    ) -> tuple[int, str, dict[str, str]]:
        fault = self.faults.take(lambda scope: scope in (None, path))
        if fault is not None:
            return fault.status, fault.body, dict(fault.headers)
        if (
            headers.get("APCA-API-KEY-ID") != self.key_id
            or headers.get("APCA-API-SECRET-KEY") != self.secret_key
        ):
            return 401, json.dumps({"code": 40110000, "message": "request is not authorized"}), {}
        if path not in KINDS:
            return 404, json.dumps({"message": "Not Found"}), {}
        try:
            return 200, json.dumps(page(self.market, KINDS[path], params)), {}
        except ValueError as exc:
            return 422, json.dumps({"code": 42210000, "message": str(exc)}), {}


def page(market: MarketTruth, kind: str, params: dict[str, str]) -> dict[str, Any]:
    """One page of ``kind`` (bars, trades or news) for the query ``params``; ``ValueError`` for
    a query Alpaca would refuse (422)."""
    symbols = [s for s in params.get("symbols", "").split(",") if s]
    if not symbols:
        raise ValueError("missing symbols")
    limit = int(params.get("limit") or DEFAULT_LIMIT[kind])
    if not 1 <= limit <= MAX_LIMIT[kind]:
        raise ValueError(f"invalid limit: must be between 1 and {MAX_LIMIT[kind]}")
    now = market.clock_ms if market.clock_ms is not None else int(time.time() * 1000)
    start = parse_time(params["start"]) if params.get("start") else now // 86_400_000 * 86_400_000
    end = parse_time(params["end"]) if params.get("end") else now
    descending = params.get("sort", "asc" if kind != "news" else "desc").lower() == "desc"
    offset = _decode_token(params.get("page_token"))
    if kind == "news":
        items = market.news(symbols, start, end)
        if descending:
            items.reverse()
        chunk = items[offset : offset + limit]
        more = offset + limit < len(items)
        return {"news": chunk, "next_page_token": _encode_token(offset + limit) if more else None}
    rows: list[tuple[str, dict[str, Any]]] = []
    for symbol in sorted(set(symbols)):
        if kind == "bars":
            records = market.bars(symbol, start, end, params.get("timeframe", "1Min"))
        else:
            records = market.trades(symbol, start, end)
        if descending:
            records.reverse()
        rows += [(symbol, r) for r in records]
        rows += market.strays(kind, symbol)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for symbol, record in rows[offset : offset + limit]:
        grouped.setdefault(symbol, []).append(record)
    more = offset + limit < len(rows)
    return {kind: grouped, "next_page_token": _encode_token(offset + limit) if more else None}


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        raise ValueError("invalid page_token") from None


def response(status: int, body: str, headers: Mapping[str, str]) -> Response:
    """An HTTP answer with a JSON ``body`` (and ``headers`` on top of the usual ones)."""
    data = body.encode()
    all_headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(data))),
        ]
    )
    for key, value in headers.items():
        all_headers[key] = value
    return Response(status, HTTPStatus(status).phrase, all_headers, data)
