"""Live streams from the fake into the real broker: a dropped stream reconnects and the gap is
backfilled over REST with no missing and no repeated bar."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from flinktrade import bus
from flinktrade.config import KafkaSettings
from flinktrade.events import Bar, NewsItem, Quote, Trade
from flinktrade.ingest.alpaca import Credentials, MarketDataRest
from flinktrade.ingest.history import Sink
from flinktrade.ingest.live import LiveIngest, LiveRequest
from flinktrade.ingest.settings import IngestTopics
from flinktrade.testing.fake_alpaca_data import FakeAlpacaData, parse_time

pytestmark = pytest.mark.integration

SYMBOLS = ["AAPL", "MSFT"]
OPEN = parse_time("2024-01-02T14:30:00Z")


def test_a_dropped_stream_reconnects_and_the_gap_is_backfilled(
    fake: FakeAlpacaData,
    credentials: Credentials,
    rest: MarketDataRest,
    make_sink: Callable[[], Sink],
    kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
) -> None:
    fake.clock_ms = OPEN
    sink = make_sink()
    request = LiveRequest(
        symbols=SYMBOLS,
        feed="iex",
        news=True,
        stream_url=fake.stream_url("iex"),
        news_stream_url=fake.news_stream_url,
        backoff=(0.05, 0.2),
    )
    live = LiveIngest(credentials, request, sink, rest)
    live.start()
    try:
        fake.wait_for(lambda f: f.subscribed("/v2/iex", "bars", SYMBOLS), 10, "subscription")
        fake.wait_for(lambda f: f.subscribed("/v1beta1/news", "news", ["*"]), 10, "news")
        before = fake.emit_minutes(3, "iex", SYMBOLS)
        bus.wait_for(lambda: sink.counts["bars"] == 6, 10, what="3 live minutes")

        fake.refuse_streams(True)  # an outage: the connection drops and cannot come back yet
        assert fake.drop_streams("/v2/iex") == 1
        missed = fake.emit_minutes(4, "iex", SYMBOLS)  # nobody hears these
        fake.refuse_streams(False)
        fake.wait_for(lambda f: f.subscribed("/v2/iex", "bars", SYMBOLS), 10, "resubscription")
        bus.wait_for(lambda: live.stats.backfills == 1 and not live._held, 10, what="backfill")
        # an old bar repeated by the stream must not be produced twice
        fake.push("/v2/iex", [{"T": "b", "S": "AAPL", **before[0][1]}])
        after = fake.emit_minutes(3, "iex", SYMBOLS)
        bus.wait_for(lambda: sink.counts["bars"] == 20, 10, what="every bar")
    finally:
        live.stop()

    assert live.stats.connections == 2
    assert live.stats.backfilled_bars == 8  # 4 missed minutes x 2 symbols
    bars = bus.decode_all(kafka_settings.bootstrap_servers, ingest_topics.bars, Bar)
    minutes = [parse_time(bar["t"]) for symbol, bar in before + missed + after if symbol == "AAPL"]
    assert len(minutes) == 10
    for symbol in SYMBOLS:
        mine = [b.ts for b in bars if b.symbol == symbol]
        assert mine == minutes, symbol  # every minute, once, in order
    assert Counter(b.id for b in bars).most_common(1)[0][1] == 1
    trades = bus.decode_all(kafka_settings.bootstrap_servers, ingest_topics.trades, Trade)
    quotes = bus.decode_all(kafka_settings.bootstrap_servers, ingest_topics.quotes, Quote)
    assert {t.symbol for t in trades} == set(SYMBOLS) and len(quotes) == 12  # 6 live minutes x 2
    news = bus.decode_all(kafka_settings.bootstrap_servers, ingest_topics.news, NewsItem)
    assert all(set(n.symbols) <= set(SYMBOLS) for n in news)
