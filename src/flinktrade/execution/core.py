"""The executor's core: its parts wired together, with no Kafka in sight.

One thread does all the deciding (signals, broker updates, reconciliation), so the store sees one
writer and the order of events is the order of decisions; the broker's stream thread only queues
updates. The parts:

- ``decide.SignalDesk``: one signal record -> dead letter, repeat, denial or intent -> order;
- ``lifecycle.OrderLifecycle``: place, resolve (``Resolution``), apply updates, record fills;
- ``reconcile.differences``: the pure comparison of broker and store, run with its I/O by
  ``reconciling.Reconciling`` (the core's base class); differences block new orders (fail
  closed) until a later reconciliation finds none. While all they are is transient (an order's
  outcome or the broker could not be read yet: ``guard.waiting``), new signals are *held* in
  order, undecided (their offsets uncommitted), and decided once a reconciliation (within
  ``reconciling.TRANSIENT_RECONCILE_S`` of the last, as after any transient difference; not
  sooner, since each one looks every open order up at the broker) lifts or hardens the block,
  or the oldest has waited ``risk.max_signal_age_s`` (it would be too old to trade by then); a
  signal that merely met a moment of unknown outcome is placed, not denied;
- ``guard.TradingGuard``: account checks, halting, the kill switch set from outside;
- ``alerts.Alerter`` (throttled) and ``outbox.OutboxPublisher`` (store outbox -> sink);
- ``flattener.Flattener``: the operator's ``flatten`` (``flatten.plan``, then its orders followed).

Where signals, market prices and published records come from and go is injected
(``source.SignalSource``, ``source.PriceSource``, ``outbox.Sink``): ``loop.Executor`` gives it the
Kafka ones, the unit tests in-memory ones. ``tick`` does the periodic work (heartbeat into the
store every ``heartbeat_interval_s`` for ``flinktrade status``, prices, broker updates, the kill
switch, the account, following open orders, reconciliation every ``reconcile_interval_s`` (which
first places the exits a crash left unplaced),
deleting orders past ``order_retention_days`` hourly, publishing); ``handle_batch`` decides on signals.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable

from flinktrade import sessions
from flinktrade.errors import TransientError
from flinktrade.execution import flatten as flattening
from flinktrade.execution.alerts import Alerter, Throttle
from flinktrade.execution.book import Book, ExecutorStats
from flinktrade.execution.brokers.base import Broker
from flinktrade.execution.crash import no_checkpoint
from flinktrade.execution.decide import SignalDesk
from flinktrade.execution.flattener import Flattener
from flinktrade.execution.guard import TradingGuard
from flinktrade.execution.lifecycle import OrderLifecycle
from flinktrade.execution.outbox import OutboxPublisher, Sink
from flinktrade.execution.reconciling import Reconciling
from flinktrade.execution.settings import ExecutionSettings
from flinktrade.execution.source import PriceSource, SignalRecord, SignalSource
from flinktrade.execution.store import OrderStore, StoredOrder

log = logging.getLogger(__name__)

HALT_CHECK_S = 0.25
"""How often the kill switch is read from the store (set by another process within a second)."""
PRUNE_INTERVAL_S = 3600.0
"""How often orders past ``order_retention_days`` are deleted from the store."""
MAX_HELD = 10_000
"""Signals held during a transient block beyond this many are decided (denied) oldest first."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ExecutorCore(Reconciling):
    """The executor without Kafka: ``start``, then ``tick`` and ``handle_batch`` from one thread
    until ``close``; or ``flatten`` instead of running."""

    def __init__(
        self,
        config: ExecutionSettings,
        broker: Broker,
        store: OrderStore,
        *,
        source: SignalSource,
        market: PriceSource,
        sink: Sink,
        clock: Callable[[], int] = now_ms,
        checkpoint: Callable[[str], None] = no_checkpoint,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        calendar: Callable[[], sessions.Calendar] = sessions.bundled,
    ) -> None:
        """``calendar``: the market calendar when the broker serves none (or cannot now)."""
        self.config = config
        self.broker = broker
        self.store = store
        self.market = market
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self._stats = ExecutorStats()
        self.book = Book()
        self.alert = Alerter(store, clock, Throttle(config.risk.deny_alert_interval_s, monotonic))
        self.guard = TradingGuard(store, broker, config.risk, self.alert)
        self.orders = OrderLifecycle(
            store=store,
            broker=broker,
            config=config,
            clock=clock,
            alert=self.alert,
            stats=self._stats,
            book=self.book,
            checkpoint=checkpoint,
            on_unknown_order=self.reconcile_soon,
            sleep=sleep,
        )
        self.desk = SignalDesk(
            store=store,
            config=config,
            clock=clock,
            alert=self.alert,
            stats=self._stats,
            book=self.book,
            market=market,
            guard=self.guard,
            orders=self.orders,
            source=source,
            checkpoint=checkpoint,
            calendar=calendar,
        )
        self.outbox = OutboxPublisher(store, sink)
        self.flattener = Flattener(
            store=store,
            broker=broker,
            orders=self.orders,
            guard=self.guard,
            market=market,
            book=self.book,
            prefix=config.client_order_prefix,
            publish=self.publish,
            on_reconnect=self._on_reconnect,
            clock=clock,
            monotonic=monotonic,
            sleep=sleep,
        )
        self._reconnected = False
        self._next_beat = 0.0
        self._next_reconcile = 0.0
        self._next_poll = 0.0
        self._next_account = 0.0
        self._next_halt_check = 0.0
        self._next_prune = 0.0
        self._held: deque[tuple[SignalRecord, float]] = deque()
        """Signals waiting for a transient block to clear, in arrival order, with when."""

    @property
    def stats(self) -> ExecutorStats:
        self._stats.alerts = self.alert.sent
        self._stats.held = len(self._held)
        return self._stats

    # ------------------------------------------------------------------ start, tick, close

    def start(self) -> None:
        """Load positions, beat, start the prices and the broker's updates, check the account,
        reconcile (an intent never sent is sent now) and publish."""
        self.book.load(self.store)
        self.guard.start()
        self.beat()
        self.market.start()
        self.broker.start_updates(self.orders.updates.put, self._on_reconnect)
        self.refresh_account()
        self.reconcile(startup=True)
        self.publish()

    def _on_reconnect(self) -> None:  # the broker's stream thread: only a flag
        self._reconnected = True

    def beat(self) -> None:
        self._next_beat = self.monotonic() + self.config.heartbeat_interval_s
        self.store.beat(self.clock(), os.getpid())

    def tick(self) -> None:
        now = self.monotonic()
        if now >= self._next_beat:
            self.beat()
        self.market.poll()
        self.orders.apply_updates()
        if now >= self._next_halt_check:
            self.guard.watch()
            self._next_halt_check = now + HALT_CHECK_S
        if now >= self._next_account:
            self.refresh_account()
        if self._reconnected:
            self._reconnected = False
            self.follow_open_orders()  # events missed while disconnected are not replayed
        elif now >= self._next_poll:
            self.follow_open_orders()
        if now >= self._next_reconcile:
            self.reconcile()
        if self._held:
            self.release_held()
        if now >= self._next_prune:
            self.prune()
        self.publish()

    def handle_batch(self, records: list[SignalRecord]) -> None:
        """Decide on each record, then commit the store, then (asynchronously) the offsets; while
        the block is transient (``guard.waiting``) hold them, in order, for ``release_held``."""
        if not records:
            return
        if self._held or self.guard.waiting:
            now = self.monotonic()
            if not self._held:
                log.info("executor: holding signals until reconciliation: %s", self.guard.blocked)
            self._held.extend((record, now) for record in records)
            if len(self._held) <= MAX_HELD:
                return
            records = [self._held.popleft()[0] for _ in range(len(self._held) - MAX_HELD)]
        self._decide(records)

    def release_held(self) -> None:
        """Decide the held signals once the block is not transient any more (lifted: they are
        placed; hardened or the kill switch: denied), and the oldest anyway once it has waited
        ``max_signal_age_s``."""
        if not self.guard.waiting:
            records = [record for record, _ in self._held]
            self._held.clear()
        else:
            expired = self.monotonic() - self.config.risk.max_signal_age_s
            records = []
            while self._held and self._held[0][1] <= expired:
                records.append(self._held.popleft()[0])
        if records:
            log.info(
                "executor: deciding %d held signals (blocked: %s)", len(records), self.guard.blocked
            )
            self._decide(records)

    def _decide(self, records: list[SignalRecord]) -> None:
        self.market.poll()
        for record in records:
            self.desk.handle(record)
            if self.orders.updates.qsize():
                self.orders.apply_updates()
        self.store.commit()
        self.desk.source.commit(sync=False)

    def publish(self) -> None:
        self.outbox.publish()

    def close(self) -> None:
        """Stop the prices and the broker, publish what is left, close the store."""
        try:
            self.market.close()
            self.broker.close()
            try:
                self.publish()
            except TransientError as exc:
                log.warning("executor: records left in the outbox for next start: %s", exc)
        finally:
            self._stats.halted = self.store.halted()
            self._stats.blocked = self.guard.blocked
            self.store.close()

    def refresh_account(self) -> None:
        self._next_account = self.monotonic() + self.config.account_refresh_s
        self.guard.refresh_account()

    def prune(self) -> int:
        """Delete orders final for longer than ``order_retention_days`` (0: never)."""
        self._next_prune = self.monotonic() + PRUNE_INTERVAL_S
        days = self.config.order_retention_days
        if not days:
            return 0
        deleted = self.store.prune(before_ms=self.clock() - int(days * 86_400_000))
        if deleted:
            log.info("executor: deleted %d orders final for over %g days", deleted, days)
        return deleted

    def follow_open_orders(self) -> None:
        self._next_poll = self.monotonic() + self.config.order_poll_interval_s
        self.orders.follow_open_orders()

    # ------------------------------------------------------------------ flatten

    def flatten_plan(self) -> flattening.FlattenPlan:
        """What ``flatten`` would send now (nothing is sent or stored)."""
        return self.flattener.plan()

    def flatten(self, timeout_s: float = 60.0) -> list[StoredOrder]:
        """``flattener.Flattener.run``: halt, close every position, follow; the store is closed."""
        return self.flattener.run(timeout_s)
