"""Live streams that fail quietly, against the fake and the real broker: a stream connected but
silent (alpaca-py issue 740), a news stream that drops, and keys Alpaca refuses.

The ingest's clock is injected and moved by the tests, so the watchdog acts when a test says
time has passed, never after a real wait."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from test_ingest_cli import env_for

from flinktrade import bus
from flinktrade.config import KafkaSettings
from flinktrade.errors import ConfigError
from flinktrade.events import Alert, Bar, NewsItem, Trade
from flinktrade.ingest.alpaca import Credentials, MarketDataRest
from flinktrade.ingest.history import Sink
from flinktrade.ingest.live import LiveIngest, LiveRequest
from flinktrade.ingest.settings import IngestTopics
from flinktrade.testing.command import run_flinktrade
from flinktrade.testing.fake_alpaca_data import (
    MINUTE_MS,
    FakeAlpacaData,
    parse_time,
    session_minutes,
)

pytestmark = pytest.mark.integration

SYMBOLS = ["AAPL", "MSFT"]
OPEN = parse_time("2024-01-02T14:30:00Z")  # 09:30 in New York: the regular session is on
MARKET = "/v2/iex"
NEWS = "/v1beta1/news"


class Clock:
    """The ingest's wall clock, moved by the test."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def running() -> Iterator[list[LiveIngest]]:
    started: list[LiveIngest] = []
    yield started
    for live in started:
        live.stop()


def request(fake: FakeAlpacaData, *, news: bool = False, silence_s: float = 120.0) -> LiveRequest:
    return LiveRequest(
        symbols=SYMBOLS,
        feed="iex",
        news=news,
        stream_url=fake.stream_url("iex"),
        news_stream_url=fake.news_stream_url,
        backoff=(0.05, 0.2),
        silence_s=silence_s,
    )


def read(kafka: KafkaSettings, topic: str, kind: type) -> list:
    return bus.decode_all(kafka.bootstrap_servers, topic, kind)


def test_a_silent_stream_alerts_reconnects_and_backfills_bars_and_trades(
    fake: FakeAlpacaData,
    credentials: Credentials,
    rest: MarketDataRest,
    make_sink: Callable[[], Sink],
    kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
    running: list[LiveIngest],
) -> None:
    fake.clock_ms = OPEN
    clock = Clock(OPEN)
    sink = make_sink()
    live = LiveIngest(credentials, request(fake), sink, rest, clock=clock)
    running.append(live)
    live.start()
    fake.wait_for(lambda f: f.subscribed(MARKET, "bars", SYMBOLS), 10, "subscription")
    before = fake.emit_minutes(2, "iex", SYMBOLS)
    bus.wait_for(lambda: sink.counts["bars"] == 4, 10, what="2 live minutes")

    fake.mute_streams(MARKET)  # connected, but nothing arrives any more
    missed = fake.emit_minutes(3, "iex", SYMBOLS)
    clock.now_ms = OPEN + 119_000
    assert live.watch() is None  # not silent for long enough yet
    clock.now_ms = fake.clock_ms + 1_000  # 3 minutes of silence
    silence = live.watch()
    assert silence is not None and silence > 120
    assert live.watch() is None  # one alert per silence
    fake.wait_for(lambda f: f.stream_connections.get(MARKET) == 2, 10, "the forced reconnect")
    fake.wait_for(lambda f: f.subscribed(MARKET, "bars", SYMBOLS), 10, "resubscription")
    bus.wait_for(lambda: live.stats.backfills == 1 and not live._held, 10, what="backfill")
    after = fake.emit_minutes(2, "iex", SYMBOLS)
    bus.wait_for(lambda: sink.counts["bars"] == 14, 30, what="every bar")
    live.stop()

    assert live.stats.silences == 1 and live.stats.connections == 2
    bars = read(kafka_settings, ingest_topics.bars, Bar)
    minutes = [parse_time(b["t"]) for s, b in before + missed + after if s == "AAPL"]
    for symbol in SYMBOLS:
        assert [b.ts for b in bars if b.symbol == symbol] == minutes, symbol
    # Trades: the ground truth of all 7 minutes, each once, in time order per symbol.
    trades = read(kafka_settings, ingest_topics.trades, Trade)
    for symbol in SYMBOLS:
        truth = [parse_time(t["t"]) for m in minutes for t in fake.minute_trades(symbol, m)]
        assert [t.ts for t in trades if t.symbol == symbol] == truth, symbol
    assert Counter(t.id for t in trades).most_common(1)[0][1] == 1
    missed_trades = sum(len(fake.minute_trades(s, parse_time(b["t"]))) for s, b in missed)
    assert live.stats.backfilled_trades == missed_trades
    alerts = [a for a in read(kafka_settings, ingest_topics.alerts, Alert)
              if a.kind == "stream_silent"]  # fmt: skip
    assert len(alerts) == 1 and alerts[0].threshold == 120.0


def test_silence_outside_market_hours_is_not_an_alarm(
    fake: FakeAlpacaData,
    credentials: Credentials,
    rest: MarketDataRest,
    make_sink: Callable[[], Sink],
    running: list[LiveIngest],
) -> None:
    fake.clock_ms = OPEN
    clock = Clock(OPEN)
    session = {"open": False}
    live = LiveIngest(
        credentials, request(fake), make_sink(), rest, clock=clock,
        market_open=lambda ms: session["open"],
    )  # fmt: skip
    running.append(live)
    live.start()
    fake.wait_for(lambda f: f.subscribed(MARKET, "bars", SYMBOLS), 10, "subscription")
    clock.now_ms += 3_600_000  # an hour without a message, market closed
    assert live.watch() is None
    session["open"] = True  # the bell: silence counts from now
    assert live.watch() is None
    clock.now_ms += 121_000
    assert live.watch() is not None
    assert live.stats.silences == 1


def first_news_minute(fake: FakeAlpacaData, symbol: str, after_ms: int) -> int:
    for minute in session_minutes(after_ms, after_ms + 3 * 86_400_000):
        if fake.news([symbol], minute, minute):
            return minute
    raise AssertionError("no news minute in three days")


def test_news_missed_while_the_news_stream_was_down_is_backfilled_once(
    fake: FakeAlpacaData,
    credentials: Credentials,
    rest: MarketDataRest,
    make_sink: Callable[[], Sink],
    kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
    running: list[LiveIngest],
) -> None:
    story = first_news_minute(fake, "AAPL", OPEN + 10 * MINUTE_MS)
    start = fake.clock_ms = story - 2 * MINUTE_MS
    clock = Clock(start)
    sink = make_sink()
    live = LiveIngest(credentials, request(fake, news=True), sink, rest, clock=clock)
    running.append(live)
    live.start()
    fake.wait_for(lambda f: f.subscribed(NEWS, "news", ["*"]), 10, "news subscription")
    fake.wait_for(lambda f: f.subscribed(MARKET, "bars", SYMBOLS), 10, "market subscription")
    fake.emit_minutes(1, "iex", SYMBOLS)

    fake.refuse_streams(True)
    assert fake.drop_streams(NEWS) == 1  # only the news stream drops
    fake.emit_minutes(3, "iex", SYMBOLS)  # the story comes out meanwhile
    clock.now_ms = fake.clock_ms
    fake.refuse_streams(False)
    fake.wait_for(lambda f: f.subscribed(NEWS, "news", ["*"]), 10, "news resubscription")
    bus.wait_for(lambda: live.stats.backfills == 1 and not live._held, 10, what="news backfill")
    # the stream repeats the story after the reconnect: it must not be produced twice
    fake.push_news(fake.news(["AAPL"], story, story)[0])
    fake.emit_minutes(1, "iex", SYMBOLS)
    bus.wait_for(lambda: sink.counts["bars"] == 10, 10, what="every bar")
    live.stop()

    assert live.stats.news_connections == 2 and live.stats.connections == 1
    truth = fake.news(SYMBOLS, start, fake.clock_ms)
    news = read(kafka_settings, ingest_topics.news, NewsItem)
    assert sorted(n.id for n in news) == sorted(f"alpaca:{n['id']}" for n in truth)
    assert f"alpaca:{fake.news(['AAPL'], story, story)[0]['id']}" in {n.id for n in news}
    assert live.stats.repeated_news >= 1


def run_in_thread(
    live: LiveIngest,
) -> tuple[threading.Event, list[BaseException], threading.Thread]:
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            live.run(stop, tick_s=0.05)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return stop, errors, thread


def test_keys_refused_by_the_stream_stop_the_ingest_without_retrying(
    fake: FakeAlpacaData, rest: MarketDataRest, make_sink: Callable[[], Sink]
) -> None:
    wrong = Credentials(SecretStr(fake.key_id), SecretStr("not-the-secret"))
    live = LiveIngest(wrong, request(fake), make_sink(), rest)
    stop, errors, thread = run_in_thread(live)
    thread.join(30)
    stop.set()
    assert not thread.is_alive(), "the ingest kept retrying"
    assert len(errors) == 1 and isinstance(errors[0], ConfigError)
    assert "APCA_API_KEY_ID" in str(errors[0]) and "APCA_API_SECRET_KEY" in str(errors[0])
    assert "not-the-secret" not in str(errors[0])
    assert fake.stream_connections.get(MARKET) == 1


def test_keys_refused_by_rest_during_a_backfill_stop_the_ingest(
    fake: FakeAlpacaData,
    credentials: Credentials,
    rest: MarketDataRest,
    make_sink: Callable[[], Sink],
    running: list[LiveIngest],
) -> None:
    fake.clock_ms = OPEN
    live = LiveIngest(credentials, request(fake), make_sink(), rest, clock=Clock(OPEN))
    running.append(live)
    live.start()
    fake.wait_for(lambda f: f.subscribed(MARKET, "bars", SYMBOLS), 10, "subscription")
    fake.emit_minutes(2, "iex", SYMBOLS)
    live.clock = Clock(fake.clock_ms + MINUTE_MS)  # type: ignore[method-assign]
    fake.fail(times=100, status=401)
    assert fake.drop_streams(MARKET) == 1
    bus.wait_for(lambda: live.stats.backfills == 1 and not live._held, 10, what="backfill")
    with pytest.raises(ConfigError, match="APCA_API_KEY_ID"):
        live.check()


def test_ingest_live_with_refused_keys_says_one_line_and_exits(
    fake: FakeAlpacaData,
    kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
    tmp_path: Path,
) -> None:
    env = env_for(fake, kafka_settings, ingest_topics) | {"APCA_API_SECRET_KEY": "wrong-secret"}
    result = run_flinktrade("ingest", "live", "--symbols", "AAPL", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "APCA_API_KEY_ID" in errors[0], output[-2000:]
    assert "Traceback" not in output
    assert "wrong-secret" not in output
    assert fake.stream_connections.get(MARKET) == 1
