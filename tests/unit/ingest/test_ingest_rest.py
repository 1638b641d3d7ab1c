"""The bounded REST client against the fake: paging, 429 waits, retries, timeouts, auth."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from flinktrade.errors import ConfigError, TransientError
from flinktrade.ingest.alpaca import (
    Credentials,
    MarketDataRest,
    RetryPolicy,
    parse_timeframe,
    rate_limit_delay,
)
from flinktrade.testing.fake_alpaca_data import FakeAlpacaData

DAY_START = datetime(2024, 1, 2, tzinfo=UTC)
DAY_END = datetime(2024, 1, 2, 23, 59, tzinfo=UTC)
SESSION_MINUTES = 390  # 14:30-21:00 UTC


@pytest.fixture
def fake() -> Iterator[FakeAlpacaData]:
    with FakeAlpacaData(seed=3) as fake:
        yield fake


def creds(fake: FakeAlpacaData) -> Credentials:
    return Credentials(SecretStr(fake.key_id), SecretStr(fake.secret_key))


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_rate_limit_delay_reads_retry_after_and_reset() -> None:
    assert rate_limit_delay({"Retry-After": "7"}, 1000.0, 3.0) == 7.0
    assert rate_limit_delay({"X-Ratelimit-Reset": "1012"}, 1000.0, 3.0) == 12.0
    assert rate_limit_delay({"Retry-After": "2", "X-Ratelimit-Reset": "1005"}, 1000.0, 3.0) == 5.0
    assert rate_limit_delay({}, 1000.0, 3.0) == 3.0
    assert rate_limit_delay({"Retry-After": "Thu, 01 Jan 1970 00:16:50 GMT"}, 1000.0, 3.0) == 10.0


def test_pages_through_every_page(fake: FakeAlpacaData) -> None:
    rest = MarketDataRest(creds(fake), fake.rest_url)
    pages = list(rest.pages("bars", ["AAPL"], DAY_START, DAY_END, limit=100,
                            timeframe=parse_timeframe("1Min")))  # fmt: skip
    assert len(pages) == 4  # 390 bars, 100 per page
    assert sum(len(p.records) for p in pages) == SESSION_MINUTES
    assert [p.token is None for p in pages] == [True, False, False, False]
    assert fake.request_count("/v2/stocks/bars") == 4
    times = [r["t"] for p in pages for _s, r in p.records]
    assert times[0] == "2024-01-02T14:30:00Z" and times[-1] == "2024-01-02T20:59:00Z"


def test_429_is_waited_out_as_the_headers_say(fake: FakeAlpacaData) -> None:
    sleeps = Sleeps()
    rest = MarketDataRest(creds(fake), fake.rest_url, sleep=sleeps)
    fake.rate_limit(times=1, retry_after=7)  # the first request
    fake.rate_limit(times=1, retry_after=None, reset_in=30, after=1)  # the second page
    pages = list(rest.pages("bars", ["AAPL"], DAY_START, DAY_END, limit=200))
    assert sum(len(p.records) for p in pages) == SESSION_MINUTES
    assert fake.request_count(status=429) == 2
    assert sleeps.calls[0] == 7.0
    assert 28.0 <= sleeps.calls[1] <= 31.0  # X-Ratelimit-Reset is epoch seconds


def test_5xx_bursts_are_retried_with_growing_backoff(fake: FakeAlpacaData) -> None:
    sleeps = Sleeps()
    policy = RetryPolicy(backoff_base_s=0.5, max_attempts=5)
    rest = MarketDataRest(creds(fake), fake.rest_url, policy, sleep=sleeps)
    fake.fail(times=3, status=503)
    pages = list(rest.pages("trades", ["AAPL"], DAY_START, DAY_END))
    assert sum(len(p.records) for p in pages) == len(
        fake.trades("AAPL", 1_704_153_600_000, 1_704_239_940_000)
    )
    assert sleeps.calls == [0.5, 1.0, 2.0]


def test_a_page_that_keeps_failing_stops_the_run(fake: FakeAlpacaData) -> None:
    rest = MarketDataRest(creds(fake), fake.rest_url, RetryPolicy(max_attempts=3), sleep=Sleeps())
    fake.fail(times=10, status=500, after=1)
    pages = rest.pages("bars", ["AAPL"], DAY_START, DAY_END, limit=100)
    assert len(next(pages).records) == 100
    with pytest.raises(TransientError, match="gave up after 3 attempts"):
        next(pages)


def test_wrong_keys_are_a_configuration_error_without_the_secret(fake: FakeAlpacaData) -> None:
    wrong = Credentials(SecretStr("nobody"), SecretStr("not-the-secret"))
    rest = MarketDataRest(wrong, fake.rest_url)
    with pytest.raises(ConfigError, match="APCA_API_KEY_ID") as err:
        list(rest.pages("bars", ["AAPL"], DAY_START, DAY_END))
    assert "not-the-secret" not in str(err.value)


def test_every_request_has_a_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        policy = RetryPolicy(timeout_s=0.3, max_attempts=2, backoff_base_s=0.01)
        rest = MarketDataRest(Credentials(SecretStr("k"), SecretStr("s")), url, policy)
        began = time.monotonic()
        with pytest.raises(TransientError, match="ReadTimeout"):
            list(rest.pages("bars", ["AAPL"], DAY_START, DAY_END))
        assert time.monotonic() - began < 5
