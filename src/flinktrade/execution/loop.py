"""The executor's loop: ``trading.signals`` in, orders at a broker, ``trading.orders``/``trading.fills``
out; the thin Kafka adapter around ``core.ExecutorCore``.

``KafkaSignalSource`` is the signals consumer (built by ``bus.make_consumer``; static membership, so a restarted executor takes
its partitions back at once; ``read_committed``) and the offset protocol: offsets are stored only
for signals whose decision the core reported as stored (``decided``), and committed only after the
store committed: an intent is fsynced before its offset is committed, so a crash never loses an
acknowledged signal nor places its order twice (the ``client_order_id`` is in the store).

``Executor`` wires the core to Kafka (the signals, ``market.PriceFeed`` for prices, the outbox
published with ``bus.EventProducer``) and runs ``tick`` / ``handle_batch`` until ``stop`` is set.
``alive`` and ``error`` tell whoever runs it in a thread whether it still runs. For crash tests,
``crash.CRASH_ENV`` makes it SIGKILL itself at a named step (``crash.CrashHook``).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

from flinktrade import bus, calendars
from flinktrade.bus import Consumer, KafkaException, TopicPartition
from flinktrade.config import KafkaSettings, Settings
from flinktrade.execution.book import ExecutorStats
from flinktrade.execution.brokers import make_broker
from flinktrade.execution.brokers.base import Broker
from flinktrade.execution.core import ExecutorCore, now_ms
from flinktrade.execution.crash import CrashHook
from flinktrade.execution.flatten import FlattenPlan
from flinktrade.execution.market import PriceFeed
from flinktrade.execution.settings import ExecutionSettings
from flinktrade.execution.source import SignalRecord
from flinktrade.execution.store import OrderStore, StoredOrder

log = logging.getLogger(__name__)

BATCH = 500
POLL_S = 0.1


class KafkaSignalSource:
    """The signals topic as a ``source.SignalSource``."""

    errors: tuple[type[BaseException], ...] = (KafkaException,)

    def __init__(self, kafka: KafkaSettings, config: ExecutionSettings) -> None:
        self.kafka = kafka
        self.config = config
        self.consumer: Consumer | None = None
        self._done: dict[tuple[str, int], int] = {}

    def open(self) -> None:
        group = self.config.group_id
        self.consumer = bus.make_consumer(
            self.kafka,
            group,
            topics=[self.config.topics.signals],
            start_from=self.config.start_from,
            read_committed=True,
            # offsets are stored by ``decided`` only, then committed in the background
            auto_commit=True,
            store_offsets=False,
            commit_interval_ms=1000,
            # static membership: a restarted executor takes its partitions back at once
            # instead of waiting for the killed one's session to expire
            instance_id=f"{group}-executor",
            extra={"session.timeout.ms": 10_000},
        )

    def poll(self, max_records: int, timeout_s: float) -> list[SignalRecord]:
        assert self.consumer is not None
        records = []
        for msg in self.consumer.consume(max_records, timeout=timeout_s):
            if msg.error() is not None:
                log.warning("executor: consumer error: %s", msg.error())
                continue
            records.append(SignalRecord(msg.value(), msg.topic(), msg.partition(), msg.offset()))
        return records

    def decided(self, record: SignalRecord) -> None:
        topic, partition, offset = record.topic, record.partition, record.offset
        if topic is not None and partition is not None and offset is not None:
            self._done[(topic, partition)] = offset + 1

    def commit(self, *, sync: bool) -> None:
        """Offsets of signals whose decision is durable; only ever called after a store commit."""
        if self.consumer is None or not self._done:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._done.items()]
        self.consumer.store_offsets(offsets=offsets)
        if sync:
            self.consumer.commit(offsets=offsets, asynchronous=False)

    def close(self) -> None:
        if self.consumer is None:
            return
        try:
            self.commit(sync=True)
        except KafkaException as exc:  # the decisions are stored: repeats are skipped
            log.warning("executor: final offset commit failed: %s", exc)
        self.consumer.close()


class Executor:
    """Runs until ``stop`` is set; see the module docstring for the contract."""

    def __init__(
        self,
        settings: Settings,
        broker: Broker,
        *,
        execution: ExecutionSettings | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        config = execution or settings.execution
        topics = config.topics
        self.settings = settings
        self.config = config
        self.broker = broker
        self.store = OrderStore(
            config.store_path(settings.state_dir),
            broker=broker.name,
            topics={"orders": topics.orders, "fills": topics.fills, "alerts": topics.alerts},
        )
        self.source = KafkaSignalSource(settings.kafka, config)
        self.core = ExecutorCore(
            config,
            broker,
            self.store,
            source=self.source,
            market=PriceFeed(settings.kafka, list(topics.prices), config.price_lookback),
            sink=bus.EventProducer(settings.kafka),
            clock=clock,
            checkpoint=CrashHook.from_env(),
            calendar=functools.partial(calendars.current, settings.state_dir),
        )
        self.error: BaseException | None = None
        self._alive = False

    @property
    def stats(self) -> ExecutorStats:
        return self.core.stats

    @property
    def alive(self) -> bool:
        """Whether ``run`` is running (False before it starts and after it ends or dies)."""
        return self._alive

    @property
    def consuming(self) -> bool:
        """Whether start-up is over and signals are read."""
        return self.source.consumer is not None

    @property
    def blocked(self) -> str | None:
        """Why the last reconciliation blocks new orders (None: it does not)."""
        return self.core.guard.blocked

    def run(self, stop: threading.Event) -> ExecutorStats:
        """Run until ``stop`` is set. An exception that ends it is kept in ``error`` (and as one
        line in ``stats.error``) and raised."""
        self._alive = True
        try:
            try:
                self.core.start()
                self.source.open()
                log.info(
                    "executor started: broker %s (%s), store %s, halted=%s, blocked=%s",
                    self.broker.name,
                    "paper" if self.broker.paper else "LIVE",
                    self.store.path,
                    self.store.halted(),
                    self.core.guard.blocked,
                )
                while not stop.is_set():
                    self.core.tick()
                    self.core.handle_batch(self.source.poll(BATCH, POLL_S))
                self.core.publish()
            finally:
                try:
                    self.source.close()
                finally:
                    self.core.close()
        except BaseException as exc:
            self.error = exc
            self.core.stats.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._alive = False
        return self.core.stats

    def flatten_plan(self) -> FlattenPlan:
        """What ``flatten`` would send now (nothing is sent or stored)."""
        return self.core.flatten_plan()

    def flatten(self, timeout_s: float = 60.0) -> list[StoredOrder]:
        """``core.ExecutorCore.flatten``: halt, close every position, follow the orders."""
        return self.core.flatten(timeout_s)


def run_executor(
    settings: Settings,
    stop: threading.Event,
    broker: str | Broker = "sim",
    *,
    live: bool = False,
) -> ExecutorStats:
    """Run the executor until ``stop`` is set (for the demo: call it in a thread)."""
    bus.ensure_topics(
        settings.kafka,
        [
            settings.execution.topics.signals,
            settings.execution.topics.orders,
            settings.execution.topics.fills,
            settings.execution.topics.alerts,
            settings.execution.topics.deadletter,
        ],
    )
    venue = make_broker(settings, broker, live=live) if isinstance(broker, str) else broker
    return Executor(settings, venue).run(stop)
