"""The fake Alpaca data API's REST side on its own: pages, tokens, refusals, faults, no server."""

from __future__ import annotations

import threading

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request

from flinktrade.testing.alpaca_market import MarketTruth, parse_time
from flinktrade.testing.data_http import DataRest, page

START = "2024-01-02T14:30:00Z"
END = "2024-01-02T14:40:00Z"  # 11 session minutes, both ends included


def test_pages_chain_by_token_to_every_bar_once() -> None:
    market = MarketTruth(seed=5)
    query = {"symbols": "MSFT,AAPL", "start": START, "end": END, "limit": "4"}
    seen: list[tuple[str, str]] = []
    pages = 0
    token: str | None = ""
    while token is not None:
        answer = page(market, "bars", {**query, "page_token": token} if token else query)
        pages += 1
        seen += [(s, bar["t"]) for s, bars in answer["bars"].items() for bar in bars]
        token = answer["next_page_token"]
    assert pages == 6  # 22 bars, 4 a page
    expected = [
        (symbol, bar["t"])
        for symbol in ("AAPL", "MSFT")
        for bar in market.bars(symbol, parse_time(START), parse_time(END))
    ]
    assert len(expected) == 22
    assert seen == expected  # by symbol, then time


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "missing symbols"),
        ({"symbols": "AAPL", "limit": "0"}, "invalid limit"),
        ({"symbols": "AAPL", "limit": "10001"}, "invalid limit"),
        ({"symbols": "AAPL", "page_token": "not-a-token"}, "invalid page_token"),
    ],
)
def test_queries_alpaca_refuses_are_value_errors(params: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        page(MarketTruth(clock_ms=parse_time(END)), "bars", params)


def test_news_pages_newest_first_by_default() -> None:
    market = MarketTruth(seed=5)
    answer = page(
        market, "news", {"symbols": "AAPL", "start": START, "end": "2024-01-02T21:00:00Z"}
    )
    times = [item["created_at"] for item in answer["news"]]
    assert len(times) >= 2
    assert times == sorted(times, reverse=True)


def test_armed_faults_answer_first_then_the_keys_are_checked() -> None:
    rest = DataRest(MarketTruth(), "key", "secret", threading.RLock())
    rest.rate_limit(1, retry_after=2, reset_in=None, path=None, after=0)
    rest.fail(1, 503, path="/v2/stocks/bars", after=0)
    limited = rest.handle(_get("/v2/stocks/bars?symbols=AAPL"))
    assert limited.status_code == 429
    assert (limited.headers["Retry-After"], limited.headers["X-Ratelimit-Remaining"]) == ("2", "0")
    assert rest.handle(_get("/v2/stocks/trades?symbols=AAPL")).status_code == 401  # 503: bars
    assert rest.handle(_get("/v2/stocks/bars?symbols=AAPL")).status_code == 503
    assert rest.handle(_get("/v2/stocks/bars?symbols=AAPL")).status_code == 401
    keys = (("APCA-API-KEY-ID", "key"), ("APCA-API-SECRET-KEY", "secret"))
    assert rest.handle(_get("/v2/nothing?symbols=AAPL", *keys)).status_code == 404
    assert [r.status for r in rest.requests] == [429, 401, 503, 401, 404]
    assert rest.count("/v2/stocks/bars") == 3 and rest.count(status=401) == 2
    assert rest.requests[0].params == {"symbols": "AAPL"}


def _get(target: str, *headers: tuple[str, str]) -> Request:
    return Request(target, Headers(list(headers)))
