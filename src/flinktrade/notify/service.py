"""The notifier process: read the topics, drop repeats, route, deliver, commit.

Offsets are committed only after every destination a record was routed to has accepted it (or
given up on it for good), so a crash or restart re-reads what was not posted yet: at-least-once.
Repeats of an event id (a replayed record, a job restart) are dropped before routing, so they are
not posted twice. A crash between Slack's acceptance and the commit can still post once more on
restart; a clean stop first drains what is pending (``drain_timeout_s``) and commits.

No record stops the notifier: one that does not decode, or that decodes into a notice that cannot
be rendered, goes to the dead-letter topic (``DeadLetter.of``: reason and original bytes, bounded)
and the next record is read. Its offset is committed only once its dead letter is acknowledged; a
dead letter the broker refuses (or does not take within ``DEADLETTER_TIMEOUT_MS``) is sent again,
up to ``DEADLETTER_ATTEMPTS`` attempts in all, then logged as an error and given up, so one record
never stalls the commits for good.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flinktrade import bus, events, topics
from flinktrade.bus import Consumer, KafkaError, KafkaException, Message, TopicPartition
from flinktrade.bus.offsets import TP, OffsetTracker, RecordRef, SeenIds
from flinktrade.errors import TransientError
from flinktrade.notify.format import Formatter
from flinktrade.notify.notices import parse_record
from flinktrade.notify.routing import Route, Routing, build_routing
from flinktrade.notify.settings import NotifySettings
from flinktrade.notify.sinks import DeliveryError, TransientDeliveryError
from flinktrade.notify.worker import Delivery, DestinationWorker, WorkerStats

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.2
DEADLETTER_ATTEMPTS = 3
"""Flushes a batch of dead letters gets before the notifier gives up on it (and commits)."""
DEADLETTER_TIMEOUT_MS = 30_000
"""``message.timeout.ms`` of the dead-letter producer: how long one attempt may take."""


@dataclass
class NotifyStats:
    """What one run did; ``destinations`` by sink description."""

    records: int = 0
    duplicates: int = 0
    rejected: int = 0
    """Records rejected (dead-lettered): not decodable, or not renderable."""
    unrouted: int = 0
    destinations: dict[str, WorkerStats] = field(default_factory=dict)


class Notifier:
    """Consumes the notification topics and posts to the routing's sinks until ``stop`` is set."""

    def __init__(
        self,
        settings: NotifySettings,
        bootstrap_servers: bus.Servers,
        *,
        routing: Routing | None = None,
        deadletter_topic: str | None = topics.DEADLETTER.name,
    ) -> None:
        self.settings = settings
        self.bootstrap_servers = bootstrap_servers
        self.routing = routing or build_routing(settings)
        self.deadletter_topic = deadletter_topic
        self.stats = NotifyStats()
        self.assigned = threading.Event()
        self._types = settings.topics.by_type()
        self._tracker = OffsetTracker()
        self._seen = SeenIds(settings.dedupe_capacity)
        formatter = self._formatter = Formatter(settings.dashboard_url)
        self._workers = {
            key: DestinationWorker(
                sink,
                formatter,
                self._done,
                retry_initial_s=settings.retry_initial_s,
                retry_max_s=settings.retry_max_s,
            )
            for key, sink in self.routing.sinks.items()
        }
        self._deadletters: bus.EventProducer | None = None
        self._letters: list[events.DeadLetter] = []
        """Dead letters sent and not acknowledged yet (sent again if the broker refuses them)."""
        self._letter_attempts = 0
        self._paused = False
        self._warned_topics: set[str] = set()

    def run(self, stop: threading.Event) -> NotifyStats:
        consumer = bus.make_consumer(
            self.bootstrap_servers,
            self.settings.group_id,
            topics=list(self._types),
            start_from=self.settings.start_from,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
            extra={"topic.metadata.refresh.interval.ms": 30_000},
        )
        for worker in self._workers.values():
            worker.start()
        log.info(
            "notifier reading %s as group %s; routes: %s",
            ", ".join(self._types),
            self.settings.group_id,
            "; ".join(self._describe(r) for r in self.routing.routes),
        )
        try:
            while not stop.is_set():
                self._backpressure(consumer)
                for msg in consumer.consume(num_messages=500, timeout=POLL_TIMEOUT_S):
                    self._handle(msg)
                self._commit(consumer)
        finally:
            self._shutdown(consumer)
        return self.stats

    def delivery_stats(self) -> dict[str, WorkerStats]:
        """Per destination, what was posted so far (live, while running)."""
        return {w.sink.description: w.stats for w in self._workers.values()}

    def _describe(self, route: Route) -> str:
        sink = self.routing.sinks[route.sink_key]
        return f"{route.name}: {route.describe()} -> {sink.description}"

    # -- records ---------------------------------------------------------------------------------

    def _handle(self, msg: Message) -> None:
        error = msg.error()
        if error is not None:
            self._kafka_error(msg, error)
            return
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is None or partition is None or offset is None:
            return
        ref = RecordRef(topic, partition, offset)
        self.stats.records += 1
        _kind, record_ts = msg.timestamp()
        value = msg.value() or b""
        try:
            notice = parse_record(self._types[topic], value)
        except events.DecodeError as exc:
            self._reject(ref, str(exc), value, record_ts)
            return
        if not self._seen.add(notice.id):
            log.debug("dropping repeat of %s (symbol %s) at %s", notice.id, notice.symbol, ref)
            self.stats.duplicates += 1
            self._tracker.add(ref, 0)
            return
        try:  # what a worker could not post would be retried for ever: refuse it here
            self._formatter.notice(notice)
        except Exception as exc:  # no record may stop the notifier
            log.exception("cannot render the record at %s", ref)
            self._reject(ref, f"cannot be rendered: {type(exc).__name__}: {exc}", value, record_ts)
            return
        keys = self.routing.destinations(notice)
        self._tracker.add(ref, len(keys))
        if not keys:
            self.stats.unrouted += 1
        for key in keys:
            self._workers[key].submit(Delivery(notice, ref))

    def _kafka_error(self, msg: Message, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise TransientError(f"Kafka consumer failed: {error.str()}")
        topic = msg.topic() or ""
        if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            if topic not in self._warned_topics:
                self._warned_topics.add(topic)
                log.warning("topic %s does not exist (yet); reading the others", topic)
            return
        log.warning("Kafka: %s", error.str())

    def _reject(self, ref: RecordRef, reason: str, value: bytes, record_ts: int) -> None:
        log.warning("rejecting the record at %s: %s", ref, reason[:200])
        self.stats.rejected += 1
        self._tracker.add(ref, 0)
        if not self.deadletter_topic:
            return
        if self._deadletters is None:
            self._deadletters = bus.EventProducer(
                self.bootstrap_servers, extra={"message.timeout.ms": DEADLETTER_TIMEOUT_MS}
            )
        letter = events.DeadLetter.of(
            ref.topic,
            reason,
            value,
            ts=record_ts if record_ts > 0 else events.now_ms(),
            partition=ref.partition,
            offset=ref.offset,
        )
        self._deadletters.send(letter, self.deadletter_topic)
        self._letters.append(letter)

    def _flush_deadletters(self) -> bool:
        """Whether every dead letter sent so far is acknowledged (or given up on)."""
        if self._deadletters is None or not self._letters:
            return True
        try:
            self._deadletters.flush(10.0)
        except bus.ProduceFailed as exc:
            if not exc.failed:  # still queued: the next flush waits for them again
                log.warning("dead letters not acknowledged yet, not committing: %s", exc)
                return False
            self._letter_attempts += 1
            if self._letter_attempts < DEADLETTER_ATTEMPTS:
                log.warning("dead letters refused (%s); sending them again", exc)
                for letter in self._letters:  # duplicates are fine: keyed by topic+offset
                    self._deadletters.send(letter, self.deadletter_topic)
                return False
            log.error(
                "giving up on %d dead letters after %d attempts (%s): records %s",
                len(self._letters),
                self._letter_attempts,
                exc,
                ", ".join(
                    f"{d.source_topic}[{d.partition}]@{d.offset}" for d in self._letters[:20]
                ),
            )
        self._letters = []
        self._letter_attempts = 0
        return True

    def _done(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self._tracker.done(delivery.ref)

    # -- offsets ---------------------------------------------------------------------------------

    def _commit(self, consumer: Consumer, only: Sequence[TP] | None = None) -> None:
        positions = self._tracker.to_commit(only)
        if not positions:
            return
        if not self._flush_deadletters():
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("offset commit failed, will retry: %s", exc)
            return
        self._tracker.committed(positions)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._paused = False
        self.assigned.set()
        log.info("assigned %d partition(s)", len(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = [(tp.topic, tp.partition) for tp in partitions]
        self._commit(consumer, revoked)
        self._tracker.forget(revoked)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._tracker.forget([(tp.topic, tp.partition) for tp in partitions])

    def _backpressure(self, consumer: Consumer) -> None:
        outstanding = self._tracker.outstanding
        if not self._paused and outstanding >= self.settings.max_in_flight:
            consumer.pause(consumer.assignment())
            self._paused = True
            log.info("%d records await delivery: pausing the topics", outstanding)
        elif self._paused and outstanding < self.settings.max_in_flight // 2:
            consumer.resume(consumer.assignment())
            self._paused = False
            log.info("deliveries caught up: resuming the topics")

    def _shutdown(self, consumer: Consumer) -> None:
        drain = self.settings.drain_timeout_s
        for worker in self._workers.values():
            worker.stop(drain)
        deadline = time.monotonic() + drain + self.settings.request_timeout_s
        for worker in self._workers.values():
            if not worker.join(max(0.0, deadline - time.monotonic())):
                log.warning("%s: still posting at shutdown", worker.sink.description)
        try:
            self._commit(consumer)
        finally:
            consumer.close()
            self.routing.close()
            if self._letters and not self._flush_deadletters():
                log.warning("%d dead letters may not have been written", len(self._letters))
        for worker in self._workers.values():
            self.stats.destinations[worker.sink.description] = worker.stats
            if worker.pending:
                log.info(
                    "%s: %d notice(s) not posted before shutdown; they will be read again",
                    worker.sink.description,
                    worker.pending,
                )
            if worker.stats.error:
                log.info(
                    "%s was disabled (%s): %d notice(s) skipped",
                    worker.sink.description,
                    worker.stats.error,
                    worker.stats.skipped,
                )
        log.info(
            "notifier stopped: %d records, %d repeats dropped, %d rejected (dead letters)",
            self.stats.records,
            self.stats.duplicates,
            self.stats.rejected,
        )


@dataclass(frozen=True)
class RouteCheck:
    """The outcome of one route's test message; ``error`` is None when it was accepted."""

    route: str
    destination: str
    error: DeliveryError | None

    @property
    def transient(self) -> bool:
        return isinstance(self.error, TransientDeliveryError)


def send_test_messages(
    routing: Routing,
    formatter: Formatter,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[RouteCheck]:
    """One test message per route, paced per destination; Slack's answer for each."""
    results: list[RouteCheck] = []
    last_post: dict[str, float] = {}
    for route in routing.routes:
        sink = routing.sinks[route.sink_key]
        if route.sink_key in last_post:
            sleep(max(0.0, last_post[route.sink_key] + sink.min_interval_s - clock()))
        message = formatter.test(route.name, route.describe(), events.now_ms())
        try:
            sink.post(message)
            error = None
        except DeliveryError as exc:
            error = exc
        last_post[route.sink_key] = clock()
        results.append(RouteCheck(route.name, sink.description, error))
    return results
