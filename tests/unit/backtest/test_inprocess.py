"""The in-process engine: the Flink operator's event-time order, the input topic's price
normalisation, and backtesting.py's GOOG result without Kafka or Flink."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from backtesting import Strategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA
from tests.unit.backtest.factories import T0, simulated_market

from flinktrade import events
from flinktrade.backtest import BacktestRequest, ExecutionModel, Mode
from flinktrade.backtest.columns import BarColumns
from flinktrade.backtest.inprocess import Feed, _WirePrices, replay, run_inprocess
from flinktrade.backtest.loading import load_file
from flinktrade.backtest.portfolio import CashMode, gather, simulate
from flinktrade.events import Side
from flinktrade.pipeline.analytics import ScoredNews, StrategySpec, SymbolModel
from flinktrade.strategies import BarView, Intent, State

MINUTE = 60_000


class SentimentEcho:
    """Signals on every bar with the sentiment it was handed as the reason."""

    name = "echo"

    def indicators(self) -> set[str]:
        return set()

    def initial_state(self) -> State:
        return {}

    def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]:
        return [Intent(Side.BUY, 1.0, repr(bar.sentiment))], state


ECHO = StrategySpec("tests.unit.backtest.test_inprocess:SentimentEcho", {})


class SmaCross(Strategy):
    """backtesting.py's own example: on a crossover close the position and open the other side."""

    n1 = 10
    n2 = 20

    def init(self) -> None:
        self.sma1 = self.I(SMA, self.data.Close, self.n1)
        self.sma2 = self.I(SMA, self.data.Close, self.n2)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            self.sell()


def bar(minute: int, price: str = "10", symbol: str = "AAA") -> events.Bar:
    p = Decimal(price)
    return events.Bar(
        symbol=symbol, ts=T0 + minute * MINUTE, open=p, high=p, low=p, close=p, volume=5
    )


def story(ts: int, story_id: str, headline: str, *symbols: str) -> events.NewsItem:
    return events.NewsItem(id=story_id, headline=headline, symbols=list(symbols or ["AAA"]), ts=ts)


def test_stories_are_folded_in_before_the_bars_that_close_after_them() -> None:
    bars = [bar(0), bar(1), bar(2)]
    news = [
        story(T0 + MINUTE - 1, "s1", "AAA surges on record profit"),  # inside bar 0's minute
        story(T0 + MINUTE, "s3", "AAA plunges on fraud probe"),  # at bar 0's end: bar 1's
        story(T0 + MINUTE, "s2", "AAA announces board appointment"),  # same ms: by id
    ]
    feed = Feed.of(bars, reversed(news))  # arrival order must not matter
    order = [(kind, item[0]) for kind, item in feed.items("AAA", _WirePrices())]
    assert order == [
        ("news", "s1"),
        ("bar", T0),
        ("news", "s2"),
        ("news", "s3"),
        ("bar", T0 + MINUTE),
        ("bar", T0 + 2 * MINUTE),
    ]
    result = run_inprocess(BacktestRequest((ECHO,)), bars, news)
    seen = [s.reason for s in result.signals]
    assert seen[0] != "None" and float(seen[0]) > 0  # bar 0 has seen s1 only
    assert float(seen[1]) < float(seen[0])  # bar 1 also the two stories at its start


def test_news_is_scored_like_the_job_and_fanned_out_per_symbol() -> None:
    from flinktrade import sentiment

    item = story(T0, "x", "BBB and AAA beat estimates", "AAA", "BBB", "AAA")
    feed = Feed.of([bar(0)], [item, story(T0, "empty", "no one", *[]).model_copy(
        update={"symbols": []})])  # fmt: skip
    expected = float(sentiment.score(item.headline, item.summary))
    assert feed.news == {
        "AAA": [ScoredNews("x", "AAA", T0, expected, item.headline)],
        "BBB": [ScoredNews("x", "BBB", T0, expected, item.headline)],
    }
    assert [d.reason for d in feed.deadletters] == ["news item names no symbol"]


def test_prices_are_normalised_as_the_input_topic_does() -> None:
    wire = _WirePrices()
    assert str(wire(Decimal("100"))) == "100.0"
    for text in ("100.0", "100", "2.50", "0.100001", "1E+2", "123456789012.345678", "7.10"):
        price = Decimal(text)
        sent = events.Bar(symbol="A", ts=0, open=price, high=price, low=price, close=price,
                          volume=1)  # fmt: skip
        read = events.decode(events.Bar, events.encode(sent)).open
        assert str(wire(price)) == str(read), text
        assert str(wire(price)) == str(read), text  # memoised alike
    result = run_inprocess(BacktestRequest((ECHO,)), [bar(0, "100")])
    assert str(result.signals[0].price) == "100.0"
    assert str(result.bars["AAA"][0].close) == "100.0"


def test_goog_gives_backtesting_py_trades_and_equity() -> None:
    from backtesting import Backtest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = Backtest(GOOG, SmaCross, cash=10_000, commission=0.002).run()
    bars = _goog_bars()
    model = ExecutionModel(cash=10_000, commission=0.002, mode=Mode.REVERSE)
    spec = StrategySpec("sma_cross", {"fast": 10, "slow": 20})
    ours = run_inprocess(BacktestRequest((spec,), model), bars).metrics
    assert ours["trades"] == theirs["# Trades"]
    assert ours["equity_final"] == pytest.approx(theirs["Equity Final [$]"], rel=1e-9)
    assert ours["max_drawdown_pct"] == pytest.approx(theirs["Max. Drawdown [%]"], rel=1e-9)


def test_lean_runs_and_lazy_inputs_give_the_same_result() -> None:
    bars, news = simulated_market(symbols=4, minutes=60)
    request = BacktestRequest(
        (StrategySpec("sma_cross", {"fast": 3, "slow": 8}),), ExecutionModel(cash=4_000)
    )
    full = run_inprocess(request, bars, news)

    def lazy(symbol: str) -> Iterator[events.Bar]:
        return (b for b in bars if b.symbol == symbol)

    grouped = {s: lazy(s) for s in sorted({b.symbol for b in bars})}
    lean = run_inprocess(request, grouped, news, keep_bars=False)
    assert lean.bars == {} and full.bars
    assert lean.metrics == full.metrics
    assert lean.simulation.orders == full.simulation.orders
    assert full.metrics["trades"] > 0


@pytest.mark.parametrize("jobs", [1, 2])
def test_column_input_gives_the_result_of_its_bars(jobs: int) -> None:
    """``BarColumns`` (no ``events.Bar`` per row) and the bars it stands for: the same run."""
    bars, news = simulated_market(symbols=4, minutes=90)
    request = BacktestRequest(
        (StrategySpec("sma_cross", {"fast": 3, "slow": 8}),), ExecutionModel(cash=4_000)
    )

    def rows(symbol: str) -> list[tuple[int, float, float, float, float, int]]:
        return [
            (b.ts, float(b.open), float(b.high), float(b.low), float(b.close), b.volume)
            for b in bars
            if b.symbol == symbol
        ]

    symbols = sorted({b.symbol for b in bars})
    columns = {s: BarColumns.of(s, *zip(*rows(s), strict=True)) for s in symbols}
    made = {symbol: list(c.bars()) for symbol, c in columns.items()}
    from_bars = run_inprocess(request, made, news, jobs=jobs)
    from_columns = run_inprocess(request, columns, news, jobs=jobs)
    assert [_comparable(s) for s in from_columns.signals] == [
        _comparable(s) for s in from_bars.signals
    ]
    assert from_columns.simulation == from_bars.simulation
    assert from_columns.metrics == from_bars.metrics and from_bars.metrics["trades"] > 0
    assert {s: [b.model_dump(exclude={"ingest_ts"}) for b in series]
            for s, series in from_columns.bars.items()} == {
        s: [b.model_dump(exclude={"ingest_ts"}) for b in series]
        for s, series in from_bars.bars.items()
    }  # fmt: skip


def _goog_bars() -> list[events.Bar]:
    return load_file(_goog_csv(), symbol="GOOG").bars


def _goog_csv() -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="goog-")) / "GOOG.csv"
    GOOG.to_csv(path)
    return path


OVERREACH = StrategySpec("tests.unit.backtest.hostile:Overreach", {})


def _hostile_bars(symbol: str, count: int, poison_at: int) -> list[events.Bar]:
    """``count`` bars whose close goes up and down (never 13.37), except bar ``poison_at``."""
    prices = [f"{10 + (i * 7 % 11) / 4:.2f}" for i in range(count)]
    prices[poison_at] = "13.37"
    return [bar(i, price, symbol) for i, price in enumerate(prices)]


def test_a_bar_the_model_fails_on_is_a_dead_letter_and_the_run_goes_on() -> None:
    # AAA: one batch; BBB: past the first batch, so its state comes back from the batch's copy
    bars = _hostile_bars("AAA", 40, poison_at=17) + _hostile_bars("BBB", 1_500, poison_at=1_300)
    poison = [b for b in bars if b.close == Decimal("13.37")]
    request = BacktestRequest((OVERREACH,), ExecutionModel(cash=10_000, mode=Mode.REVERSE))

    hostile = run_inprocess(request, bars)
    clean = run_inprocess(request, [b for b in bars if b not in poison])

    reasons = [d.reason for d in hostile.deadletters]
    assert len(reasons) == len(poison) == 2
    for reason, b in zip(reasons, poison, strict=True):
        assert reason.startswith(f"{b.symbol} bar at {b.ts}: analytics failed: ValidationError")
    assert hostile.alerts == clean.alerts + 2  # one bad_bar alert each
    # as if the bar had never come: the same signals, fills and metrics as without it
    assert [_comparable(s) for s in hostile.signals] == [_comparable(s) for s in clean.signals]
    assert hostile.simulation.trades == clean.simulation.trades
    assert hostile.metrics == clean.metrics
    assert clean.metrics["trades"] > 100


def _comparable(signal: events.Signal) -> dict[str, object]:
    return signal.model_dump(exclude={"ingest_ts"})


@pytest.mark.parametrize(
    "text",
    ["100", "100.0", "100.00", "0.1", "0.30", "12.345678", "0.000001", "0.00005", "0.0001",
     "1E+2", "123456789012", "999999999999.999999", "1e-5", "57.1", "3.000001"],
)  # fmt: skip
def test_prices_are_normalised_as_the_event_codec_reads_them_back(text: str) -> None:
    price = Decimal(text)
    bar = events.Bar(symbol="W", ts=0, open=price, high=price, low=price, close=price, volume=0)
    expected = events.decode(events.Bar, events.encode(bar)).open
    wire = _WirePrices()
    for _ in range(2):  # computed, then memoised
        got = wire(price)
        assert (str(got), got) == (str(expected), expected)


@pytest.mark.parametrize(
    ("jobs", "case"),
    [(2, "sleeves"), (3, "sleeves"), (2, "a symbol without a bar taken"), (3, "shared cash")],
)
def test_worker_processes_give_the_result_of_one(jobs: int, case: str) -> None:
    """``jobs`` worker processes, each taking runs of the sorted symbols: the same bars with their
    indicators, signals, alerts, dead letters, orders, trades, equity and metrics as one process,
    in the same order, with news and a bar the model fails on (a dead letter) among them; progress
    reaches every bar. The workers run the sleeves too (cash mode ``sleeves``), each on its share
    of the cash; when a symbol has no bar the model took, that share was wrong and the parent
    simulates from the bars, as it does for one shared cash pool."""
    market, news = simulated_market(symbols=5, minutes=120)
    hostile = _hostile_bars("ZZZ", 300, poison_at=200)
    bars = market + hostile
    model_of = {"shared cash": ExecutionModel(cash=5_000, cash_mode=CashMode.SHARED)}
    execution = model_of.get(case, ExecutionModel(cash=5_000))
    if case == "a symbol without a bar taken":
        bars += _hostile_bars("ZZY", 1, poison_at=0)  # its only bar: a dead letter
    request = BacktestRequest(
        (StrategySpec("sma_cross", {"fast": 3, "slow": 8}), OVERREACH), execution
    )

    class Ticks:
        def __init__(self) -> None:
            self.done = 0

        def begin(self, task: str, total: int) -> None:
            self.total = total

        def update(self, task: str, completed: int, records: int) -> None:
            self.done = max(self.done, records)

    one = run_inprocess(request, bars, news)
    ticks = Ticks()
    many = run_inprocess(request, bars, news, jobs=jobs, progress=ticks)
    assert ticks.done == len(bars) == ticks.total
    assert [_comparable(s) for s in many.signals] == [_comparable(s) for s in one.signals]
    assert many.simulation.orders == one.simulation.orders
    assert many.simulation.trades == one.simulation.trades
    assert many.simulation == one.simulation  # equity, closes, times too
    assert many.metrics == one.metrics and many.alerts == one.alerts
    assert [(d.reason, d.payload) for d in many.deadletters] == [
        (d.reason, d.payload) for d in one.deadletters
    ]
    assert len(one.deadletters) == (2 if case == "a symbol without a bar taken" else 1)
    assert one.metrics["trades"] > 0
    assert {s: [b.model_dump(exclude={"ingest_ts"}) for b in series]
            for s, series in many.bars.items()} == {
        s: [b.model_dump(exclude={"ingest_ts"}) for b in series] for s, series in one.bars.items()
    }  # fmt: skip
    assert list(many.bars) == list(one.bars)
    # and the replay's own outputs, in the order one process gives them
    model = SymbolModel(request.strategies, request.analytics)
    serial = replay(model, Feed.of(bars, news), keep_bars=True)
    forked = replay(model, Feed.of(bars, news), keep_bars=True, jobs=jobs, simulate=execution)
    if case == "sleeves":  # the workers ran the sleeves: no bars came back
        assert forked.sleeves is not None and not forked.priced
        assert gather(forked.sleeves) == simulate(serial.priced, serial.signals, execution)
    else:
        assert forked.sleeves is None and forked.priced == serial.priced
    assert [_comparable(s) for s in forked.signals] == [_comparable(s) for s in serial.signals]
    assert list(forked.bars or {}) == list(serial.bars or {})
