"""What the executor's core is given instead of Kafka: a signal source, prices and a sink.

The core (``core.ExecutorCore``) decides; where signals come from, where the market prices come
from and where the outbox goes are injected, so the decision branches are unit-tested with
in-memory ones and the service runs with the Kafka ones (``loop``: ``KafkaSignalSource``;
``market.PriceFeed``; ``bus.EventProducer``).

The offset protocol: the core calls ``decided(record)`` once a record's decision is in the store
(or nothing needs storing: a repeat, a dead letter), and ``commit(sync=...)`` only after the
store committed; so an acknowledged signal is never lost and never decided twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class SignalRecord:
    """One record of the signals topic: its bytes and where it was."""

    value: bytes | None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


class SignalSource(Protocol):
    errors: tuple[type[BaseException], ...]
    """Failures of the source itself (not of one record): they stop the service."""

    def poll(self, max_records: int, timeout_s: float) -> list[SignalRecord]:
        """The next records (possibly none after ``timeout_s``)."""
        ...

    def decided(self, record: SignalRecord) -> None:
        """``record``'s decision is stored: its offset may be committed with the next commit."""
        ...

    def commit(self, *, sync: bool) -> None:
        """Commit the offsets of decided records; called only after the store committed."""
        ...


class Prices(Protocol):
    def get(self, symbol: str) -> Decimal | None: ...

    def as_dict(self) -> dict[str, Decimal]: ...


class PriceSource(Protocol):
    """The executor's own market prices (``market.PriceFeed``)."""

    @property
    def prices(self) -> Prices: ...

    def start(self) -> None: ...

    def poll(self, max_records: int = ...) -> int: ...

    def catch_up(self, timeout_s: float) -> bool:
        """Read every price published before this call (or until ``timeout_s``); True if done."""
        ...

    def close(self) -> None: ...
