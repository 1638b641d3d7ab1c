"""History from the fake Alpaca REST API into the real broker: paging, keys, times, repeats,
resume, 429s and dead letters."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from flinktrade import bus
from flinktrade.config import KafkaSettings
from flinktrade.errors import TransientError
from flinktrade.events import Bar, DeadLetter, NewsItem, Trade
from flinktrade.ingest.alpaca import MarketDataRest, parse_timeframe
from flinktrade.ingest.history import HistoryRequest, Sink, run_history
from flinktrade.ingest.settings import IngestTopics
from flinktrade.testing.fake_alpaca_data import FakeAlpacaData, parse_time

pytestmark = pytest.mark.integration

SYMBOLS = ["AAPL", "MSFT", "NVDA"]
START = datetime(2024, 1, 2, tzinfo=UTC)  # a Tuesday
END = datetime(2024, 1, 3, 23, 59, tzinfo=UTC)
MINUTES_PER_DAY = 390  # 14:30-21:00 UTC
START_MS, END_MS = parse_time("2024-01-02"), parse_time("2024-01-03T23:59:00Z")


def request(**changes: object) -> HistoryRequest:
    base: dict[str, object] = {"symbols": SYMBOLS, "start": START, "end": END,
                               "timeframe": parse_timeframe("1Min"), "limit": 250}  # fmt: skip
    return HistoryRequest(**{**base, **changes})  # type: ignore[arg-type]


def records(kafka: KafkaSettings, topic: str) -> list[tuple[str, int, dict[str, object]]]:
    """(key, Kafka timestamp, value) of every record in ``topic``."""
    return [
        ((m.key() or b"").decode(), m.timestamp()[1], json.loads(m.value() or b"{}"))
        for m in bus.read_all(kafka.bootstrap_servers, topic)
    ]


def test_history_pages_through_every_symbol_with_keys_and_event_times(
    fake: FakeAlpacaData,
    rest: MarketDataRest,
    make_sink: Callable[[], Sink],
    kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
) -> None:
    counts = run_history(request(trades=True, news=True), rest, make_sink())

    expected_trades = sum(len(fake.trades(s, START_MS, END_MS)) for s in SYMBOLS)
    expected_news = len(fake.news(SYMBOLS, START_MS, END_MS))
    assert counts == {"bars": 3 * 2 * MINUTES_PER_DAY, "trades": expected_trades,
                      "news": expected_news, "deadletter": 0}  # fmt: skip
    # 780 bars per symbol at 250 per page: 4 pages each
    assert fake.request_count("/v2/stocks/bars", 200) == 3 * 4

    bars = records(kafka_settings, ingest_topics.bars)
    assert len(bars) == 3 * 2 * MINUTES_PER_DAY
    for symbol in SYMBOLS:
        truth = fake.bars(symbol, START_MS, END_MS)
        mine = [(ts, v) for key, ts, v in bars if key == symbol]
        assert [ts for ts, _ in mine] == [parse_time(b["t"]) for b in truth]
        assert all(v["symbol"] == symbol and v["ts"] == ts for ts, v in mine)
        assert [str(v["close"]) for _, v in mine] == [str(b["c"]) for b in truth]
    trades = records(kafka_settings, ingest_topics.trades)
    assert all(key == v["symbol"] and ts == v["ts"] for key, ts, v in trades)
    assert len({v["id"] for _k, _t, v in trades}) == expected_trades
    news = bus.decode_all(kafka_settings.bootstrap_servers, ingest_topics.news, NewsItem)
    assert {n.symbols[0] for n in news} == set(SYMBOLS)
    truth = fake.news(SYMBOLS, START_MS, END_MS)
    assert [(n.id, n.ts) for n in sorted(news, key=lambda n: (n.ts, n.id))] == [
        (f"alpaca:{item['id']}", parse_time(item["created_at"])) for item in truth
    ]


def test_rerun_repeats_only_ids_and_resume_continues_after_the_last_record(
    fake: FakeAlpacaData,
    rest: MarketDataRest,
    make_sink: Callable[[], Sink],
    kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
) -> None:
    servers = kafka_settings.bootstrap_servers
    # First run dies after a few pages: every later bars/trades request fails for good.
    fake.fail(times=1_000, status=500, after=5)
    with pytest.raises(TransientError):
        run_history(request(trades=True, limit=200), rest, make_sink())
    fake.clear_faults()  # the outage is over
    partial = bus.decode_all(servers, ingest_topics.bars, Bar)
    assert 0 < len(partial) < 3 * 2 * MINUTES_PER_DAY

    counts = run_history(request(trades=True, limit=200, resume=True), rest, make_sink())
    bars = bus.decode_all(servers, ingest_topics.bars, Bar)
    trades = bus.decode_all(servers, ingest_topics.trades, Trade)
    assert len(bars) == 3 * 2 * MINUTES_PER_DAY == len({b.id for b in bars})
    expected_trades = sum(len(fake.trades(s, START_MS, END_MS)) for s in SYMBOLS)
    assert len(trades) == expected_trades == len({t.id for t in trades})
    assert counts["bars"] == 3 * 2 * MINUTES_PER_DAY - len(partial)

    # A plain re-run produces every record again with the same ids: consumers drop by id.
    run_history(request(trades=True), rest, make_sink())
    again = bus.decode_all(servers, ingest_topics.bars, Bar)
    assert set(Counter(b.id for b in again).values()) == {2}
    # ... and resuming a complete range produces nothing.
    assert run_history(request(trades=True, resume=True), rest, make_sink())["bars"] == 0


def test_rate_limits_are_waited_out_without_losing_a_page(
    fake: FakeAlpacaData,
    rest: MarketDataRest,
    make_sink: Callable[[], Sink],
    kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
) -> None:
    fake.rate_limit(times=2, retry_after=1, path="/v2/stocks/bars", after=2)
    counts = run_history(request(symbols=["AAPL"]), rest, make_sink())

    assert counts["bars"] == 2 * MINUTES_PER_DAY
    bars = bus.decode_all(kafka_settings.bootstrap_servers, ingest_topics.bars, Bar)
    assert [b.ts for b in bars] == [parse_time(b["t"]) for b in fake.bars("AAPL", START_MS, END_MS)]
    log = [r for r in fake.requests if r.path == "/v2/stocks/bars"]
    statuses = [r.status for r in log]
    assert statuses == [200, 200, 429, 429, 200, 200]
    # each retry came only after the Retry-After second
    assert log[3].at - log[2].at >= 0.95 and log[4].at - log[3].at >= 0.95
    # the page refused twice was asked again with the same token, not skipped
    assert log[2].params.get("page_token") == log[4].params.get("page_token") is not None


def test_invalid_records_go_to_the_deadletter_with_reasons(
    fake: FakeAlpacaData,
    rest: MarketDataRest,
    make_sink: Callable[[], Sink],
    kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
) -> None:
    good = fake.bar("AAPL", parse_time("2024-01-02T14:30:00Z"))
    fake.inject("bars", "AAPL", [
        {**good, "t": "2024-01-02T12:00:00Z", "c": float("nan")},
        {**good, "t": "2024-01-02T12:01:00Z", "o": -4.0},
        {k: v for k, v in good.items() if k != "h"} | {"t": "2024-01-02T12:02:00Z"},
        {**good, "t": "2099-01-02T12:03:00Z"},
    ])  # fmt: skip
    fake.inject(
        "trades", "AAPL", [{"t": "2024-01-02T12:04:00Z", "x": "V", "p": 10.0, "s": 0, "i": 1}]
    )
    fake.inject_stray("bars", "ZZZZ", [good], into="AAPL")
    fake.clock_ms = END_MS  # the 2099 bar is still "returned" by the fake
    counts = run_history(
        request(symbols=["AAPL"], trades=True, end=datetime(2100, 1, 1, tzinfo=UTC)),
        rest,
        make_sink(),
    )

    assert counts["deadletter"] == 6
    assert counts["bars"] == 2 * MINUTES_PER_DAY
    dead = bus.decode_all(kafka_settings.bootstrap_servers, ingest_topics.deadletter, DeadLetter)
    reasons = sorted(d.reason for d in dead)
    for needle in ("c: price is NaN", "o: price -4.0 is not positive", "h: missing",
                   "is in the future", "s: size 0 is zero or negative", "unknown symbol 'ZZZZ'"):  # fmt: skip
        assert sum(needle in r for r in reasons) == 1, (needle, reasons)
    bars = bus.decode_all(kafka_settings.bootstrap_servers, ingest_topics.bars, Bar)
    assert all(b.symbol == "AAPL" and b.ts < END_MS for b in bars)
    assert len(bars) == 2 * MINUTES_PER_DAY
