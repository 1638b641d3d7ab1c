"""``flinktrade calendar refresh``: Alpaca's market calendar into the state dir.

``refresh`` asks ``GET /v2/calendar`` for ``start``..``end`` with the configured keys (through
``AlpacaBroker.calendar``, the adapter the executor asks), keeps the dates the answer covers
(``calendars.clipped``) and writes them over ``<state dir>/calendar.json`` atomically
(``calendars.write``). Reading the calendar places no order, so a live account's URL is asked as
it is. Errors: ``ConfigError`` for a bad range, missing keys or a state dir that cannot be
written; ``TransientError`` when Alpaca cannot be reached or its answer is unreadable or empty.
On any error the file already there is left as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from flinktrade import calendars
from flinktrade.config import Settings
from flinktrade.errors import ConfigError, TransientError
from flinktrade.sessions import Calendar

DEFAULT_START = date(2015, 1, 1)
DEFAULT_END = date(2030, 12, 31)
"""The range asked for by default: the bundled calendar's."""


@dataclass(frozen=True)
class Refreshed:
    path: Path
    calendar: Calendar
    """What was written: the dates the answer covered."""


def refresh(settings: Settings, start: date, end: date) -> Refreshed:
    """Ask Alpaca for the calendar of ``start``..``end`` and write it; see the module doc."""
    if start > end:
        raise ConfigError(f"--start {start} is after --end {end}")
    if settings.alpaca_api_key_id is None or settings.alpaca_api_secret_key is None:
        raise ConfigError(
            "calendar refresh needs Alpaca's keys: set APCA_API_KEY_ID and APCA_API_SECRET_KEY"
        )
    from flinktrade.execution.brokers.alpaca import AlpacaBroker, is_live_url

    broker = AlpacaBroker(
        settings.alpaca_api_key_id,
        settings.alpaca_api_secret_key,
        base_url=settings.alpaca_api_base_url,
        live=is_live_url(settings.alpaca_api_base_url),
        timeout_s=settings.execution.request_timeout_s,
        max_rate_limit_wait_s=settings.execution.max_rate_limit_wait_s,
        requests_per_minute=settings.execution.trading_requests_per_minute,
    )
    kept = f"{calendars.path_in(settings.state_dir)} left as it was"
    try:
        answer = broker.calendar(start, end)
    except TransientError as exc:
        raise TransientError(f"{exc}; {kept}") from None
    finally:
        broker.close()
    try:
        covered = calendars.clipped(answer)
    except ValueError:
        raise TransientError(
            f"Alpaca calendar: the answer lists no trading day in {start}..{end}; {kept}"
        ) from None
    try:
        path = calendars.write(settings.state_dir, covered)
    except OSError as exc:
        raise ConfigError(
            f"cannot write {calendars.path_in(settings.state_dir)}: {exc.strerror or exc}"
        ) from None
    return Refreshed(path, covered)
