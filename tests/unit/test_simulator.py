import itertools
import time

from flinktrade.events import NewsItem
from flinktrade.ingest.simulator import MarketSimulator, RawTrade, SimulatorFeed


def take(sim: MarketSimulator, n: int) -> list[RawTrade | NewsItem]:
    return list(itertools.islice(sim, n))


def test_same_seed_gives_identical_records() -> None:
    a = take(MarketSimulator(symbols=5, seed=11), 20_000)
    b = take(MarketSimulator(symbols=5, seed=11), 20_000)
    assert a == b


def test_different_seed_gives_different_prices() -> None:
    a = MarketSimulator(symbols=5, seed=1).trades(1000)
    b = MarketSimulator(symbols=5, seed=2).trades(1000)
    assert [t.cents for t in a] != [t.cents for t in b]


def test_trades_are_in_event_time_order_with_valid_fields() -> None:
    sim = MarketSimulator(symbols=10, seed=3, start_ts=1_000_000, gap_ms=20)
    trades = sim.trades(50_000)
    assert trades[0].ts >= 1_000_000
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(trades))
    assert all(t.cents > 0 and 1 <= t.size <= 500 for t in trades)
    assert {t.symbol for t in trades} == set(sim.symbols)
    assert len({t.id for t in trades}) == len(trades)
    # about gap_ms of event time per trade on average
    span = trades[-1].ts - trades[0].ts
    assert 0.8 * 20 * 50_000 < span < 1.2 * 20 * 50_000


def test_news_follows_jumps_and_says_which_way() -> None:
    sim = MarketSimulator(symbols=4, seed=5)
    items = take(sim, 400_000)
    news = [(i, n) for i, n in enumerate(items) if isinstance(n, NewsItem)]
    assert news, "expected some news in 400k records"
    directional = 0
    for index, item in news:
        trade = items[index - 1]
        assert isinstance(trade, RawTrade)
        assert item.symbols == [trade.symbol]
        assert item.ts == trade.ts
        # find the previous trade of the same symbol to see the move
        before = next(
            t
            for t in reversed(items[: index - 1])
            if isinstance(t, RawTrade) and t.symbol == trade.symbol
        )
        move = trade.cents / before.cents - 1
        text = item.headline.lower()
        if any(w in text for w in ("jumps", "surge", "rallies")):
            assert move > 0.01
            directional += 1
        elif any(w in text for w in ("slides", "falls", "plunges")):
            assert move < -0.01
            directional += 1
    assert directional > 0


def test_volatility_regimes_change_the_size_of_moves() -> None:
    sim = MarketSimulator(symbols=1, seed=9, news=False)
    trades = sim.trades(200_000)
    moves = [abs(b.cents / a.cents - 1) for a, b in itertools.pairwise(trades)]
    window = 2000
    vols = [sum(moves[i : i + window]) / window for i in range(0, len(moves) - window, window)]
    assert max(vols) > 2 * min(vols)


def test_feed_fault_is_raised_on_its_thread_and_kept_as_its_error() -> None:
    # The fault is raised before any producer is built, so no broker is needed (none listens here).
    fault = RuntimeError("injected")
    feed = SimulatorFeed("127.0.0.1:1", MarketSimulator(symbols=1, seed=1), 10.0, fault=fault)
    feed.start()
    try:
        deadline = time.monotonic() + 10
        while feed.alive and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not feed.alive
        assert feed.error is fault
        assert (feed.produced_trades, feed.produced_news) == (0, 0)
    finally:
        feed.stop()
