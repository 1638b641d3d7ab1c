"""The API's consumer: reads the output topics on a thread into ``MarketState`` and hands every
new event to a callback (the WebSocket hub).

It belongs to no consumer group and commits nothing: each API instance reads on its own. At
start-up it reads back the last ``backfill`` records of every partition, so the dashboard has
history at once; topics or partitions created later are picked up from their beginning.

No record stops the feed. One that does not decode, carries a time outside 1970..2100, or fails
anywhere on its way into the state or to the stream is dropped: counted in
``flinktrade_api_dropped{topic, reason}`` and logged (the first of each topic and reason at
WARNING, then one summary line per ``LOG_EVERY_S``), and the next record is read. The feed writes
no dead letters: it reads every record again at each start and in every API instance, so it would
write the same dead letters over and over; the job, executor and notifier write them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from flinktrade import bus, events
from flinktrade.api.metrics import ApiMetrics
from flinktrade.api.settings import ApiSettings
from flinktrade.api.state import KIND_TOPICS, Applied, MarketState
from flinktrade.bus import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

log = logging.getLogger(__name__)

POLL_S = 0.1
METADATA_EVERY_S = 5.0
LAG_EVERY_S = 1.0
LOG_EVERY_S = 60.0
"""At most one log line per topic and drop reason this often (after the first)."""
MAX_TS = 4_102_444_800_000
"""2100-01-01 UTC in epoch ms: events must lie in [0, MAX_TS]."""


class DropReason(StrEnum):
    """Why the feed dropped a record (the ``reason`` label of ``flinktrade_api_dropped``)."""

    UNDECODABLE = "undecodable"
    OUT_OF_RANGE = "out_of_range"
    ERROR = "error"


@dataclass(frozen=True)
class FeedStatus:
    """What ``/health`` reports about the feed."""

    broker_reachable: bool
    caught_up: bool
    last_bar_age_s: float | None
    lags: dict[str, int]


class Feed:
    """Consumes the API's topics until stopped; ``caught_up`` is set once the records present at
    start-up have been read."""

    def __init__(
        self,
        settings: ApiSettings,
        bootstrap_servers: bus.Servers,
        state: MarketState,
        metrics: ApiMetrics,
        on_event: Callable[[Applied], None],
    ) -> None:
        self.settings = settings
        self.bootstrap_servers = bootstrap_servers
        self.state = state
        self.metrics = metrics
        self.on_event = on_event
        self.caught_up = threading.Event()
        self.error: BaseException | None = None
        self._kinds = {topic: kind for kind, topic in settings.topics.by_kind().items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-feed", daemon=True)
        self._assigned: set[tuple[str, int]] = set()
        self._start_ends: dict[tuple[str, int], int] = {}
        self._lags: dict[str, int] = {}
        self._metadata_ok_at: float | None = None
        self._last_bar_at: float | None = None
        self._drops: dict[tuple[str, DropReason], tuple[float, int]] = {}
        """Per (kind, reason): when it was last logged, and drops since."""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def status(self) -> FeedStatus:
        now = time.monotonic()
        reachable = self._metadata_ok_at is not None and now - self._metadata_ok_at < (
            3 * METADATA_EVERY_S
        )
        bar_age = None if self._last_bar_at is None else round(now - self._last_bar_at, 1)
        return FeedStatus(reachable, self.caught_up.is_set(), bar_age, dict(self._lags))

    def _run(self) -> None:
        consumer = bus.make_consumer(
            self.bootstrap_servers,
            bus.unique_group_id("flinktrade-api"),
            start_from="earliest",
            store_offsets=False,
            extra={"fetch.wait.max.ms": 50, "socket.timeout.ms": 10_000},
        )
        try:
            next_metadata = next_lag = 0.0
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_metadata:
                    self._refresh(consumer)
                    next_metadata = next_lag = now + METADATA_EVERY_S
                elif now >= next_lag:
                    self._measure_lag(consumer, cached=True)
                    next_lag = now + LAG_EVERY_S
                msg = consumer.poll(POLL_S)
                if msg is not None:
                    self._handle(msg)
                if not self.caught_up.is_set() and self._reached_start_ends(consumer, msg):
                    log.info("api feed caught up with %d partitions", len(self._assigned))
                    self.caught_up.set()
        except BaseException as exc:  # surfaced in /health; the API keeps serving what it has
            self.error = exc
            log.exception("api feed stopped")
        finally:
            consumer.close()

    def _refresh(self, consumer: Consumer) -> None:
        """Assign partitions not yet read (first pass: the last ``backfill`` records) and measure
        the lag of the assigned ones."""
        try:
            metadata = consumer.list_topics(timeout=5.0)
        except KafkaException as exc:
            log.warning("api feed: broker not reachable: %s", exc)
            return
        first = self._metadata_ok_at is None
        self._metadata_ok_at = time.monotonic()
        new: list[TopicPartition] = []
        for topic, kind in self._kinds.items():
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            for partition in sorted(meta.partitions):
                if (topic, partition) in self._assigned:
                    continue
                offset = OFFSET_BEGINNING
                if first:
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=5.0
                    )
                    offset = max(low, high - self.settings.backfill)
                    if high > offset:
                        self._start_ends[(topic, partition)] = high
                new.append(TopicPartition(topic, partition, offset))
                self._assigned.add((topic, partition))
            log.debug("api feed reads %s as %s", topic, kind)
        if new:
            consumer.incremental_assign(new)
        self._measure_lag(consumer)

    def _measure_lag(self, consumer: Consumer, cached: bool = False) -> None:
        """Records per kind not read yet. ``cached`` uses the high watermarks of the last fetch
        responses (no request); otherwise the broker is asked."""
        assigned = [TopicPartition(t, p) for t, p in sorted(self._assigned)]
        if not assigned:
            return
        lags: dict[str, int] = {}
        for tp in consumer.position(assigned):
            if cached:
                low, high = consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:  # nothing fetched from it yet: the next full measure tells
                    continue
            else:
                low, high = consumer.get_watermark_offsets(tp, timeout=5.0)
            position = tp.offset if tp.offset >= 0 else low
            kind = self._kinds[tp.topic]
            lags[kind] = lags.get(kind, 0) + max(0, high - position)
        for kind, lag in lags.items():
            self.metrics.lag.labels(kind).set(lag)
        self._lags = lags

    def _reached_start_ends(self, consumer: Consumer, msg: Message | None) -> bool:
        if self._metadata_ok_at is None:
            return False
        if msg is not None and not msg.error():
            key = (msg.topic() or "", msg.partition() or 0)
            offset = msg.offset()
            if (
                key in self._start_ends
                and offset is not None
                and offset + 1 >= self._start_ends[key]
            ):
                del self._start_ends[key]
        elif self._start_ends:  # nothing arrived: compacted or aborted records may end a partition
            positions = consumer.position([TopicPartition(t, p) for t, p in self._start_ends])
            for tp in positions:
                if tp.offset >= self._start_ends[(tp.topic, tp.partition)]:
                    del self._start_ends[(tp.topic, tp.partition)]
        return not self._start_ends

    def _handle(self, msg: Message) -> None:
        error = msg.error()
        if error is not None:
            log.warning("api feed: %s", error.str())
            return
        topic = msg.topic() or ""
        kind = self._kinds.get(topic)
        if kind is None:
            return
        self.metrics.events_in.labels(kind).inc()
        try:
            self._apply(kind, msg.value() or b"")
        except events.DecodeError as exc:
            self._dropped(kind, DropReason.UNDECODABLE, msg, str(exc))
        except _OutOfRange as exc:
            self._dropped(kind, DropReason.OUT_OF_RANGE, msg, str(exc))
        except Exception as exc:  # no record may stop the feed
            self._dropped(kind, DropReason.ERROR, msg, f"{type(exc).__name__}: {exc}", exc)

    def _apply(self, kind: str, value: bytes) -> None:
        event = KIND_TOPICS[kind].decode(value)
        if not 0 <= event.ts <= MAX_TS:
            raise _OutOfRange(f"ts: {event.ts} is not between 1970 and 2100 (epoch ms)")
        if kind == "bars" and self.caught_up.is_set():
            self._last_bar_at = time.monotonic()
        applied = self.state.apply(kind, event)
        if applied is None:
            return
        self.metrics.count(event)
        self.on_event(applied)

    def _dropped(
        self,
        kind: str,
        reason: DropReason,
        msg: Message,
        why: str,
        exc: Exception | None = None,
    ) -> None:
        self.metrics.dropped.labels(kind, reason.value).inc()
        now = time.monotonic()
        last, count = self._drops.get((kind, reason), (None, 0))
        count += 1
        if last is not None and now - last < LOG_EVERY_S:
            self._drops[(kind, reason)] = (last, count)
            return
        self._drops[(kind, reason)] = (now, 0)
        log.warning(
            "api feed: dropped %d %s record(s) of %s, the last at %s[%s]@%s: %s",
            count,
            reason.value,
            kind,
            msg.topic(),
            msg.partition(),
            msg.offset(),
            why[:300],
            exc_info=exc,
        )


class _OutOfRange(Exception):
    """A decoded event whose values the API cannot show."""
