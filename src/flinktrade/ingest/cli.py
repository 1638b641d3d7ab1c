"""``flinktrade ingest``: Alpaca history, Alpaca live streams, and file replay into the topics;
``flinktrade simulate``: the market simulator into the same topics.

Each command ends with one JSON line of produced counts on stdout; progress and logs go to
stderr. Bad arguments and missing credentials raise ``ConfigError`` (one ``error:`` line, exit 2).
Tuning comes from the ``ingest`` section of the settings (``[ingest]`` in the TOML file or
``FLINKTRADE_INGEST__*``). Registered by the root CLI (``register(app)``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from flinktrade import bus, topics
from flinktrade.cli.options import parse_symbols, parse_when
from flinktrade.cli.signals import stop_on_signals
from flinktrade.config import load_settings
from flinktrade.errors import ConfigError
from flinktrade.ingest.settings import IngestSettings

if TYPE_CHECKING:
    from flinktrade.ingest.alpaca import RetryPolicy

console = Console(stderr=True, highlight=False)

app = typer.Typer(
    help="Market data into the topics: Alpaca history, Alpaca live streams, file replay.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def register(root: typer.Typer) -> None:
    """Add ``flinktrade ingest`` and ``flinktrade simulate`` to the main CLI."""
    root.add_typer(app, name="ingest")
    root.command("simulate")(simulate)


def _feed(feed: str, allowed: tuple[str, ...]) -> str:
    value = feed.strip().lower()
    if value not in allowed:
        raise ConfigError(f"--feed: {feed!r} is not one of {', '.join(allowed)}")
    return value


class _RichProgress:
    """A progress bar per symbol (completion = share of the time range covered)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def begin(self, task: str, total: int) -> None:
        self.tasks[task] = self.progress.add_task(task, total=total, records=0)

    def update(self, task: str, completed: int, records: int) -> None:
        self.progress.update(self.tasks[task], completed=completed, records=records)


def _echo_counts(counts: dict[str, int]) -> None:
    typer.echo(json.dumps(counts))


@app.command("history")
def history(
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols, e.g. AAPL,MSFT.")],
    start: Annotated[str, typer.Option(help="First day (2024-01-02) or RFC 3339 time.")],
    end: Annotated[
        str | None,
        typer.Option(help="Last day, inclusive (2024-01-05), or RFC 3339 time; default now."),
    ] = None,
    timeframe: Annotated[str, typer.Option(help="Bar length: 1Min, 5Min, 1Hour, 1Day.")] = "1Min",
    bars: Annotated[
        bool, typer.Option("--bars", help="Bars (the default if nothing is chosen).")
    ] = False,
    trades: Annotated[bool, typer.Option("--trades", help="Trades.")] = False,
    news: Annotated[bool, typer.Option("--news", help="News.")] = False,
    feed: Annotated[str, typer.Option(help="Data feed: iex or sip.")] = "iex",
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue after the last record already in the topics.")
    ] = False,
) -> None:
    """Page through Alpaca's historical bars/trades/news into market.bars/trades/news."""
    from flinktrade.ingest.alpaca import Credentials, MarketDataRest, parse_timeframe, rest_feed
    from flinktrade.ingest.history import HistoryRequest, Sink, run_history

    names = parse_symbols(symbols)
    first = parse_when(start, "--start")
    last = parse_when(end, "--end", end_of_day=True) if end else datetime.now(UTC)
    if first >= last:
        raise ConfigError("--start must be before --end")
    frame = parse_timeframe(timeframe)
    chosen_feed = rest_feed(_feed(feed, ("iex", "sip")))
    settings = load_settings()
    ingest = settings.ingest
    credentials = Credentials.from_settings(settings)
    request = HistoryRequest(
        symbols=names,
        start=first,
        end=last,
        timeframe=frame,
        bars=bars or not (trades or news),
        trades=trades,
        news=news,
        feed=chosen_feed,
        resume=resume,
    )
    rest = MarketDataRest(credentials, settings.alpaca_api_data_url, _policy(ingest))
    bus.ensure_topics(settings.kafka, ingest.topics.all())
    sink = Sink(bus.EventProducer(settings.kafka), ingest.topics)
    columns = (
        TextColumn("{task.description:<16}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[records]:>8,} records"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        counts = run_history(request, rest, sink, _RichProgress(progress))
    _echo_counts(counts)


@app.command("live")
def live(
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols, e.g. AAPL,MSFT.")],
    news: Annotated[bool, typer.Option("--news", help="Also stream news.")] = False,
    feed: Annotated[
        str, typer.Option(help="Stream feed: iex, sip or test (symbol FAKEPACA).")
    ] = "iex",
) -> None:
    """Stream trades, quotes, minute bars and trading statuses (and news) until Ctrl-C."""
    from flinktrade.ingest.alpaca import FEEDS, Credentials, MarketDataRest
    from flinktrade.ingest.history import Sink
    from flinktrade.ingest.live import LiveIngest, LiveRequest

    names = parse_symbols(symbols)
    chosen = _feed(feed, FEEDS)
    settings = load_settings()
    ingest = settings.ingest
    credentials = Credentials.from_settings(settings)
    request = LiveRequest(
        symbols=names,
        feed=chosen,
        news=news,
        stream_url=settings.alpaca_api_stream_url,
        news_stream_url=settings.alpaca_api_news_stream_url,
        backoff=(ingest.reconnect_min_s, ingest.reconnect_max_s),
        silence_s=ingest.silence_s,
    )
    rest = MarketDataRest(credentials, settings.alpaca_api_data_url, _policy(ingest))
    bus.ensure_topics(settings.kafka, ingest.topics.all())
    sink = Sink(bus.EventProducer(settings.kafka), ingest.topics)
    with stop_on_signals() as stop:
        console.print(
            f"[bold]flinktrade ingest live[/]: {', '.join(names)} on {chosen}; Ctrl-C to stop"
        )
        counts = LiveIngest(credentials, request, sink, rest).run(stop)
    _echo_counts(counts)


@app.command("replay")
def replay(
    file: Annotated[
        Path, typer.Option("--file", help="A .csv or .parquet file of trades or bars.")
    ],
    speed: Annotated[
        str, typer.Option(help="Pace: N times real time (e.g. 10), or max for no pauses.")
    ] = "max",
    symbol: Annotated[
        str | None, typer.Option(help="The symbol, for a file without a symbol column.")
    ] = None,
) -> None:
    """Replay a file of trades or bars into market.trades / market.bars."""
    from flinktrade.ingest.history import Sink
    from flinktrade.ingest.replay import read_file, run_replay

    pace: float | None = None
    if speed.strip().lower() != "max":
        try:
            pace = float(speed)
        except ValueError:
            raise ConfigError(f"--speed: {speed!r} is not a number or max") from None
        if not pace > 0:
            raise ConfigError("--speed must be greater than 0")
    name = parse_symbols(symbol)[0] if symbol else None
    data = read_file(file, name)
    settings = load_settings()
    ingest = settings.ingest
    bus.ensure_topics(settings.kafka, ingest.topics.all())
    sink = Sink(bus.EventProducer(settings.kafka), ingest.topics)
    with stop_on_signals() as stop:
        console.print(
            f"replaying {len(data.records):,} {data.kind} from {file.name} "
            f"({'as fast as possible' if pace is None else f'{pace:g}x real time'})"
        )
        counts = run_replay(data, sink, pace, stop)
    _echo_counts(counts)


def _policy(ingest: IngestSettings) -> RetryPolicy:
    from flinktrade.ingest.alpaca import RetryPolicy

    return RetryPolicy(
        timeout_s=ingest.request_timeout_s,
        max_attempts=ingest.max_attempts,
        max_wait_s=ingest.max_rate_limit_wait_s,
    )


def simulate(
    count: Annotated[
        int | None, typer.Option(min=1, help="Produce this many trades as fast as possible.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="Run at the configured pace for N seconds.")
    ] = None,
) -> None:
    """Run the market simulator into market.trades / market.news."""
    from flinktrade.ingest.simulator import MarketSimulator, RawTrade, SimulatorFeed

    settings = load_settings()
    if count is None and duration is None:
        raise ConfigError("give --count N (as fast as possible) or --duration SECONDS (paced)")
    bus.ensure_topics(settings.kafka, [t.name for t in topics.ALL])
    sim = settings.simulator
    if count is not None:
        simulator = MarketSimulator(sim.symbols, sim.seed, news=sim.news)
        producer = bus.EventProducer(settings.kafka)
        produced = news = 0
        for item in simulator:
            if isinstance(item, RawTrade):
                producer.send_raw(
                    topics.TRADES.name, item.to_json(item.ts), item.symbol.encode(), item.ts
                )
                produced += 1
                if produced == count:
                    break
            else:
                producer.send(item)
                news += 1
        producer.flush()
        typer.echo(json.dumps({"trades": produced, "news": news}))
        return
    simulator = MarketSimulator(
        sim.symbols, sim.seed, gap_ms=1000.0 * sim.time_scale / sim.trades_per_second, news=sim.news
    )
    feed = SimulatorFeed(settings.kafka, simulator, sim.trades_per_second)
    with stop_on_signals() as stop:
        feed.start()
        try:
            stop.wait(duration)
        finally:
            feed.stop()
    typer.echo(json.dumps({"trades": feed.produced_trades, "news": feed.produced_news}))
