"""Options several commands share, defined once, and the small helpers their arguments need.

Stage CLIs import from here (never from the root app), so the root can import them in turn.
"""

from __future__ import annotations

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
