"""The in-process engine: the job's per-bar core driven directly, without Kafka or Flink.

``run_inprocess`` hands each symbol's bars and scored news to ``SymbolModel`` (the code the Flink
operator runs) in the order the operator applies them (``pipeline/operator.py``): by event time,
a bar at its end (``ts + interval_ms - 1``) and a story at its time, so a story is folded in before
every bar that closes after it; at the same millisecond stories come first, by id; equal items
keep their input order. Prices first get the normalisation the job's input topic gives them (the
JSON of ``events.Bar`` read back: ``100`` becomes ``100.0``), and news is scored with
``flinktrade.sentiment`` like the job's ``NewsScorer``. The signals then go through the same
simulation and metrics as the Flink engine (``engine.finish``), so both give byte-identical
CSVs and the same metrics (tested on GOOG and on 50 simulated symbols with news).

Not reproduced: the ``stale_feed`` alerts, which follow the job's watermark across symbols (alerts
are only counted in a backtest result). ``Feed`` and ``replay`` are the parts ``optimize`` reuses
to run many strategies over one pass of the data.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from flinktrade import events
from flinktrade.backtest import runner
from flinktrade.backtest.engine import BacktestRequest, BacktestResult, finish
from flinktrade.backtest.portfolio import dedupe_bars
from flinktrade.errors import ConfigError
from flinktrade.ingest.history import NoProgress, Progress
from flinktrade.pipeline.analytics import ClosedBar, ScoredNews, SymbolModel

log = logging.getLogger(__name__)

ENGINE_TASK = "engine"
NEWS_SOURCE = "backtest.news"
MAX_HEADLINE_CHARS = 1_000
"""As the job's ``NewsScorer`` (``pipeline.operator.MAX_HEADLINE_CHARS``): headlines only feed
alert messages."""


class PriceBar(NamedTuple):
    """What the simulation needs of a bar, kept for every bar of a run (cheaper than the bar)."""

    symbol: str
    ts: int
    open: float
    close: float


class _WirePrices:
    """``Decimal`` -> the value the job reads back from its input topic (``events`` codec).

    A price whose float carries its exact digits travels as a JSON number whose text depends on
    its value only (memoised by value); any other price travels as its own text."""

    def __init__(self) -> None:
        self._seen: dict[Decimal, Decimal] = {}

    def __call__(self, price: Decimal) -> Decimal:
        wire = self._seen.get(price)
        if wire is not None:
            return wire
        wire = _read_back(price)
        if Decimal(repr(float(price))) == price:
            self._seen[price] = wire
        return wire


def _read_back(price: Decimal) -> Decimal:
    bar = events.Bar(symbol="W", ts=0, open=price, high=price, low=price, close=price, volume=0)
    return events.decode(events.Bar, events.encode(bar)).open


@dataclass
class Feed:
    """A run's input: per symbol its bars (in input order) and its scored news.

    ``bars`` values are iterated once per ``replay``; give lists to replay a feed several times
    (``optimize``), or one-shot iterables to keep only one symbol's bars in memory at a time."""

    bars: Mapping[str, Iterable[events.Bar]]
    news: dict[str, list[ScoredNews]] = field(default_factory=dict)
    deadletters: list[events.DeadLetter] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        bars: Iterable[events.Bar] | Mapping[str, Iterable[events.Bar]],
        news: Iterable[events.NewsItem] = (),
    ) -> Feed:
        """Group ``bars`` by symbol (a mapping is taken as already grouped) and score ``news``."""
        grouped: Mapping[str, Iterable[events.Bar]]
        if isinstance(bars, Mapping):
            grouped = bars
        else:
            by_symbol: dict[str, list[events.Bar]] = {}
            for bar in bars:
                by_symbol.setdefault(bar.symbol, []).append(bar)
            grouped = by_symbol
        scored, dead = score_news(news)
        return cls(grouped, scored, dead)

    def symbols(self) -> list[str]:
        return sorted(set(self.bars) | set(self.news))

    def size(self) -> int | None:
        """How many bars, when the inputs know their length."""
        total = 0
        for series in self.bars.values():
            if not isinstance(series, Sequence):
                return None
            total += len(series)
        return total

    def items(
        self,
        symbol: str,
        wire: Callable[[Decimal], Decimal],
        start: int | None = None,
        end: int | None = None,
    ) -> list[ClosedBar | ScoredNews]:
        """``symbol``'s bars (starting in ``[start, end)``) and news (likewise) in the order the
        Flink operator applies them."""
        lo = -(2**63) if start is None else start
        hi = 2**63 if end is None else end
        bars = [_closed(bar, wire) for bar in self.bars.get(symbol, ()) if lo <= bar.ts < hi]
        news = [n for n in self.news.get(symbol, ()) if lo <= n.ts < hi]
        due = [bar.ts + bar.interval_ms - 1 for bar in bars]
        if not news and all(a <= b for a, b in itertools.pairwise(due)):
            return list(bars)  # already in order: the common case, no sort
        keyed: list[tuple[int, int, str, int, ClosedBar | ScoredNews]] = [
            (d, 1, "", i, bar) for i, (d, bar) in enumerate(zip(due, bars, strict=True))
        ]
        keyed += [(n.ts, 0, n.id, i, n) for i, n in enumerate(news)]
        keyed.sort(key=lambda k: k[:4])
        return [k[4] for k in keyed]


def score_news(
    news: Iterable[events.NewsItem],
) -> tuple[dict[str, list[ScoredNews]], list[events.DeadLetter]]:
    """News as the job's ``NewsScorer`` turns it into rows: one per named symbol, scored once."""
    from flinktrade import sentiment

    scored: dict[str, list[ScoredNews]] = {}
    dead: list[events.DeadLetter] = []
    for item in news:
        if not item.symbols:
            raw = events.encode(item)
            dead.append(
                events.DeadLetter.of(NEWS_SOURCE, "news item names no symbol", raw, ts=item.ts)
            )
            continue
        score = float(sentiment.score(item.headline, item.summary))
        if not -1.0 <= score <= 1.0:  # also refuses NaN
            reason = f"ValueError: sentiment score {score} outside [-1, 1]"
            dead.append(events.DeadLetter.of(NEWS_SOURCE, reason, events.encode(item), ts=item.ts))
            continue
        headline = item.headline[:MAX_HEADLINE_CHARS]
        for symbol in dict.fromkeys(item.symbols):
            scored.setdefault(symbol, []).append(
                ScoredNews(item.id, symbol, item.ts, score, headline)
            )
    return scored, dead


def _closed(bar: events.Bar, wire: Callable[[Decimal], Decimal]) -> ClosedBar:
    return ClosedBar(
        symbol=bar.symbol,
        ts=bar.ts,
        open=wire(bar.open),
        high=wire(bar.high),
        low=wire(bar.low),
        close=wire(bar.close),
        volume=bar.volume,
        vwap=bar.vwap,
        trades=bar.trades or 0,
        interval_ms=bar.interval_ms,
    )


@dataclass
class Outputs:
    """What one pass over a feed produced."""

    priced: list[PriceBar] = field(default_factory=list)
    bars: dict[str, list[events.AnalyticsBar]] | None = None
    """Per symbol, the bars with their indicators (only when asked for: they are large)."""
    signals: list[events.Signal] = field(default_factory=list)
    alerts: int = 0


def take(outputs: Sequence[Any], into: Outputs) -> None:
    """The one place that reads what ``SymbolModel.on_bar`` / ``on_news`` return (bars with
    indicators, alerts, signals) into a run's ``Outputs``."""
    for event in outputs:
        if isinstance(event, events.Signal):
            into.signals.append(event)
        elif isinstance(event, events.AnalyticsBar):
            if into.bars is not None:
                into.bars.setdefault(event.symbol, []).append(event)
        elif isinstance(event, events.Alert):
            into.alerts += 1


def replay(
    model: SymbolModel,
    feed: Feed,
    *,
    keep_bars: bool = False,
    start: int | None = None,
    end: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Outputs:
    """One pass of ``model`` over ``feed`` (bars and news starting in ``[start, end)``), symbol
    by symbol, each from its initial state; ``progress`` gets the bars done after each symbol."""
    out = Outputs(bars={} if keep_bars else None)
    wire = _WirePrices()
    done = 0
    for symbol in feed.symbols():
        state = model.initial_state()
        on_bar, on_news, priced = model.on_bar, model.on_news, out.priced
        for item in feed.items(symbol, wire, start, end):
            if type(item) is ClosedBar:
                take(on_bar(state, item), out)
                priced.append(PriceBar(symbol, item.ts, float(item.open), float(item.close)))
                done += 1
            else:
                assert isinstance(item, ScoredNews)
                take(on_news(state, item), out)
        if progress is not None:
            progress(done)
    return out


def run_inprocess(
    request: BacktestRequest,
    bars: Iterable[events.Bar] | Mapping[str, Iterable[events.Bar]],
    news: Iterable[events.NewsItem] = (),
    *,
    keep_bars: bool = True,
    progress: Progress | None = None,
) -> BacktestResult:
    """Backtest ``request`` over ``bars`` (and ``news``) in this process.

    ``keep_bars`` keeps every bar with its indicators for the report (``features.csv``, charts);
    without it the result's ``bars`` is empty and memory stays at a few hundred bytes a bar."""
    if not request.strategies:
        raise ConfigError("a backtest needs at least one strategy")
    model = SymbolModel(request.strategies, request.analytics)  # fails on a bad strategy
    started = time.monotonic()
    feed = Feed.of(bars, news)
    timings: dict[str, float] = {"input_s": time.monotonic() - started}
    bar = progress or NoProgress()
    total = feed.size()
    bar.begin(ENGINE_TASK, max(1, total or len(feed.bars)))
    symbols_done = 0

    def advance(done: int) -> None:
        nonlocal symbols_done
        symbols_done += 1
        bar.update(ENGINE_TASK, done if total is not None else symbols_done, done)

    out = replay(model, feed, keep_bars=keep_bars, progress=advance)
    timings["job_s"] = time.monotonic() - started - timings["input_s"]
    return finish(
        runner.new_run_id(),
        request,
        priced=out.priced,
        report_bars=dedupe_bars(b for series in (out.bars or {}).values() for b in series),
        signals=out.signals,
        alerts=out.alerts,
        deadletters=feed.deadletters,
        timings=timings,
        started=started,
    )
