"""The in-process engine: the job's per-bar core driven directly, without Kafka or Flink.

``run_inprocess`` hands each symbol's bars and scored news to ``SymbolModel`` (the code the Flink
operator runs) in the order the operator applies them (``pipeline/operator.py``): by event time,
a bar at its end (``ts + interval_ms - 1``) and a story at its time, so a story is folded in before
every bar that closes after it; at the same millisecond stories come first, by id; equal items
keep their input order. Prices first get the normalisation the job's input topic gives them (the
JSON of ``events.Bar`` read back: ``100`` becomes ``100.0``), and news is scored with
``flinktrade.sentiment`` like the job's ``NewsScorer``. The model is called through the
operator's own ``pipeline.due.DueItems``, so a bar or story the model fails on becomes a dead
letter and a ``bad_bar`` / ``bad_news`` alert and the run goes on, as in the job. The signals
then go through the same simulation and metrics as the Flink engine (``engine.finish``), so both
give byte-identical CSVs and the same metrics (tested on GOOG and on 50 simulated symbols with
news, and on a bar the model fails on).

Not reproduced: the ``stale_feed`` alerts, which follow the job's watermark across symbols (alerts
are only counted in a backtest result). ``Feed`` and ``replay`` are the parts ``optimize`` reuses
to run many strategies over one pass of the data.
"""

from __future__ import annotations

import copy
import gc
import logging
import multiprocessing
import operator
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from flinktrade import events
from flinktrade.backtest.columns import BarColumns, bar_item, pack_bars, unpack_bars
from flinktrade.backtest.engine import (
    BacktestRequest,
    BacktestResult,
    fewer_collections,
    finish,
    new_run_id,
)
from flinktrade.backtest.portfolio import (
    CashMode,
    ExecutionModel,
    SleeveRun,
    dedupe_bars,
    run_sleeves,
)
from flinktrade.errors import ConfigError
from flinktrade.pipeline.analytics import ScoredNews, SymbolModel
from flinktrade.pipeline.due import BAR, NEWS, DueItems
from flinktrade.progress import NoProgress, Progress

log = logging.getLogger(__name__)

ENGINE_TASK = "engine"
NEWS_SOURCE = "backtest.news"
BARS_SOURCE = "backtest.bars"
SOURCES = {"trades": BARS_SOURCE, "bars": BARS_SOURCE, "news": NEWS_SOURCE}
"""The sources named in the dead letter of a bar or story the model failed on."""
MAX_HEADLINE_CHARS = 1_000
"""As the job's ``NewsScorer`` (``pipeline.operator.MAX_HEADLINE_CHARS``): headlines only feed
alert messages."""


class PriceBar(NamedTuple):
    """What the simulation needs of a bar, kept for every bar of a run (cheaper than the bar)."""

    symbol: str
    ts: int
    open: float
    close: float
    high: float
    low: float
    volume: int


class _WirePrices(dict[Decimal, Decimal]):
    """``Decimal`` -> the value the job reads back from its input topic (``events`` codec).

    A price whose float carries its exact digits travels as a JSON number whose text depends on
    its value only (memoised by value): for a plain float text (no exponent) that text is the
    float's repr, read back as a Decimal, computed here without the codec; any other price
    travels as its own text, read back as the same Decimal. Only exponent forms (prices below
    0.0001) take the codec's round trip (``_read_back``). A dict whose ``__missing__`` computes,
    so a price seen before costs one lookup in C (``wire[price]``, or ``wire(price)``)."""

    def __call__(self, price: Decimal) -> Decimal:
        return self[price]

    def __missing__(self, price: Decimal) -> Decimal:
        text = repr(float(price))
        if "e" in text or "n" in text:  # exponent, inf, nan: the codec decides
            wire = _read_back(price)
            if Decimal(text) == price:
                self[price] = wire
            return wire
        number = Decimal(text)
        if number != price:  # travels as a string: read back as itself (not by value)
            return price
        self[price] = number
        return number


def _read_back(price: Decimal) -> Decimal:
    bar = events.Bar(symbol="W", ts=0, open=price, high=price, low=price, close=price, volume=0)
    return events.decode(events.Bar, events.encode(bar)).open


Series = Iterable[events.Bar] | BarColumns
"""One symbol's bars, as ``Feed`` takes them."""


def bars_in(series: Series) -> Iterable[events.Bar]:
    """``series`` as bars (columns made into ``events.Bar`` row by row)."""
    return series.bars() if isinstance(series, BarColumns) else series


def _length(series: Series) -> int | None:
    """How many bars ``series`` holds, if it knows (not a one-shot iterable)."""
    return len(series) if isinstance(series, Sequence | BarColumns) else None


@dataclass
class Feed:
    """A run's input: per symbol its bars (in input order) and its scored news.

    ``bars`` values are iterated once per ``replay``; give lists (or ``BarColumns``, a symbol's
    bars as columns, which the replay reads without an ``events.Bar`` per row) to replay a feed
    several times (``optimize``), or one-shot iterables to keep only one symbol's bars in memory
    at a time."""

    bars: Mapping[str, Series]
    news: dict[str, list[ScoredNews]] = field(default_factory=dict)
    deadletters: list[events.DeadLetter] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        bars: Iterable[events.Bar] | Mapping[str, Series],
        news: Iterable[events.NewsItem] = (),
    ) -> Feed:
        """Group ``bars`` by symbol (a mapping is taken as already grouped) and score ``news``."""
        grouped: Mapping[str, Series]
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
            length = _length(series)
            if length is None:
                return None
            total += length
        return total

    def items(
        self,
        symbol: str,
        wire: _WirePrices,
        start: int | None = None,
        end: int | None = None,
    ) -> list[tuple[str, tuple[Any, ...]]]:
        """``symbol``'s bars (starting in ``[start, end)``) and news (likewise) in the order the
        Flink operator applies them, as its due items (``pipeline.due``): ``("bar", (ts, open,
        high, low, close, volume, vwap, trades, interval_ms))``, ``("news", (id, ts, score,
        headline))``."""
        lo = -(2**63) if start is None else start
        hi = 2**63 if end is None else end
        series = self.bars.get(symbol, ())
        if isinstance(series, BarColumns):
            bars = series.items(wire, lo, hi)
        else:
            bars = [bar_item(bar, wire) for bar in series if lo <= bar.ts < hi]
        news = [n for n in self.news.get(symbol, ()) if lo <= n.ts < hi]
        due = [bar[0] + bar[8] - 1 for bar in bars]
        if not news and all(map(operator.le, due, due[1:])):
            return [(BAR, bar) for bar in bars]  # already in order: the common case, no sort
        keyed: list[tuple[int, int, str, int, tuple[str, tuple[Any, ...]]]] = [
            (d, 1, "", i, (BAR, bar)) for i, (d, bar) in enumerate(zip(due, bars, strict=True))
        ]
        keyed += [
            (n.ts, 0, n.id, i, (NEWS, (n.id, n.ts, n.sentiment, n.headline)))
            for i, n in enumerate(news)
        ]
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


@dataclass
class Outputs:
    """What one pass over a feed produced."""

    priced: list[PriceBar] = field(default_factory=list)
    """Every bar the model took (one per ``AnalyticsBar``; a refused bar has none). Empty when
    ``sleeves`` holds the simulation already."""
    sleeves: list[SleeveRun] | None = None
    """Each symbol's sleeve, run by the worker processes (``replay``'s ``simulate``)."""
    bars: dict[str, list[events.AnalyticsBar]] | None = None
    """Per symbol, the bars with their indicators (only when asked for: they are large)."""
    signals: list[events.Signal] = field(default_factory=list)
    alerts: int = 0
    deadletters: list[events.DeadLetter] = field(default_factory=list)
    """A dead letter per bar or story the model refused or failed on."""


class _Floats(dict[Decimal, float]):
    """``float(price)`` memoised by value. A hit costs a tenth of the conversion only for a
    ``Decimal`` object seen before (a new one computes its hash, which costs more than ``float``):
    a run's prices are the few objects ``_WirePrices`` hands out. Equal values give equal floats;
    emptied past ``LIMIT`` entries."""

    LIMIT = 1 << 16

    def __missing__(self, price: Decimal) -> float:
        value = float(price)
        if len(self) >= self.LIMIT:
            self.clear()
        self[price] = value
        return value


_FLOATS = _Floats()


def take(outputs: Sequence[Any], into: Outputs) -> None:
    """The one place that reads what ``SymbolModel.on_bar`` / ``on_news`` return (bars with
    indicators, alerts, signals; dead letters from ``DueItems``) into a run's ``Outputs``."""
    # Called for every bar of a run: names bound locally, the PriceBar built as its tuple.
    analytics, signal, alert = events.AnalyticsBar, events.Signal, events.Alert
    priced, signals, bars = into.priced.append, into.signals.append, into.bars
    new, price_bar, floats = tuple.__new__, PriceBar, _FLOATS
    for event in outputs:
        kind = type(event)
        if kind is analytics:
            fields = event.__dict__
            open_, close, high, low = fields["open"], fields["close"], fields["high"], fields["low"]
            try:  # a run's prices are the wire's few Decimal objects (hashes cached): memoised
                prices = (floats[open_], floats[close], floats[high], floats[low])
            except TypeError:  # a signalling NaN cannot be hashed (nor a bar have one)
                prices = (float(open_), float(close), float(high), float(low))
            priced(new(price_bar, (fields["symbol"], fields["ts"], *prices, fields["volume"])))
            if bars is not None:
                bars.setdefault(event.symbol, []).append(event)
        elif kind is signal:
            signals(event)
        elif kind is alert:
            into.alerts += 1
        elif kind is events.DeadLetter:
            into.deadletters.append(event)


BATCH = 1_024
"""Items per ``DueItems.apply`` call: a model failure rebuilds the state from a copy taken before
the batch (one copy per batch after the first) plus the batch's items that went through."""


def replay(
    model: SymbolModel,
    feed: Feed,
    *,
    keep_bars: bool = False,
    start: int | None = None,
    end: int | None = None,
    progress: Callable[[int], None] | None = None,
    jobs: int = 1,
    simulate: ExecutionModel | None = None,
) -> Outputs:
    """One pass of ``model`` over ``feed`` (bars and news starting in ``[start, end)``), symbol
    by symbol, each from its initial state; ``progress`` gets the bars done after each symbol.

    The model is driven through the job operator's ``DueItems``, so a bar or story it fails on
    becomes a dead letter and an alert, its state is as if the item had never come, and the run
    goes on, as in the Flink job.

    ``jobs`` above 1: that many worker processes (fork) take contiguous runs of the sorted
    symbols, each replayed as here; their outputs, joined in symbol order, are the very outputs
    of one process (a symbol's state and outputs depend on its own items only). With
    ``simulate``, an execution model of cash mode ``sleeves``, the workers also run each of
    their symbols' sleeves (``portfolio.run_sleeves``), on the cash split over the symbols that
    have bars: the outputs then hold them as ``sleeves`` (for ``engine.finish``) in place of the
    ``priced`` bars, unless a symbol turned out to have no bar the model took (its share of the
    cash was wrong), when they hold the bars as without ``simulate``."""
    symbols = feed.symbols()
    jobs = max(1, min(jobs, len(symbols)))
    run = _Pass(model, feed, keep_bars, start, end)
    if jobs == 1:
        return _replay(run, symbols, progress)
    if simulate is not None and simulate.cash_mode is not CashMode.SLEEVES:
        simulate = None  # one cash pool: the parent simulates all symbols at once
    return _replay_forked(run, symbols, progress, jobs, simulate)


@dataclass(frozen=True)
class _Pass:
    """What one ``replay`` runs: the model over the feed's items starting in ``[start, end)``,
    keeping the bars with their indicators or not."""

    model: SymbolModel
    feed: Feed
    keep_bars: bool
    start: int | None
    end: int | None


def _replay(run: _Pass, symbols: Sequence[str], progress: Callable[[int], None] | None) -> Outputs:
    model = run.model
    out = Outputs(bars={} if run.keep_bars else None)
    wire = _WirePrices()
    due = DueItems(model, SOURCES, checked_bars=True)  # the input was events.Bar: bounds checked
    done = 0
    for symbol in symbols:
        state = model.initial_state()
        items = run.feed.items(symbol, wire, run.start, run.end)
        for first in range(0, len(items), BATCH):
            before = None if first == 0 else copy.deepcopy(state)
            state, applied = due.apply(state, symbol, items[first : first + BATCH], _copies(before))
            take(applied, out)
        done += sum(1 for kind, _item in items if kind == BAR)
        if progress is not None:
            progress(done)
    return out


FORKED: dict[str, Any] = {}
"""What the worker processes of ``in_workers`` inherit by fork: what the caller shares, and
``ticks``, the queue of their progress."""


def in_workers(
    function: Callable[..., Any],
    calls: Sequence[tuple[Any, ...]],
    jobs: int,
    shared: Mapping[str, Any],
    tick: Callable[[int], None] | None = None,
) -> list[Any]:
    """``function(*args)`` for each ``args`` of ``calls`` in ``jobs`` worker processes (fork);
    the results in the order of ``calls``. The workers find ``shared`` in ``FORKED`` (inherited,
    never pickled) and put progress increments on ``FORKED["ticks"]``, each handed to ``tick`` as
    it comes (``increments`` makes such a callback of a running total).

    ``ticks`` is a queue without a feeder thread (a put is in the pipe when it returns), so a
    worker's increments are all in it before its result comes back; the parent puts ``None`` in
    it as each call ends, so it waits for exactly as long as the calls take."""
    context = multiprocessing.get_context("fork")
    ticks: Any = context.SimpleQueue()
    FORKED.update(shared, ticks=ticks)
    # The objects the workers inherit, out of the collector's reach while they run: a worker's
    # full collection would otherwise walk (and so copy, page by page) the parent's whole heap.
    gc.freeze()
    try:
        with context.Pool(jobs) as pool:

            def ended(_result: Any) -> None:  # on the pool's result thread, after each call
                ticks.put(None)

            pending = [pool.apply_async(function, args, callback=ended, error_callback=ended)
                       for args in calls]  # fmt: skip
            left = len(pending)
            while left:
                done = ticks.get()
                if done is None:
                    left -= 1
                elif tick is not None:
                    tick(done)
            return [p.get() for p in pending]
    finally:
        gc.unfreeze()
        FORKED.clear()


def increments(tick: Callable[[int], None] | None) -> Callable[[int], None]:
    """A ``progress`` callback of a running total that hands ``tick`` each increase."""
    last = 0

    def progress(done: int) -> None:
        nonlocal last
        if tick is not None:
            tick(done - last)
        last = done

    return progress


PIECES = 4
"""Runs of symbols per worker: a worker that is done takes the next run, so a slower core (a
shared machine's cores are rarely equal) ends up with fewer of them."""


def _chunks(feed: Feed, symbols: Sequence[str], pieces: int) -> list[list[str]]:
    """``symbols`` in up to ``pieces`` contiguous runs of about equal bars (of equal counts when
    the inputs do not know their length)."""
    lengths = [_length(feed.bars.get(s, ())) for s in symbols]
    sizes = [1 if length is None else length for length in lengths]
    total, filled = sum(sizes), 0
    chunks: list[list[str]] = []
    current: list[str] = []
    for symbol, size in zip(symbols, sizes, strict=True):
        current.append(symbol)
        filled += size
        if filled * pieces >= total * (len(chunks) + 1) and len(chunks) < pieces - 1:
            chunks.append(current)
            current = []
    chunks.append(current)
    return [chunk for chunk in chunks if chunk]


def _replay_forked(
    run: _Pass,
    symbols: Sequence[str],
    progress: Callable[[int], None] | None,
    jobs: int,
    simulate: ExecutionModel | None,
) -> Outputs:
    done = 0

    def tick(more: int) -> None:
        nonlocal done
        done += more
        if progress is not None:
            progress(done)

    calls = [(chunk,) for chunk in _chunks(run.feed, symbols, jobs * PIECES)]
    shared = {"run": run, "simulate": simulate, "priced": _with_bars(run.feed)}
    packed = in_workers(_worker, calls, jobs, shared, tick)
    out = Outputs(bars={} if run.keep_bars else None)
    runs = [run for part in packed for run in part[-1] or ()]
    sleeves = simulate is not None and all(r.cash == simulate.cash / len(runs) for r in runs)
    with _no_collections():  # every object made here is kept: nothing for the collector
        for part in packed:  # in symbol order
            priced, bars, signals, alerts, deadletters = _unpacked(part, bars=not sleeves)
            out.priced += priced
            out.signals += signals
            out.alerts += alerts
            out.deadletters += deadletters
            if out.bars is not None and bars is not None:
                out.bars.update(bars)
    if sleeves:
        out.sleeves = runs
    return out


@contextmanager
def _no_collections() -> Iterator[None]:
    """The body without the cyclic collector (it would walk the run's whole heap again and again
    while the body only adds objects that stay), then the collector as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _with_bars(feed: Feed) -> int:
    """How many symbols of ``feed`` have bars (each of a one-shot iterable is taken to)."""
    return sum(1 for b in feed.bars.values() if _length(b) != 0)


def _worker(symbols: list[str]) -> tuple[Any, ...]:
    out = _replay(FORKED["run"], symbols, increments(FORKED["ticks"].put))
    simulate: ExecutionModel | None = FORKED["simulate"]
    runs = None
    if simulate is not None:
        runs = run_sleeves(dedupe_bars(out.priced), out.signals, simulate, FORKED["priced"])
    return (*_packed(out), runs)


def _packed(out: Outputs) -> tuple[Any, ...]:
    """``out`` for the trip back to the parent: the priced bars as columns (a million
    ``PriceBar`` tuples take ~2 s each way through pickle, their columns a few ms), and the
    bars with indicators too (``columns.pack_bars``)."""
    priced = out.priced
    symbols: list[str] = []
    counts: list[int] = []
    for bar in priced:  # runs of one symbol
        if symbols and symbols[-1] == bar.symbol:
            counts[-1] += 1
        else:
            symbols.append(bar.symbol)
            counts.append(1)
    columns = (
        array("q", [b.ts for b in priced]),
        array("d", [b.open for b in priced]),
        array("d", [b.close for b in priced]),
        array("d", [b.high for b in priced]),
        array("d", [b.low for b in priced]),
        array("q", [b.volume for b in priced]),
    )
    bars = None if out.bars is None else {s: pack_bars(b) for s, b in out.bars.items()}
    return (symbols, counts, columns, bars, out.signals, out.alerts, out.deadletters)


def _unpacked(packed: tuple[Any, ...], bars: bool) -> tuple[Any, ...]:
    """A worker's outputs: (priced bars, bars with indicators, signals, alerts, dead letters);
    no priced bars unless ``bars``."""
    symbols, counts, columns, packed_bars, signals, alerts, deadletters, _runs = packed
    analytics = None
    if packed_bars is not None:
        analytics = {symbol: unpack_bars(p) for symbol, p in packed_bars.items()}
    priced: list[PriceBar] = []
    if bars:
        names = [s for s, count in zip(symbols, counts, strict=True) for _ in range(count)]
        new = tuple.__new__
        priced = [new(PriceBar, row) for row in zip(names, *columns, strict=True)]
    return priced, analytics, signals, alerts, deadletters


def _copies(state: dict[str, Any] | None) -> Callable[[], dict[str, Any] | None]:
    """``DueItems``'s ``stored``: a fresh copy of ``state`` at each call (None: no state yet)."""
    return lambda: None if state is None else copy.deepcopy(state)


def run_inprocess(
    request: BacktestRequest,
    bars: Iterable[events.Bar] | Mapping[str, Series],
    news: Iterable[events.NewsItem] = (),
    *,
    keep_bars: bool = True,
    progress: Progress | None = None,
    jobs: int = 1,
) -> BacktestResult:
    """Backtest ``request`` over ``bars`` (and ``news``) in this process (``jobs`` above 1: the
    replay in that many worker processes, by symbol; the same result, see ``replay``).

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

    with fewer_collections():
        out = replay(
            model, feed, keep_bars=keep_bars, progress=advance, jobs=jobs, simulate=request.model
        )
        timings["job_s"] = time.monotonic() - started - timings["input_s"]
        return finish(
            new_run_id(),
            request,
            priced=out.priced,
            report_bars=dedupe_bars(b for series in (out.bars or {}).values() for b in series),
            signals=out.signals,
            alerts=out.alerts,
            deadletters=feed.deadletters + out.deadletters,
            timings=timings,
            started=started,
            sleeves=out.sleeves,
        )
