"""Options several commands share, defined once, and the small helpers their arguments need.

Stage CLIs import from here (never from the root app), so the root can import them in turn.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import typer

from flinktrade.config import Delivery, LatencyProfile, Settings
from flinktrade.errors import ConfigError

BoundedOption = Annotated[
    bool, typer.Option(help="Stop at the topic's current end (backtests, catch-up).")
]
FromEarliestOption = Annotated[
    bool, typer.Option(help="Ignore committed offsets; read from the beginning.")
]
ParallelismOption = Annotated[int | None, typer.Option(min=1)]
DeliveryOption = Annotated[
    Delivery | None, typer.Option(help="Output delivery guarantee (default: configured).")
]
LatencyProfileOption = Annotated[
    LatencyProfile | None,
    typer.Option(help="'low': outputs within milliseconds, more CPU (default: configured)."),
]
JobmanagerOption = Annotated[
    str | None, typer.Option(help="REST host:port of the Flink cluster (default: job.jobmanager).")
]


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` options as strategy parameters (numbers where they parse as numbers)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {pair!r}: expected key=value")
        value: Any = text
        for kind in (int, float):
            try:
                value = kind(text)
                break
            except ValueError:
                continue
        params[key.strip()] = value
    return params


def uses_local_broker(settings: Settings) -> bool:
    """Whether the settings point at the embedded broker (which the CLI then starts)."""
    local = f"{settings.broker.host}:{settings.broker.port}"
    return settings.kafka.bootstrap_servers.strip() == local


_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-/]{0,15}$")


def parse_symbols(text: str) -> list[str]:
    """``"aapl, MSFT"`` -> ``["AAPL", "MSFT"]`` (order kept, repeats dropped)."""
    symbols: list[str] = []
    for part in text.split(","):
        name = part.strip().upper()
        if not name:
            continue
        if not _SYMBOL.match(name):
            raise ConfigError(f"--symbols: {part.strip()!r} is not a ticker symbol")
        if name not in symbols:
            symbols.append(name)
    if not symbols:
        raise ConfigError("--symbols: give at least one symbol, e.g. --symbols AAPL,MSFT")
    return symbols


def parse_when(text: str, option: str, end_of_day: bool = False) -> datetime:
    """A date (``2024-01-02``; with ``end_of_day`` its last instant) or an RFC 3339 time
    (naive means UTC)."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1, microseconds=-1000) if end_of_day else start
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not a date or time (use 2024-01-02)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
