"""Parameter sweeps and walk-forward analysis over the in-process engine (``flinktrade optimize``).

A sweep evaluates one strategy at every parameter set of a grid (``fast=5:30:5``: start, stop,
step, stop included), optionally filtered by a ``--where`` constraint (``expr``) and sampled
(``--random N``, seeded), and ranks the sets by one metric. Parameter sets share passes over the
data: each worker builds one ``SymbolModel`` holding its share of the sets as separately named
strategies, so the indicators are computed once per bar for all of them, then simulates each set's
signals on its own (``portfolio``, ``metrics``). A set's result is the same as a single backtest's
with those parameters (tested against a loop of single backtests): strategies share indicator
values, never state. ``--jobs`` worker processes (fork) split the sets; the results do not depend
on their number.

Walk-forward (``--walk-forward K``): the bar times are cut into K + 1 equal windows; for each
k = 1..K the grid is optimised on window k - 1 (in-sample) and the best set is evaluated on window k
(out-of-sample) with the in-sample window as indicator warm-up and the equity reached so far as
its cash. The out-of-sample equity curves, chained, are the walk-forward's result.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from flinktrade import events
from flinktrade.backtest import metrics as metrics_
from flinktrade.backtest.engine import fewer_collections
from flinktrade.backtest.expr import Expression
from flinktrade.backtest.inprocess import (
    FORKED,
    Feed,
    PriceBar,
    bars_in,
    in_workers,
    increments,
    replay,
)
from flinktrade.backtest.portfolio import EquityPoint, ExecutionModel, dedupe_signals, simulate
from flinktrade.config import AnalyticsSettings
from flinktrade.errors import ConfigError
from flinktrade.pipeline.analytics import StrategySpec, SymbolModel
from flinktrade.strategies import build

log = logging.getLogger(__name__)

METRICS = ("sharpe", "return_pct", "sortino", "calmar", "profit_factor")
"""Metrics a sweep can maximise (``backtest.metrics`` keys)."""
Number = int | float
Params = dict[str, Number]
Tick = Callable[[int], None]
"""Receives how many more bars have been replayed (for a progress bar)."""


# -- the grid -------------------------------------------------------------------------------------


def parse_grid(specs: Sequence[str]) -> dict[str, list[Number]]:
    """``name=start:stop:step`` (stop included), ``name=a,b,c`` or ``name=v`` per spec, in order.

    Integers stay integers; a decimal anywhere makes that parameter's values floats (computed
    as exact decimals, so ``0.1:0.3:0.1`` is ``[0.1, 0.2, 0.3]``)."""
    grid: dict[str, list[Number]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ConfigError(f"--grid {spec!r}: expected name=start:stop:step or name=a,b,c")
        if name in grid:
            raise ConfigError(f"--grid {name} is given twice")
        try:
            if ":" in values:
                parts = [Decimal(p.strip()) for p in values.split(":")]
                if len(parts) != 3:
                    raise ConfigError(f"--grid {spec!r}: a range is start:stop:step")
                start, stop, step = parts
                if step <= 0 or stop < start:
                    raise ConfigError(f"--grid {spec!r}: needs step > 0 and start <= stop")
                count = int((stop - start) / step) + 1
                if count > 100_000:
                    raise ConfigError(f"--grid {spec!r}: {count} values is too many")
                decimals = [start + i * step for i in range(count)]
            else:
                decimals = [Decimal(p.strip()) for p in values.split(",") if p.strip()]
        except InvalidOperation:
            raise ConfigError(f"--grid {spec!r}: not a number") from None
        if not decimals:
            raise ConfigError(f"--grid {spec!r}: no values")
        integral = all(d == d.to_integral_value() and "." not in str(d) for d in decimals)
        chosen = [int(d) if integral else float(d) for d in decimals]
        grid[name] = list(dict.fromkeys(chosen))
    if not grid:
        raise ConfigError("give at least one --grid name=start:stop:step")
    return grid


def candidates(
    grid: Mapping[str, Sequence[Number]],
    where: Expression | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[Params]:
    """Every parameter set of ``grid`` (the first name varies slowest) that satisfies ``where``;
    with ``sample``, that many of them drawn at random with ``seed``, kept in grid order."""
    names = list(grid)
    sets = [dict(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]
    if where is not None:
        sets = [s for s in sets if where.holds(s)]
    if not sets:
        raise ConfigError("no parameter set satisfies --where")
    if sample is not None:
        if sample < 1:
            raise ConfigError("--random must be at least 1")
        if sample < len(sets):
            chosen = sorted(random.Random(seed).sample(range(len(sets)), sample))  # noqa: S311
            sets = [sets[i] for i in chosen]
    return sets


# -- evaluating parameter sets --------------------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """One strategy, the fixed parameters and the parameter sets to evaluate."""

    strategy: str
    candidates: list[Params]
    model: ExecutionModel = field(default_factory=ExecutionModel)
    analytics: AnalyticsSettings = field(default_factory=lambda: AnalyticsSettings(alerts=False))
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def spec(self, index: int) -> StrategySpec:
        """Set ``index`` as a strategy of its own name (names key state and signal ids)."""
        params = {**self.fixed, **self.candidates[index], "name": f"{self.strategy}#{index}"}
        return StrategySpec(self.strategy, params)


@dataclass(frozen=True)
class Run:
    """One parameter set's result (``metrics`` None when the strategy refused the set)."""

    index: int
    params: Params
    metrics: dict[str, Any] | None
    error: str = ""
    equity: tuple[EquityPoint, ...] = ()


@dataclass(frozen=True)
class Window:
    """Which bars one evaluation replays (``start``..``end``) and simulates (from ``trade_from``)."""

    start: int | None = None
    end: int | None = None
    trade_from: int | None = None


def evaluate(
    feed: Feed,
    sweep: Sweep,
    *,
    jobs: int = 1,
    window: Window | None = None,
    keep_equity: bool = False,
    tick: Tick | None = None,
) -> list[Run]:
    """Every parameter set of ``sweep`` over ``feed``, in the sweep's order."""
    window = window or Window()
    indices = list(range(len(sweep.candidates)))
    jobs = max(1, min(jobs, len(indices)))
    if jobs == 1:
        return _chunk(feed, sweep, indices, window, keep_equity, tick)
    calls = [(sweep, indices[i::jobs], window, keep_equity) for i in range(jobs)]
    parts = in_workers(_worker_chunk, calls, jobs, {"feed": feed}, tick)
    return sorted((run for part in parts for run in part), key=lambda r: r.index)


def _worker_chunk(sweep: Sweep, indices: list[int], window: Window, keep_equity: bool) -> list[Run]:
    return _chunk(FORKED["feed"], sweep, indices, window, keep_equity, FORKED["ticks"].put)


def _chunk(
    feed: Feed,
    sweep: Sweep,
    indices: list[int],
    window: Window,
    keep_equity: bool,
    tick: Tick | None,
) -> list[Run]:
    """One pass over ``feed`` for the sets ``indices`` together, then one simulation each."""
    specs: dict[int, StrategySpec] = {}
    refused: dict[int, str] = {}
    for index in indices:
        spec = sweep.spec(index)
        try:
            build(spec.name, spec.params)
        except ConfigError as exc:
            refused[index] = str(exc)
        else:
            specs[index] = spec
    runs = [Run(i, sweep.candidates[i], None, error) for i, error in refused.items()]
    if specs:
        model = SymbolModel(list(specs.values()), sweep.analytics)
        with fewer_collections():  # as run_inprocess
            progress = increments(tick)
            out = replay(model, feed, start=window.start, end=window.end, progress=progress)
        priced: list[PriceBar] = out.priced
        signals = out.signals
        if window.trade_from is not None:
            since = window.trade_from
            priced = [bar for bar in priced if bar.ts >= since]
            signals = [s for s in signals if s.bar_ts >= since]
        by_strategy: dict[str, list[events.Signal]] = {}
        for signal in signals:
            by_strategy.setdefault(signal.strategy, []).append(signal)
        for index, spec in specs.items():
            runs.append(_simulated(sweep, index, spec, priced, by_strategy, keep_equity))
    return runs


def _simulated(
    sweep: Sweep,
    index: int,
    spec: StrategySpec,
    priced: list[PriceBar],
    by_strategy: Mapping[str, list[events.Signal]],
    keep_equity: bool,
) -> Run:
    params = sweep.candidates[index]
    if not priced:
        return Run(index, params, None, "no bars in the window")
    unique = dedupe_signals(by_strategy.get(str(spec.params["name"]), []))
    simulation = simulate(priced, unique, sweep.model)
    metrics = metrics_.compute(simulation, sweep.model.cash, signals=len(unique))
    equity = tuple(simulation.equity) if keep_equity else ()
    return Run(index, params, metrics, "", equity)


def metric_of(run: Run, metric: str) -> float | None:
    """The run's value of ``metric``, None when undefined (no trades, no loss, ...)."""
    if run.metrics is None:
        return None
    value = run.metrics.get(metric)
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def ranked(runs: Sequence[Run], metric: str) -> list[Run]:
    """Best first: highest ``metric``, then grid order; runs without a value last."""

    def key(run: Run) -> tuple[bool, float, int]:
        value = metric_of(run, metric)
        return (value is None, -(value or 0.0), run.index)

    return sorted(runs, key=key)


# -- walk-forward ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One walk-forward step: the in-sample window, its best set, the out-of-sample result."""

    number: int
    in_start: int
    in_end: int
    out_start: int
    out_end: int
    params: Params | None
    in_metric: float | None
    out: Run | None


@dataclass(frozen=True)
class WalkForward:
    steps: list[Step]
    equity: list[EquityPoint]
    """The out-of-sample equity curves, chained (each step starts with the equity reached)."""
    cash: float

    @property
    def return_pct(self) -> float | None:
        return (self.equity[-1].equity / self.cash - 1) * 100 if self.equity else None

    @property
    def max_drawdown_pct(self) -> float | None:
        if not self.equity:
            return None
        return min(metrics_.drawdown([p.equity for p in self.equity])) * 100


def bar_times(feed: Feed) -> list[int]:
    """Every distinct bar start of the feed (its bars must be lists), in order."""
    stamps: set[int] = set()
    for series in feed.bars.values():
        stamps.update(bar.ts for bar in bars_in(series))
    return sorted(stamps)


def windows(stamps: Sequence[int], k: int) -> list[int]:
    """K + 2 boundaries cutting ``stamps`` into K + 1 windows of (nearly) equal bar counts."""
    if k < 1:
        raise ConfigError("--walk-forward needs at least 1 step")
    if len(stamps) < 2 * (k + 1):
        raise ConfigError(f"--walk-forward {k}: only {len(stamps)} bar times to cut")
    n = len(stamps)
    return [stamps[i * n // (k + 1)] for i in range(k + 1)] + [stamps[-1] + 1]


def bars_between(feed: Feed, start: int, end: int) -> int:
    return sum(
        1 for series in feed.bars.values() for bar in bars_in(series) if start <= bar.ts < end
    )


def walk_forward(
    feed: Feed,
    sweep: Sweep,
    k: int,
    metric: str,
    *,
    jobs: int = 1,
    tick: Tick | None = None,
) -> WalkForward:
    """Optimise on each window, trade the best set on the next one; chain the results."""
    bounds = windows(bar_times(feed), k)
    cash = sweep.model.cash
    steps: list[Step] = []
    stitched: list[EquityPoint] = []
    for number in range(1, k + 1):
        in_start, in_end, out_end = bounds[number - 1], bounds[number], bounds[number + 1]
        runs = evaluate(feed, sweep, jobs=jobs, window=Window(in_start, in_end), tick=tick)
        best = ranked(runs, metric)[0]
        value = metric_of(best, metric)
        if value is None:
            steps.append(Step(number, in_start, in_end, in_end, out_end, None, None, None))
            continue
        chosen = Sweep(
            sweep.strategy,
            [best.params],
            replace(sweep.model, cash=cash),
            sweep.analytics,
            sweep.fixed,
        )
        [out] = evaluate(
            feed, chosen, window=Window(in_start, out_end, in_end), keep_equity=True, tick=tick
        )
        if out.metrics is not None:
            cash = float(out.metrics["equity_final"])
            stitched.extend(out.equity)
        steps.append(Step(number, in_start, in_end, in_end, out_end, best.params, value, out))
    return WalkForward(steps, stitched, sweep.model.cash)


def walk_forward_work(feed: Feed, sweep: Sweep, k: int, jobs: int) -> int:
    """How many bars ``walk_forward`` replays in all (the progress bar's total)."""
    bounds = windows(bar_times(feed), k)
    passes = max(1, min(jobs, len(sweep.candidates)))
    total = 0
    for number in range(1, k + 1):
        total += passes * bars_between(feed, bounds[number - 1], bounds[number])
        total += bars_between(feed, bounds[number - 1], bounds[number + 1])
    return total


def default_jobs() -> int:
    return os.cpu_count() or 1
