"""The Flink engine: one backtest end to end through the production job. The input goes onto a
run's topics, the job runs bounded over them, the portfolio is simulated over the job's bars and
signals, the metrics computed, and the topics deleted again.

The job is the one that runs live (``flinktrade.pipeline.job``): the indicators, the strategies
and the signal ids come from the same code, so a backtest's signals are the live signals for the
same bars. Only the execution (``portfolio``) is simulated. ``finish`` (simulation and metrics) is
shared with the in-process engine (``inprocess``), which drives the job's per-bar core directly
and imports this module without Kafka or the input readers (they are imported by ``run_backtest``).
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flinktrade import events
from flinktrade.backtest import metrics as metrics_
from flinktrade.backtest.portfolio import (
    ExecutionModel,
    PricedBar,
    SimulationResult,
    SleeveRun,
    dedupe_bars,
    dedupe_signals,
    gather,
    simulate,
)
from flinktrade.config import AnalyticsSettings
from flinktrade.errors import ConfigError
from flinktrade.pipeline.analytics import StrategySpec, build_all
from flinktrade.progress import Progress

if TYPE_CHECKING:
    from flinktrade.backtest.runner import RunTopics
    from flinktrade.bus import Servers

log = logging.getLogger(__name__)

Feed = Callable[["RunTopics"], int]
"""Writes a run's input onto its topics; returns how many bars it wrote."""


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


FEWER_COLLECTIONS = 50_000
"""Allocations between two young-generation collections while a backtest replays (Python's
default is 700): a replay allocates millions of short-lived objects and keeps many long-lived
ones (its outputs), so the default threshold makes the collector walk those again and again."""


@contextmanager
def fewer_collections(threshold: int = FEWER_COLLECTIONS) -> Iterator[None]:
    """Run the body with the collector's young-generation threshold raised to ``threshold`` (the
    older generations' thresholds and whether collection is enabled unchanged), and put the
    previous thresholds back afterwards, also when the body raises. Garbage is still collected;
    only less often."""
    before = gc.get_threshold()
    gc.set_threshold(max(threshold, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


@dataclass(frozen=True)
class MarketTopics:
    """Existing topics to read instead of a run's own input topics (left untouched)."""

    trades: str
    news: str
    bars: str


@dataclass(frozen=True)
class BacktestRequest:
    strategies: tuple[StrategySpec, ...]
    model: ExecutionModel = field(default_factory=ExecutionModel)
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings)
    parallelism: int = 1
    keep_topics: bool = False


@dataclass
class BacktestResult:
    run_id: str
    bars: dict[str, list[events.AnalyticsBar]]
    signals: list[events.Signal]
    simulation: SimulationResult
    metrics: dict[str, Any]
    alerts: int
    deadletters: list[events.DeadLetter]
    timings: dict[str, float]


def run_backtest(
    servers: Servers,
    request: BacktestRequest,
    *,
    bars: Sequence[events.Bar] | None = None,
    feed: Feed | None = None,
    market: MarketTopics | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Backtest ``request`` over exactly one input: ``bars``, a ``feed`` or ``market`` topics.

    ``servers``: the Kafka settings (their security settings reach every client and the job), or
    a plain ``host:port`` list."""
    # Here, not at the top: the in-process engine imports this module and needs neither Kafka
    # nor the file and Alpaca readers (about a second of CPU at start-up).
    from flinktrade.backtest import runner
    from flinktrade.backtest.loading import produce_bars

    if sum(x is not None for x in (bars, feed, market)) != 1:
        raise ConfigError("a backtest needs exactly one input: bars, a feed, or market topics")
    if not request.strategies:
        raise ConfigError("a backtest needs at least one strategy")
    build_all(request.strategies)  # fail before any topic exists
    run_id = new_run_id()
    topics = runner.RunTopics.fresh(run_id)
    if market is not None:
        topics = runner.RunTopics(
            trades=market.trades,
            news=market.news,
            bars=market.bars,
            **{role: getattr(topics, role) for role in runner.OUTPUT_ROLES},
        )
        owned = [getattr(topics, role) for role in runner.OUTPUT_ROLES]
    else:
        owned = list(topics.names().values())
    timings: dict[str, float] = {}
    started = time.monotonic()
    runner.create_topics(servers, owned, max(1, request.parallelism))
    try:
        expected: int | None = None
        if bars is not None:
            expected = produce_bars(servers, topics.bars, bars, progress)
        elif feed is not None:
            expected = feed(topics)
        timings["input_s"] = time.monotonic() - started
        output = runner.run_job(
            servers,
            topics,
            request.strategies,
            request.analytics,
            run_id=run_id,
            expected_bars=expected,
            parallelism=request.parallelism,
            progress=progress,
        )
        timings["job_s"] = output.job_seconds
    finally:
        if not request.keep_topics:
            runner.delete(servers, owned)
    by_symbol = dedupe_bars(output.bars)
    return finish(
        run_id,
        request,
        priced=output.bars,
        report_bars={
            s: [b for b in series if isinstance(b, events.AnalyticsBar)]
            for s, series in by_symbol.items()
        },
        signals=output.signals,
        alerts=len(output.alerts),
        deadletters=output.deadletters,
        timings=timings,
        started=started,
    )


def finish(
    run_id: str,
    request: BacktestRequest,
    *,
    priced: Sequence[PricedBar],
    report_bars: dict[str, list[events.AnalyticsBar]],
    signals: Sequence[events.Signal],
    alerts: int,
    deadletters: list[events.DeadLetter],
    timings: dict[str, float],
    started: float,
    sleeves: Sequence[SleeveRun] | None = None,
) -> BacktestResult:
    """The part both engines share: the bars and signals of a run into a simulated portfolio and
    its metrics (``priced``: the bars the fills and equity use, ``report_bars``: what the report
    shows, possibly empty; ``sleeves``: instead of ``priced``, the sleeves of cash mode
    ``sleeves`` already run, on the cash split over as many symbols, as ``simulate`` would)."""
    simulated_at = time.monotonic()
    if not (priced if sleeves is None else sleeves):
        raise ConfigError("the job produced no bars: is the input empty or all invalid?")
    unique = dedupe_signals(signals)
    simulation = gather(sleeves) if sleeves is not None else simulate(priced, unique, request.model)
    metrics = metrics_.compute(simulation, request.model.cash, signals=len(unique))
    timings["simulate_s"] = time.monotonic() - simulated_at
    timings["total_s"] = time.monotonic() - started
    log.info(
        "backtest %s: %d bars, %d signals, %d trades, final equity %.2f",
        run_id,
        metrics["bars"],
        len(unique),
        metrics["trades"],
        metrics["equity_final"],
    )
    return BacktestResult(
        run_id=run_id,
        bars=report_bars,
        signals=unique,
        simulation=simulation,
        metrics=metrics,
        alerts=alerts,
        deadletters=deadletters,
        timings=timings,
    )
