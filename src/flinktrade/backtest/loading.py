"""Backtest inputs: bars from CSV/Parquet files and ranges of Alpaca history, into memory (the
in-process engine) or onto a run's topic (the Flink engine); ``produce_market`` puts bars and news
(a ``--simulate`` market, ``backtest.simulated``) onto a run's topics.

Files are read by ``flinktrade.ingest.replay`` (its column aliases, time formats and validation),
with one addition: a first column without a name (a pandas index written by ``DataFrame.to_csv``,
or the index of a Parquet file) is taken as the time column. A CSV with a header row and a Parquet
file of plain columns go through ``backtest.fastload`` (column-wise, the same bars and rejected
rows as the row validator); any other file through the row validator.

``in_market_hours`` keeps the bars of chosen sessions (``--market-hours``), by the market calendar
it is given (the command gives the one in effect, ``calendars.current``).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import cast

import pandas as pd

from flinktrade import bus, events, sessions
from flinktrade.backtest import fastload
from flinktrade.backtest.runner import RunTopics
from flinktrade.config import Settings
from flinktrade.errors import ConfigError
from flinktrade.ingest.history import HistoryRequest, Sink, run_history
from flinktrade.ingest.replay import ReplayFile, read_file
from flinktrade.ingest.replay import events as replay_events
from flinktrade.ingest.validate import Validator
from flinktrade.progress import NoProgress, Progress
from flinktrade.sessions import MarketHours

log = logging.getLogger(__name__)

PRODUCE_TASK = "input"
_TICKER = re.compile(r"^[A-Z][A-Z0-9.\-]{0,15}$")


_DAY_MS = 86_400_000
_KEEP = {
    MarketHours.REGULAR: frozenset({sessions.Session.REGULAR}),
    MarketHours.EXTENDED: frozenset(
        {sessions.Session.PRE, sessions.Session.REGULAR, sessions.Session.POST}
    ),
}


def in_market_hours(
    bars: list[events.Bar], market_hours: MarketHours, calendar: sessions.Calendar
) -> list[events.Bar]:
    """The bars that start in the sessions ``market_hours`` names by ``calendar`` (``all``: every
    bar, the same list). A bar of a day or longer is a whole session and is always kept."""
    keep = _KEEP.get(market_hours)
    if keep is None:
        return bars
    return [
        bar for bar in bars if bar.interval_ms >= _DAY_MS or calendar.session_at(bar.ts) in keep
    ]


@dataclass(frozen=True)
class LoadedBars:
    bars: list[events.Bar]
    rejected: list[events.DeadLetter]


@dataclass(frozen=True)
class AlpacaRange:
    """Which Alpaca history to backtest over."""

    symbols: list[str]
    start: datetime
    end: datetime
    timeframe: str = "1Day"
    feed: str = "iex"


def load_file(path: Path, symbol: str | None = None) -> LoadedBars:
    """The bars of a CSV or Parquet file, in time order; rows that fail validation are returned
    apart. Without a symbol column the bars are ``symbol``'s, by default the file name's stem when
    it looks like a ticker (``GOOG.csv``). Raises ``ConfigError`` for an unreadable file or one
    without bars."""
    stem = path.stem.upper()
    symbol = symbol or (stem if _TICKER.match(stem) else None)
    validator = Validator(source=f"file:{path.name}", max_future_ms=2**62)
    with _time_column_named(path) as readable:
        fast = fastload.load_bars(readable, symbol, validator)
        if fast is not None:
            return _checked(path, *fast)
        try:
            replay = read_file(readable, symbol=symbol)
        except ConfigError as exc:  # name the user's file, not a temporary copy
            message = str(exc).replace(str(readable), str(path)).replace("--file ", "")
            raise ConfigError(message) from None
    if replay.kind != "bars":
        raise ConfigError(f"{path}: holds trades, not bars (no open/high/low/close columns)")
    return _validated(replay, path, validator)


def _validated(replay: ReplayFile, path: Path, validator: Validator) -> LoadedBars:
    bars: list[events.Bar] = []
    rejected: list[events.DeadLetter] = []
    for event in replay_events(replay, validator):
        if isinstance(event, events.Bar):
            bars.append(event)
        elif isinstance(event, events.DeadLetter):
            rejected.append(event)
    return _checked(path, bars, rejected)


def _checked(path: Path, bars: list[events.Bar], rejected: list[events.DeadLetter]) -> LoadedBars:
    if not bars:
        first = f": {rejected[0].reason}" if rejected else ""
        raise ConfigError(f"{path}: no valid bars{first}")
    if rejected:
        log.warning("%s: %d rows rejected, e.g. %s", path, len(rejected), rejected[0].reason)
    return LoadedBars(bars, rejected)


@contextmanager
def _time_column_named(path: Path) -> Iterator[Path]:
    """``path`` itself, or a temporary copy whose unnamed first (index) column is named ``time``."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    if suffix in (".csv", ".txt", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = handle.readline()
        if header[:1] not in (",", ";", "\t", "|"):
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="flinktrade-bars-") as work:
            copy = Path(work) / path.name
            with path.open(encoding="utf-8-sig", newline="") as src, copy.open("w") as dst:
                dst.write("time" + src.readline())
                for line in src:
                    dst.write(line)
            yield copy
        return
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read it: {exc}") from None
        if isinstance(frame.index, pd.RangeIndex):
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="flinktrade-bars-") as work:
            copy = Path(work) / path.name
            frame.rename_axis("time").reset_index().to_parquet(copy)
            yield copy
        return
    yield path


def produce_bars(
    servers: bus.Servers, topic: str, bars: Sequence[events.Bar], progress: Progress | None = None
) -> int:
    """Produce ``bars`` to ``topic`` keyed by symbol with the bar start as record time."""
    progress = progress or NoProgress()
    progress.begin(PRODUCE_TASK, max(1, len(bars)))
    producer = bus.EventProducer(servers)
    step = max(1, len(bars) // 100)
    for i, bar in enumerate(bars, start=1):
        producer.send(bar, topic)
        if i % step == 0:
            progress.update(PRODUCE_TASK, i, i)
    producer.flush()
    progress.update(PRODUCE_TASK, len(bars), len(bars))
    return len(bars)


def produce_market(
    servers: bus.Servers,
    topics: RunTopics,
    bars: Sequence[events.Bar],
    news: Sequence[events.NewsItem],
    progress: Progress | None = None,
) -> int:
    """Produce ``bars`` to the run's bars topic and ``news`` to its news topic; the bar count."""
    produced = produce_bars(servers, topics.bars, bars, progress)
    producer = bus.EventProducer(servers)
    for story in news:
        producer.send(story, topics.news)
    producer.flush()
    return produced


def fetch_alpaca(
    settings: Settings, request: AlpacaRange, progress: Progress | None = None
) -> LoadedBars:
    """Page Alpaca's historical bars for ``request`` into memory (the in-process engine's input);
    invalid records are returned apart, as dead letters."""
    from flinktrade.ingest.alpaca import Credentials, MarketDataRest

    if request.start >= request.end:
        raise ConfigError("--start must be before --end")
    rest = MarketDataRest(Credentials.from_settings(settings), settings.alpaca_api_data_url)
    sink = _MemorySink(producer=cast(bus.EventProducer, _NoBroker()))
    run_history(_history(request), rest, sink, progress or NoProgress())
    if not sink.bars:
        raise ConfigError(_no_bars(request))
    return LoadedBars(sorted(sink.bars, key=lambda b: (b.ts, b.symbol)), sink.rejected)


class _NoBroker:
    """Stands in for the producer of a ``Sink`` that keeps what it is given (never resumes)."""

    servers = ""


@dataclass
class _MemorySink(Sink):
    """A history ``Sink`` that keeps the bars (and dead letters) in memory instead of a topic."""

    bars: list[events.Bar] = field(default_factory=list)
    rejected: list[events.DeadLetter] = field(default_factory=list)

    def emit(self, event: events.Event) -> None:
        if isinstance(event, events.Bar):
            self.bars.append(event)
            self.counts["bars"] += 1
        elif isinstance(event, events.DeadLetter):
            self.rejected.append(event)
            self.counts["deadletter"] += 1

    def flush(self) -> None:
        pass


def _history(request: AlpacaRange) -> HistoryRequest:
    from flinktrade.ingest.alpaca import parse_timeframe, rest_feed

    return HistoryRequest(
        symbols=request.symbols,
        start=request.start,
        end=request.end,
        timeframe=parse_timeframe(request.timeframe),
        feed=rest_feed(request.feed),
    )


def _no_bars(request: AlpacaRange) -> str:
    return (
        f"Alpaca returned no bars for {', '.join(request.symbols)} between "
        f"{request.start.isoformat()} and {request.end.isoformat()}"
    )


def produce_alpaca(
    settings: Settings,
    request: AlpacaRange,
    bars_topic: str,
    deadletter_topic: str,
    progress: Progress | None = None,
) -> int:
    """Page Alpaca's historical bars for ``request`` onto ``bars_topic``; returns how many."""
    from flinktrade.ingest.alpaca import Credentials, MarketDataRest
    from flinktrade.ingest.settings import IngestTopics

    if request.start >= request.end:
        raise ConfigError("--start must be before --end")
    history = _history(request)
    rest = MarketDataRest(Credentials.from_settings(settings), settings.alpaca_api_data_url)
    topics = IngestTopics(bars=bars_topic, deadletter=deadletter_topic)
    sink = Sink(bus.EventProducer(settings.kafka), topics)
    counts = run_history(history, rest, sink, progress or NoProgress())
    if not counts["bars"]:
        raise ConfigError(_no_bars(request))
    return counts["bars"]
