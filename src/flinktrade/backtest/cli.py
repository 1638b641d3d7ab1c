"""``flinktrade backtest``: the production job over history, a simulated portfolio, a report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from flinktrade.backtest.portfolio import ExecutionModel, FillAt, Mode
from flinktrade.errors import ConfigError

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)

TASK_LABELS = {"input": "producing bars", "job": "flink job"}


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


def backtest(
    bars_csv: Annotated[
        Path | None, typer.Option("--bars-csv", help="A CSV file of OHLCV bars.")
    ] = None,
    parquet: Annotated[
        Path | None, typer.Option("--parquet", help="A Parquet file of OHLCV bars.")
    ] = None,
    symbol: Annotated[
        str | None, typer.Option(help="The symbol of a file without a symbol column.")
    ] = None,
    alpaca: Annotated[
        bool, typer.Option("--alpaca", help="Alpaca history (--symbols, --start, --end).")
    ] = False,
    symbols: Annotated[str | None, typer.Option(help="Alpaca: comma-separated symbols.")] = None,
    start: Annotated[str | None, typer.Option(help="Alpaca: first day or RFC 3339 time.")] = None,
    end: Annotated[str | None, typer.Option(help="Alpaca: last day (inclusive) or time.")] = None,
    timeframe: Annotated[str, typer.Option(help="Alpaca: 1Min, 5Min, 1Hour, 1Day.")] = "1Day",
    feed: Annotated[str, typer.Option(help="Alpaca: data feed, iex or sip.")] = "iex",
    from_topics: Annotated[
        bool,
        typer.Option("--from-topics", help="What is already in the market topics (trades, bars)."),
    ] = False,
    strategy: Annotated[
        str, typer.Option(help="A built-in strategy, an entry point, or pkg.module:Class.")
    ] = "sma_cross",
    param: Annotated[
        list[str] | None, typer.Option(help="key=value for the strategy; repeatable.")
    ] = None,
    cash: Annotated[float, typer.Option(help="Starting cash.")] = 10_000.0,
    commission: Annotated[
        float, typer.Option(help="Commission as a fraction of traded value (0.002 = 0.2 %).")
    ] = 0.0,
    commission_per_share: Annotated[
        float, typer.Option(help="Commission per unit traded (added to --commission).")
    ] = 0.0,
    slippage_bps: Annotated[
        float, typer.Option(help="Fills this many basis points worse than the price.")
    ] = 0.0,
    fill: Annotated[
        str, typer.Option(help="next_open (next bar's open) or close (the signal bar's close).")
    ] = FillAt.NEXT_OPEN.value,
    mode: Annotated[
        str, typer.Option(help="long_only, or reverse (close and open the opposite side).")
    ] = Mode.LONG_ONLY.value,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for report.html, equity.png and the CSVs.")
    ] = Path("backtest-report"),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the metrics as one JSON object (last line).")
    ] = False,
    parallelism: Annotated[int, typer.Option(min=1, help="Flink parallelism.")] = 1,
    keep_topics: Annotated[
        bool, typer.Option("--keep-topics", help="Do not delete the run's topics (debugging).")
    ] = False,
) -> None:
    """Backtest a strategy by running the production Flink job over history."""
    from flinktrade.backtest.engine import BacktestRequest, MarketTopics, run_backtest
    from flinktrade.backtest.loading import AlpacaRange, load_file, produce_alpaca
    from flinktrade.backtest.report import format_metric, write_all
    from flinktrade.cli import parse_params
    from flinktrade.config import load_settings
    from flinktrade.pipeline.analytics import StrategySpec, build_all

    chosen = [
        name
        for name, given in (
            ("--bars-csv", bars_csv),
            ("--parquet", parquet),
            ("--alpaca", alpaca or None),
            ("--from-topics", from_topics or None),
        )
        if given is not None
    ]
    if len(chosen) != 1:
        raise ConfigError(
            "give exactly one input: --bars-csv, --parquet, --alpaca or --from-topics"
            + (f" (got {', '.join(chosen)})" if chosen else "")
        )
    if not alpaca and (symbols or start or end):
        raise ConfigError("--symbols/--start/--end go with --alpaca")
    model = ExecutionModel(
        cash=cash,
        commission=commission,
        commission_per_share=commission_per_share,
        slippage_bps=slippage_bps,
        fill=_choice(FillAt, fill, "--fill"),
        mode=_choice(Mode, mode, "--mode"),
    )
    params = parse_params(param or [])
    build_all([StrategySpec(strategy, params)])  # a bad strategy fails before any work
    settings = load_settings()
    request = BacktestRequest(
        strategies=(StrategySpec(strategy, params),),
        model=model,
        analytics=settings.analytics,
        parallelism=parallelism,
        keep_topics=keep_topics,
    )
    inputs: dict[str, Any] = {}
    source = chosen[0]
    if bars_csv is not None or parquet is not None:
        path = bars_csv if bars_csv is not None else parquet
        assert path is not None
        wanted = ".csv" if bars_csv is not None else ".parquet"
        if bars_csv is not None and path.suffix.lower() not in (".csv", ".txt", ".tsv"):
            raise ConfigError(f"--bars-csv {path}: expected a {wanted} file")
        if parquet is not None and path.suffix.lower() not in (".parquet", ".pq"):
            raise ConfigError(f"--parquet {path}: expected a {wanted} file")
        inputs["bars"] = load_file(path, symbol=symbol).bars
        source = str(path)
    elif alpaca:
        from flinktrade.ingest.cli import parse_symbols, parse_when

        if not (symbols and start and end):
            raise ConfigError("--alpaca needs --symbols, --start and --end")
        history = AlpacaRange(
            symbols=parse_symbols(symbols),
            start=parse_when(start, "--start"),
            end=parse_when(end, "--end", end_of_day=True),
            timeframe=timeframe,
            feed=feed,
        )
        inputs["feed"] = None  # set below, once the progress bar exists
        source = f"alpaca {','.join(history.symbols)} {start}..{end} {timeframe}"
    else:
        market = settings.ingest.topics
        inputs["market"] = MarketTopics(trades=market.trades, news=market.news, bars=market.bars)
        source = "market topics"

    _start_local_broker(settings)
    servers = settings.kafka.bootstrap_servers
    columns = (
        TextColumn("{task.description:<16}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[records]:>10,} bars"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        progress = _RichProgress(bar)
        if alpaca:
            inputs["feed"] = lambda topics: produce_alpaca(
                settings, history, topics.bars, topics.deadletter, progress
            )
        result = run_backtest(servers, request, progress=progress, **inputs)
    run_settings = {
        "input": source,
        "strategy": strategy,
        "params": json.dumps(params, sort_keys=True),
        "cash": cash,
        "commission": commission,
        "commission_per_share": commission_per_share,
        "slippage_bps": slippage_bps,
        "fill": model.fill.value,
        "mode": model.mode.value,
        "run_id": result.run_id,
    }
    files = write_all(
        out_dir, result.simulation, result.bars, result.signals, result.metrics, run_settings
    )
    table = Table("metric", "value", title=f"backtest of {strategy} on {source}")
    for key, value in result.metrics.items():
        table.add_row(key, format_metric(key, value))
    out.print(table)
    console.print(f"report: {files['report.html']}")
    if as_json:
        typer.echo(json.dumps(_json_safe(result.metrics), sort_keys=False))


def _choice(kind: type[FillAt] | type[Mode], value: str, option: str) -> Any:
    try:
        return kind(value.strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ConfigError(f"{option} must be one of {allowed}, not {value!r}") from None


def _start_local_broker(settings: Any) -> None:
    """Start the embedded broker when the configured bootstrap servers name it (as ``demo``)."""
    from flinktrade.cli import uses_local_broker

    if uses_local_broker(settings):
        from flinktrade.infra.kafka import LocalKafka

        LocalKafka(settings.broker, settings.state_dir).up()


def register(app: typer.Typer) -> None:
    """Add ``flinktrade backtest`` to the main command."""
    app.command("backtest")(backtest)
