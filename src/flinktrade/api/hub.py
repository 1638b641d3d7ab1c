"""Fan-out of new events to WebSocket clients.

The feed thread calls ``publish``; the message is encoded once and handed to the event loop,
which puts it on the queue of every client subscribed to that kind (and symbol). A client whose
queue is full is too slow to follow: it is disconnected rather than allowed to hold memory.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from flinktrade.api.metrics import ApiMetrics
from flinktrade.api.state import Applied

CLOSE_TOO_SLOW = 1013  # "try again later"


@dataclass(eq=False)
class Subscriber:
    """One WebSocket client: what it wants and what waits to be sent to it."""

    kinds: frozenset[str]
    symbols: frozenset[str]
    queue: asyncio.Queue[tuple[str, str]]  # (kind, encoded message)
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, kind: str, symbol: str | None) -> bool:
        return kind in self.kinds and (not self.symbols or symbol in self.symbols)


class Hub:
    """The set of stream subscribers, living on one event loop."""

    def __init__(self, metrics: ApiMetrics, queue_size: int) -> None:
        self.metrics = metrics
        self.queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._subscribers)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, kinds: frozenset[str], symbols: frozenset[str]) -> Subscriber:
        subscriber = Subscriber(kinds, symbols, asyncio.Queue(self.queue_size))
        self._subscribers.add(subscriber)
        self.metrics.clients.set(len(self._subscribers))
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        self.metrics.clients.set(len(self._subscribers))

    def publish(self, applied: Applied) -> None:
        """Thread-safe: send a new event to the subscribers that want it."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self._subscribers:
            return
        text = json.dumps({"type": "event", "topic": applied.kind, "data": applied.data})
        try:
            loop.call_soon_threadsafe(self._dispatch, applied.kind, applied.symbol, text)
        except RuntimeError:  # the loop closed in between: the server is stopping
            return

    def _dispatch(self, kind: str, symbol: str | None, text: str) -> None:
        for subscriber in list(self._subscribers):
            if not subscriber.wants(kind, symbol):
                continue
            try:
                subscriber.queue.put_nowait((kind, text))
            except asyncio.QueueFull:
                subscriber.overflowed.set()
