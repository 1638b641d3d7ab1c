"""``flinktrade backtest`` (one strategy over history: in process or through the production Flink
job, a simulated portfolio, a report) and ``flinktrade optimize`` (parameter sweeps, walk-forward)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from flinktrade import calendars
from flinktrade.backtest.portfolio import CashMode, ExecutionModel, FillAt, Mode
from flinktrade.errors import ConfigError
from flinktrade.sessions import MarketHours

if TYPE_CHECKING:
    from flinktrade.sessions import Calendar

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)

TASK_LABELS = {
    "input": "producing bars",
    "job": "flink job",
    "engine": "backtest",
    "optimize": "optimize",
}


class _RichProgress:
    """One progress bar per stage (input onto the topic, the job's bars out)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def begin(self, task: str, total: int) -> None:
        label = TASK_LABELS.get(task, task)
        self.tasks[task] = self.progress.add_task(label, total=total, records=0)

    def update(self, task: str, completed: int, records: int) -> None:
        self.progress.update(self.tasks[task], completed=completed, records=records)


def _json_safe(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()
    }


BarsCsvOption = Annotated[Path | None, typer.Option("--bars-csv", help="A CSV file of OHLCV bars.")]
ParquetOption = Annotated[
    Path | None, typer.Option("--parquet", help="A Parquet file of OHLCV bars.")
]
SymbolOption = Annotated[
    str | None, typer.Option(help="The symbol of a file without a symbol column.")
]
AlpacaOption = Annotated[
    bool, typer.Option("--alpaca", help="Alpaca history (--symbols, --start, --end).")
]
SimulateOption = Annotated[
    str | None,
    typer.Option(
        help="A simulated market: SYMBOLS or SYMBOLSxMINUTES one-minute bars with news (20x390)."
    ),
]
SimulateSeedOption = Annotated[int, typer.Option(help="--simulate: the simulator's seed.")]
SymbolsOption = Annotated[str | None, typer.Option(help="Alpaca: comma-separated symbols.")]
StartOption = Annotated[str | None, typer.Option(help="Alpaca: first day or RFC 3339 time.")]
EndOption = Annotated[str | None, typer.Option(help="Alpaca: last day (inclusive) or time.")]
TimeframeOption = Annotated[str, typer.Option(help="Alpaca: 1Min, 5Min, 1Hour, 1Day.")]
FeedOption = Annotated[str, typer.Option(help="Alpaca: data feed, iex or sip.")]
StrategyOption = Annotated[
    str, typer.Option(help="A built-in strategy, an entry point, or pkg.module:Class.")
]
ParamOption = Annotated[
    list[str] | None, typer.Option(help="key=value for the strategy; repeatable.")
]
CashOption = Annotated[float, typer.Option(help="Starting cash.")]
CommissionOption = Annotated[
    float, typer.Option(help="Commission as a fraction of traded value (0.002 = 0.2 %).")
]
PerShareOption = Annotated[
    float, typer.Option(help="Commission per unit traded (added to --commission).")
]
SlippageOption = Annotated[
    float, typer.Option(help="Fills this many basis points worse than the price.")
]
FillOption = Annotated[
    str, typer.Option(help="next_open (next bar's open) or close (the signal bar's close).")
]
ModeOption = Annotated[
    str, typer.Option(help="long_only, or reverse (close and open the opposite side).")
]
CashModeOption = Annotated[
    str,
    typer.Option(
        help="sleeves (equal cash per symbol, each trading alone) or shared (one cash pool)."
    ),
]
PositionSizeOption = Annotated[
    float | None,
    typer.Option(
        help="Shared cash: the fraction of equity each position is sized at (default: "
        "1 / number of symbols)."
    ),
]
CommissionMinOption = Annotated[
    float, typer.Option(help="The least commission an order with a fill pays.")
]
VolumeShareOption = Annotated[
    float | None,
    typer.Option(
        help="Orders with a spec: at most this fraction of a bar's volume fills per bar "
        "(default: everything fills)."
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the summary as one JSON object (last line).")
]

_INPUT_OPTIONS: dict[str, tuple[Any, Any]] = {
    "bars_csv": (BarsCsvOption, None),
    "parquet": (ParquetOption, None),
    "symbol": (SymbolOption, None),
    "alpaca": (AlpacaOption, False),
    "simulate": (SimulateOption, None),
    "simulate_seed": (SimulateSeedOption, 11),
    "symbols": (SymbolsOption, None),
    "start": (StartOption, None),
    "end": (EndOption, None),
    "timeframe": (TimeframeOption, "1Day"),
    "feed": (FeedOption, "iex"),
}
"""The input options of ``backtest`` and ``optimize``: name -> (annotation, default)."""
_EXECUTION_OPTIONS: dict[str, tuple[Any, Any]] = {
    "cash": (CashOption, 10_000.0),
    "commission": (CommissionOption, 0.0),
    "commission_per_share": (PerShareOption, 0.0),
    "slippage_bps": (SlippageOption, 0.0),
    "fill": (FillOption, FillAt.NEXT_OPEN.value),
    "mode": (ModeOption, Mode.LONG_ONLY.value),
    "cash_mode": (CashModeOption, CashMode.SLEEVES.value),
    "position_size": (PositionSizeOption, None),
    "commission_min": (CommissionMinOption, 0.0),
    "volume_share": (VolumeShareOption, None),
}
"""The execution options of ``backtest`` and ``optimize``: name -> (annotation, default)."""


@dataclass(frozen=True)
class _Inputs:
    """The input options shared by ``backtest`` and ``optimize`` (exactly one input is given)."""

    bars_csv: Path | None
    parquet: Path | None
    symbol: str | None
    alpaca: bool
    simulate: str | None
    simulate_seed: int
    symbols: str | None
    start: str | None
    end: str | None
    timeframe: str
    feed: str
    from_topics: bool = False
    topics_input: bool = True
    """Whether the command offers ``--from-topics`` (``backtest`` does, ``optimize`` does not)."""

    def chosen(self) -> str:
        given = [
            name
            for name, value in (
                ("--bars-csv", self.bars_csv),
                ("--parquet", self.parquet),
                ("--alpaca", self.alpaca or None),
                ("--simulate", self.simulate),
                ("--from-topics", self.from_topics or None),
            )
            if value is not None
        ]
        if len(given) != 1:
            options = "--bars-csv, --parquet, --alpaca, --simulate or --from-topics"
            if not self.topics_input:
                options = "--bars-csv, --parquet, --alpaca or --simulate"
            raise ConfigError(
                f"give exactly one input: {options}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if not self.alpaca and (self.symbols or self.start or self.end):
            raise ConfigError("--symbols/--start/--end go with --alpaca")
        return given[0]

    def file(self) -> Path | None:
        if self.bars_csv is None and self.parquet is None:
            return None
        path = self.bars_csv if self.bars_csv is not None else self.parquet
        assert path is not None
        if self.bars_csv is not None and path.suffix.lower() not in (".csv", ".txt", ".tsv"):
            raise ConfigError(f"--bars-csv {path}: expected a .csv file")
        if self.parquet is not None and path.suffix.lower() not in (".parquet", ".pq"):
            raise ConfigError(f"--parquet {path}: expected a .parquet file")
        return path

    def history(self) -> Any:
        from flinktrade.cli.options import parse_symbols, parse_when

        if not (self.symbols and self.start and self.end):
            raise ConfigError("--alpaca needs --symbols, --start and --end")
        symbols = parse_symbols(self.symbols)
        start = parse_when(self.start, "--start")
        end = parse_when(self.end, "--end", end_of_day=True)
        from flinktrade.backtest.loading import AlpacaRange  # pandas: after the checks

        return AlpacaRange(
            symbols=symbols, start=start, end=end, timeframe=self.timeframe, feed=self.feed
        )

    def simulated(self) -> Any:
        """The ``--simulate`` market (``backtest.simulated.SimulatedMarket``), None without it."""
        from flinktrade.backtest.simulated import SimulatedMarket

        if self.simulate is None:
            return None
        return SimulatedMarket.parse(self.simulate, self.simulate_seed)

    def describe(self) -> str:
        path = self.file()
        if path is not None:
            return str(path)
        market = self.simulated()
        if market is not None:
            return str(market.describe())
        if self.alpaca:
            symbols = (self.symbols or "").replace(" ", "")
            return f"alpaca {symbols} {self.start}..{self.end} {self.timeframe}"
        return "market topics"

    def load(self, settings: Any, progress: Any) -> tuple[list[Any], list[Any]]:
        """The bars and the news (only ``--simulate`` has news), in memory."""
        from flinktrade.backtest.loading import fetch_alpaca, load_file

        path = self.file()
        if path is not None:
            return load_file(path, symbol=self.symbol).bars, []
        market = self.simulated()
        if market is not None:
            bars, news = market.build()
            return bars, news
        return fetch_alpaca(settings, self.history(), progress).bars, []


@dataclass(frozen=True)
class _Execution:
    """The execution options shared by ``backtest`` and ``optimize``."""

    cash: float
    commission: float
    commission_per_share: float
    slippage_bps: float
    fill: str
    mode: str
    cash_mode: str = CashMode.SLEEVES.value
    position_size: float | None = None
    commission_min: float = 0.0
    volume_share: float | None = None

    def model(self) -> ExecutionModel:
        return ExecutionModel(
            cash=self.cash,
            commission=self.commission,
            commission_per_share=self.commission_per_share,
            slippage_bps=self.slippage_bps,
            fill=_choice(FillAt, self.fill, "--fill"),
            mode=_choice(Mode, self.mode, "--mode"),
            cash_mode=_choice(CashMode, self.cash_mode, "--cash-mode"),
            position_size=self.position_size,
            commission_min=self.commission_min,
            volume_share=self.volume_share,
        )

    def described(self, model: ExecutionModel) -> dict[str, Any]:
        """The run settings the reports list (``model``: ``self.model()``)."""
        return {
            "cash": self.cash,
            "commission": self.commission,
            "commission_per_share": self.commission_per_share,
            "slippage_bps": self.slippage_bps,
            "fill": model.fill.value,
            "mode": model.mode.value,
            "cash_mode": model.cash_mode.value,
            **({"position_size": model.position_size} if model.position_size is not None else {}),
            **({"commission_min": model.commission_min} if model.commission_min else {}),
            **({"volume_share": model.volume_share} if model.volume_share is not None else {}),
        }


def _with_shared_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with the input and execution options added to its own, defined once here.

    ``command`` takes ``inputs: _Inputs`` and ``execution: _Execution`` instead of the options;
    Typer sees (signature and annotations) the input options, the command's own options, then
    the execution options, all keyword-only."""
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(command, eval_str=True).parameters.values()
        if p.name not in ("inputs", "execution")
    ]

    def shared(options: dict[str, tuple[Any, Any]]) -> list[inspect.Parameter]:
        return [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind
            )
            for name, (kind, default) in options.items()
        ]

    parameters = [*shared(_INPUT_OPTIONS), *own, *shared(_EXECUTION_OPTIONS)]

    @functools.wraps(command)
    def wrapper(**options: Any) -> None:
        inputs = _Inputs(**{name: options.pop(name) for name in _INPUT_OPTIONS})
        execution = _Execution(**{name: options.pop(name) for name in _EXECUTION_OPTIONS})
        command(inputs=inputs, execution=execution, **options)

    wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


def _progress_columns() -> tuple[Any, ...]:
    return (
        TextColumn("{task.description:<16}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[records]:>10,} bars"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


@_with_shared_options
def backtest(
    inputs: _Inputs,
    execution: _Execution,
    from_topics: Annotated[
        bool,
        typer.Option(
            "--from-topics",
            help="What is already in the market topics (trades, bars); --engine flink only.",
        ),
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            help="inprocess (the job's per-bar core in this process; default for files and "
            "Alpaca) or flink (the production job over Kafka topics)."
        ),
    ] = "",
    strategy: StrategyOption = "sma_cross",
    param: ParamOption = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for report.html, equity.png and the CSVs.")
    ] = Path("backtest-report"),
    as_json: JsonOption = False,
    parallelism: Annotated[int, typer.Option(min=1, help="Flink parallelism.")] = 1,
    jobs: Annotated[
        int | None,
        typer.Option(
            min=0,
            show_default=False,
            help="Worker processes of the in-process engine, by symbol (default, and 0: one per "
            "CPU core; 1: this process alone); the same result whatever the number.",
        ),
    ] = None,
    keep_topics: Annotated[
        bool, typer.Option("--keep-topics", help="Do not delete the run's topics (debugging).")
    ] = False,
    features: Annotated[
        bool,
        typer.Option(
            "--features/--no-features",
            help="Keep every bar with its indicators for features.csv and the price charts' "
            "SMA lines; --no-features writes neither, for long runs (a few hundred bytes a "
            "bar instead of a few kilobytes).",
        ),
    ] = True,
    market_hours: Annotated[
        str,
        typer.Option(
            "--market-hours",
            help="The bars the strategy sees, by the session each starts in (US equity calendar, "
            "ET): all, regular (09:30-16:00, to an early close) or extended (04:00-20:00). "
            "Daily bars are always kept.",
        ),
    ] = "all",
) -> None:
    """Backtest a strategy: the job's per-bar core in process, or the production Flink job."""
    from flinktrade.cli.options import parse_params
    from flinktrade.config import load_settings
    from flinktrade.pipeline.analytics import StrategySpec, build_all

    # every argument is checked before the heavy imports (pandas, matplotlib: ~2 s)
    inputs = dataclasses.replace(inputs, from_topics=from_topics)
    inputs.chosen()
    chosen_engine = _engine(engine, from_topics)
    hours: MarketHours = _choice(MarketHours, market_hours, "--market-hours")
    if jobs not in (None, 1) and chosen_engine == "flink":
        raise ConfigError(
            "--jobs goes with --engine inprocess (the Flink engine has --parallelism)"
        )
    if hours != MarketHours.ALL and chosen_engine == "flink" and (inputs.alpaca or from_topics):
        raise ConfigError(
            "--market-hours goes with files, --simulate or --engine inprocess "
            "(the Flink engine streams Alpaca history and topics unfiltered)"
        )
    params = parse_params(param or [])
    build_all([StrategySpec(strategy, params)])  # a bad strategy fails before any work
    chosen_model = execution.model()
    source = inputs.describe()
    path = inputs.file()
    history = inputs.history() if inputs.alpaca else None
    settings = load_settings()

    from flinktrade.backtest.engine import BacktestRequest, MarketTopics, run_backtest
    from flinktrade.backtest.inprocess import run_inprocess
    from flinktrade.backtest.loading import load_file, produce_alpaca, produce_market
    from flinktrade.backtest.report import format_metric, write_all

    in_effect = calendars.in_effect(settings.state_dir)  # a refreshed one over the bundled one
    calendar = in_effect.calendar
    # a session-filtered run keeps its orders to their sessions too (extended_hours or not)
    model = dataclasses.replace(
        chosen_model, follow_sessions=hours != MarketHours.ALL, calendar=calendar
    )
    request = BacktestRequest(
        strategies=(StrategySpec(strategy, params),),
        model=model,
        analytics=settings.analytics,
        parallelism=parallelism,
        keep_topics=keep_topics,
    )
    with Progress(*_progress_columns(), console=console, transient=False) as bar:
        progress = _RichProgress(bar)
        if chosen_engine == "inprocess":
            bars, news = inputs.load(settings, progress)
            bars = _in_hours(bars, hours, calendar)
            workers = jobs or os.cpu_count() or 1
            result = run_inprocess(
                request, bars, news, keep_bars=features, progress=progress, jobs=workers
            )
        else:
            flink_inputs: dict[str, Any] = {}
            if path is not None:
                loaded = load_file(path, symbol=inputs.symbol).bars
                flink_inputs["bars"] = _in_hours(loaded, hours, calendar)
            elif inputs.simulate is not None:
                bars, news = inputs.load(settings, progress)
                bars = _in_hours(bars, hours, calendar)
                flink_inputs["feed"] = lambda topics: produce_market(
                    settings.kafka, topics, bars, news, progress
                )
            elif history is not None:
                flink_inputs["feed"] = lambda topics: produce_alpaca(
                    settings, history, topics.bars, topics.deadletter, progress
                )
            else:
                market = settings.ingest.topics
                flink_inputs["market"] = MarketTopics(
                    trades=market.trades, news=market.news, bars=market.bars
                )
            _start_local_broker(settings)
            result = run_backtest(settings.kafka, request, progress=progress, **flink_inputs)
    run_settings = {
        "input": source,
        "engine": chosen_engine,
        "strategy": strategy,
        "params": json.dumps(params, sort_keys=True),
        **execution.described(model),
        **({"market_hours": hours.value} if hours != MarketHours.ALL else {}),
        "calendar": _calendar_line(in_effect),
        "run_id": result.run_id,
    }
    files = write_all(
        out_dir,
        result.simulation,
        result.bars if features else {},
        result.signals,
        result.metrics,
        run_settings,
        features=features,
    )
    table = Table("metric", "value", title=f"backtest of {strategy} on {source}")
    for key, value in result.metrics.items():
        table.add_row(key, format_metric(key, value))
    out.print(table)
    console.print(f"report: {files['report.html']}")
    if as_json:
        summary = {**_json_safe(result.metrics), "calendar": run_settings["calendar"]}
        typer.echo(json.dumps(summary, sort_keys=False))


def _calendar_line(found: calendars.InEffect) -> str:
    """The market calendar the run judged sessions on, for its report (``calendars.summary``;
    a refreshed file that could not be used is named with why)."""
    unused = f"; {found.path} not used: {found.problem}" if found.problem else ""
    return calendars.summary(found) + unused


def _in_hours(bars: list[Any], hours: MarketHours, calendar: Calendar) -> list[Any]:
    """The bars of the ``--market-hours`` sessions; none left (of some) is a readable error."""
    from flinktrade.backtest.loading import in_market_hours

    kept = in_market_hours(bars, hours, calendar)
    if bars and not kept:
        raise ConfigError(f"--market-hours {hours.value}: none of the {len(bars)} bars is in it")
    return kept


def _engine(engine: str, from_topics: bool) -> str:
    chosen = engine.strip().lower() or ("flink" if from_topics else "inprocess")
    if chosen not in ("inprocess", "flink"):
        raise ConfigError(f"--engine must be inprocess or flink, not {engine!r}")
    if from_topics and chosen != "flink":
        raise ConfigError("--from-topics needs --engine flink (it reads Kafka topics)")
    return chosen


@_with_shared_options
def optimize(
    inputs: _Inputs,
    execution: _Execution,
    grid: Annotated[
        list[str],
        typer.Option(help="name=start:stop:step (stop included) or name=a,b,c; repeatable."),
    ],
    strategy: StrategyOption = "sma_cross",
    param: Annotated[
        list[str] | None, typer.Option(help="key=value fixed for every set; repeatable.")
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(help='A constraint on the parameters, e.g. "fast < slow" (and/or/not).'),
    ] = None,
    random_sets: Annotated[
        int | None,
        typer.Option("--random", min=1, help="Evaluate this many sets drawn from the grid."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --random.")] = 0,
    metric: Annotated[
        str,
        typer.Option(help="What to maximise: sharpe, return_pct, sortino, calmar, profit_factor."),
    ] = "sharpe",
    jobs: Annotated[int, typer.Option(min=0, help="Worker processes (0: one per CPU core).")] = 0,
    walk_forward: Annotated[
        int,
        typer.Option(
            "--walk-forward",
            min=0,
            help="K: cut the bars into K+1 windows; optimise on each, trade on the next.",
        ),
    ] = 0,
    heatmap: Annotated[
        str | None, typer.Option(help="x,y: the two parameters of the heatmap.")
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for optimize.html and results.csv.")
    ] = Path("optimize-report"),
    as_json: JsonOption = False,
) -> None:
    """Sweep a strategy's parameters (grid or random) and rank them; optionally walk forward."""
    from flinktrade.backtest import optimize as opt
    from flinktrade.backtest.expr import Expression
    from flinktrade.cli.options import parse_params
    from flinktrade.config import load_settings

    # every argument is checked before the heavy imports (pandas, matplotlib: ~2 s)
    inputs = dataclasses.replace(inputs, topics_input=False)
    inputs.chosen()
    if metric not in opt.METRICS:
        raise ConfigError(f"--metric must be one of {', '.join(opt.METRICS)}, not {metric!r}")
    values = opt.parse_grid(grid)
    fixed = parse_params(param or [])
    clash = sorted(set(fixed) & set(values))
    if clash:
        raise ConfigError(f"{', '.join(clash)}: both in --param and in --grid")
    constraint = Expression.parse(where, values) if where else None
    sets = opt.candidates(values, constraint, random_sets, seed)
    axes = _heatmap_axes(heatmap, values)
    chosen_model = execution.model()
    source = inputs.describe()
    if inputs.alpaca:
        inputs.history()
    settings = load_settings()

    from flinktrade.backtest.inprocess import Feed
    from flinktrade.backtest.report import format_metric, write_optimize

    in_effect = calendars.in_effect(settings.state_dir)  # a refreshed one over the bundled one
    model = dataclasses.replace(chosen_model, calendar=in_effect.calendar)
    sweep = opt.Sweep(
        strategy, sets, model, settings.analytics.model_copy(update={"alerts": False}), fixed
    )
    workers = jobs or opt.default_jobs()
    with Progress(*_progress_columns(), console=console, transient=False) as bar:
        progress = _RichProgress(bar)
        data = Feed.of(*inputs.load(settings, progress))
        passes = max(1, min(workers, len(sets)))
        total = passes * (data.size() or 0)
        if walk_forward:
            total += opt.walk_forward_work(data, sweep, walk_forward, workers)
        progress.begin("optimize", max(1, total))
        done = 0

        def tick(bars: int) -> None:
            nonlocal done
            done += bars
            progress.update("optimize", min(done, total), done)

        runs = opt.ranked(opt.evaluate(data, sweep, jobs=workers, tick=tick), metric)
        if all(run.metrics is None for run in runs):
            raise ConfigError(f"every parameter set failed, e.g. {runs[0].error}")
        walk = (
            opt.walk_forward(data, sweep, walk_forward, metric, jobs=workers, tick=tick)
            if walk_forward
            else None
        )
    run_settings = {
        "input": source,
        "strategy": strategy,
        "fixed params": json.dumps(fixed, sort_keys=True),
        "grid": " ".join(grid),
        "where": where or "",
        "random": f"{random_sets} (seed {seed})" if random_sets else "",
        "metric": metric,
        **execution.described(model),
        "walk_forward": walk_forward or "",
        "parameter sets": len(runs),
        "calendar": _calendar_line(in_effect),
    }
    files = write_optimize(out_dir, runs, metric, values, axes, run_settings, walk)
    best = runs[0]
    table = Table("rank", *values, metric, "return_pct", "trades", title=f"optimize {strategy}")
    for rank, run in enumerate(runs[:10], start=1):
        table.add_row(
            str(rank),
            *(str(run.params[name]) for name in values),
            format_metric(metric, opt.metric_of(run, metric)),
            format_metric("return_pct", (run.metrics or {}).get("return_pct")),
            format_metric("trades", (run.metrics or {}).get("trades")),
        )
    out.print(table)
    console.print(f"report: {files['optimize.html']}")
    if as_json:
        summary: dict[str, Any] = {
            "metric": metric,
            "best_params": best.params,
            "best_metric": opt.metric_of(best, metric),
            "runs": len(runs),
            "valid_runs": sum(1 for run in runs if run.metrics is not None),
            "best": _json_safe(best.metrics or {}),
            "calendar": run_settings["calendar"],
        }
        if walk is not None:
            summary["walk_forward"] = {
                "steps": [
                    {
                        "params": step.params,
                        "in_metric": step.in_metric,
                        "out_return_pct": (step.out.metrics or {}).get("return_pct")
                        if step.out is not None
                        else None,
                    }
                    for step in walk.steps
                ],
                "return_pct": walk.return_pct,
                "max_drawdown_pct": walk.max_drawdown_pct,
            }
        typer.echo(json.dumps(summary))


def _heatmap_axes(heatmap: str | None, values: dict[str, list[Any]]) -> tuple[str, str] | None:
    if heatmap is not None:
        names = [n.strip() for n in heatmap.split(",")]
        if len(names) != 2 or any(n not in values for n in names) or names[0] == names[1]:
            raise ConfigError(f"--heatmap {heatmap!r}: two different --grid names, as x,y")
        return names[0], names[1]
    varied = [name for name, options in values.items() if len(options) > 1]
    return (varied[0], varied[1]) if len(varied) >= 2 else None


def _choice(
    kind: type[FillAt] | type[Mode] | type[CashMode] | type[MarketHours], value: str, option: str
) -> Any:
    try:
        return kind(value.strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ConfigError(f"{option} must be one of {allowed}, not {value!r}") from None


def _start_local_broker(settings: Any) -> None:
    """Start the embedded broker when the configured bootstrap servers name it (as ``demo``)."""
    from flinktrade.cli.options import uses_local_broker

    if uses_local_broker(settings):
        from flinktrade.infra.kafka import LocalKafka

        LocalKafka(settings.broker, settings.state_dir).up()


def register(app: typer.Typer) -> None:
    """Add ``flinktrade backtest`` and ``flinktrade optimize`` to the main command."""
    app.command("backtest")(backtest)
    app.command("optimize")(optimize)
