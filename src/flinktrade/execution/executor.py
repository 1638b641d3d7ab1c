"""The executor: ``trading.signals`` in, orders at a broker, ``trading.orders``/``trading.fills`` out.

One thread does all the deciding (signals, broker updates, reconciliation), so the store sees one
writer and the order of events is the order of decisions. The broker's stream thread only queues
updates. The executor follows the market price topics itself (``market.PriceFeed``): orders are
sized and risk-checked at its own last market price, never at the signal's. Per signal:

1. decode and validate (``intake``); a record that fails goes to the dead-letter topic with its
   reason, and so does any other failure while deciding on one signal: the loop goes on;
   a ``client_order_id`` (prefix + signal id) already in the store is a repeat: skip;
2. size at the market price, then the risk checks (no I/O); a breach is stored as a ``denied``
   order and alerted;
3. store the intent with its order event (one transaction, fsync); then commit the Kafka offset;
4. mark it ``sending``, ``POST`` it; the broker asks ``may_send`` before every (re)send attempt,
   which re-checks the kill switch and the signal's age; a timeout/5xx/dropped connection is
   *unknown* and is resolved by looking the ``client_order_id`` up, never by sending again blindly;
5. follow the order over the stream (fills deduplicated by execution id and by the cumulative
   filled quantity) and over REST (orders still open, after every reconnect).

The executor writes a heartbeat into the store every ``heartbeat_interval_s`` (``flinktrade
status``). ``alive`` and ``error`` tell whoever runs it in a thread whether it still runs.

Reconciliation (start-up and every ``reconcile_interval_s``): every order the store has not seen
finish is looked up; open orders at the broker that the store does not know, and positions that
differ, block new orders (fail closed) and raise an ``executor.reconciliation_failed`` alert that
says what differs, until a later reconciliation finds nothing.

For crash tests, ``FLINKTRADE_EXECUTOR_CRASH_AT=step:n[,step:n]`` makes the process SIGKILL
itself the n-th time it reaches ``step`` (``intent_stored``, ``offset_committed``,
``request_sent``, ``response_received``).
"""

from __future__ import annotations

import logging
import os
import queue
import signal as signals
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from flinktrade import bus, events
from flinktrade.config import Settings
from flinktrade.errors import ConfigError, TransientError
from flinktrade.events import Alert, DeadLetter, Fill, OrderStatus, Severity, Side
from flinktrade.execution import flatten as flattening
from flinktrade.execution import intake, risk
from flinktrade.execution.brokers.base import (
    Broker,
    BrokerOrder,
    OrderExists,
    OrderRefused,
    OrderRequest,
    OutcomeUnknown,
    TradeUpdate,
)
from flinktrade.execution.market import PriceFeed
from flinktrade.execution.risk import Rule
from flinktrade.execution.settings import ExecutionSettings
from flinktrade.execution.store import OrderStore, Phase, StoredOrder

log = logging.getLogger(__name__)

CRASH_ENV = "FLINKTRADE_EXECUTOR_CRASH_AT"
BATCH = 500


class CrashHook:
    """Kills this process (SIGKILL) at the n-th pass through a named step, for crash tests."""

    def __init__(self, spec: str | None) -> None:
        self.at: dict[str, int] = {}
        self.seen: dict[str, int] = {}
        for part in filter(None, (spec or "").split(",")):
            step, _, n = part.partition(":")
            self.at[step.strip()] = int(n or 1)

    def __call__(self, step: str) -> None:
        if step not in self.at:
            return
        self.seen[step] = self.seen.get(step, 0) + 1
        if self.seen[step] == self.at[step]:
            log.warning("crash hook: SIGKILL at %s #%d", step, self.seen[step])
            logging.shutdown()
            os.kill(os.getpid(), signals.SIGKILL)


@dataclass
class ExecutorStats:
    signals: int = 0
    invalid: int = 0
    dead_letters: int = 0
    repeats: int = 0
    denied: int = 0
    orders_sent: int = 0
    rejected: int = 0
    unknown: int = 0
    fills: int = 0
    alerts: int = 0
    reconciliations: int = 0
    halted: str | None = None
    blocked: str | None = None
    error: str | None = None
    denied_by_rule: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def client_order_id(prefix: str, signal_id: str) -> str:
    """The broker's ``client_order_id`` for a signal: stable, at most 48 characters."""
    return f"{prefix}{signal_id}"[:48]


def _ms() -> int:
    return time.time_ns() // 1_000_000


class Executor:
    """Runs until ``stop`` is set; see the module docstring for the contract."""

    def __init__(
        self,
        settings: Settings,
        broker: Broker,
        *,
        execution: ExecutionSettings | None = None,
        clock: Callable[[], int] = _ms,
    ) -> None:
        self.settings = settings
        self.config: ExecutionSettings = execution or settings.execution
        self.broker = broker
        self.clock = clock
        self.stats = ExecutorStats()
        self.crash = CrashHook(os.environ.get(CRASH_ENV))
        topics = self.config.topics
        self.store = OrderStore(
            self.config.store_path(settings.state_dir),
            broker=broker.name,
            topics={"orders": topics.orders, "fills": topics.fills, "alerts": topics.alerts},
        )
        self._updates: queue.Queue[TradeUpdate] = queue.Queue()
        self._reconnected = threading.Event()
        self._positions: dict[str, Decimal] = {}
        self._last_prices: dict[str, Decimal] = {}  # from our own fills
        self.market = PriceFeed(settings.kafka, list(topics.prices), self.config.price_lookback)
        self.error: BaseException | None = None
        self._alive = False
        self._next_beat = 0.0
        self._blocked: str | None = None
        self._halted_seen: str | None = None
        self._market_open: bool | None = None
        self._equity: Decimal | None = None
        self._alerted: dict[tuple[str, str | None], float] = {}
        self._done: dict[tuple[str, int], int] = {}
        self._next_reconcile = 0.0
        self._next_poll = 0.0
        self._next_account = 0.0
        self._next_halt_check = 0.0
        self._producer = bus.EventProducer(settings.kafka.bootstrap_servers)
        self._consumer: Consumer | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def alive(self) -> bool:
        """Whether ``run`` is running (False before it starts and after it ends or dies)."""
        return self._alive

    def run(self, stop: threading.Event) -> ExecutorStats:
        """Run until ``stop`` is set. An exception that ends it is kept in ``error`` (and as one
        line in ``stats.error``) and raised."""
        self._alive = True
        try:
            try:
                self._start()
                while not stop.is_set():
                    self._tick()
                    self._consume_batch()
                self._publish()
            finally:
                self._close()
        except BaseException as exc:
            self.error = exc
            self.stats.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._alive = False
        return self.stats

    def _start(self) -> None:
        self._positions = self.store.positions()
        for fill in self.store.fills():
            self._last_prices[fill.symbol] = fill.price
        self._halted_seen = self.store.halted()
        self._beat()
        self.market.start()
        self.broker.start_updates(self._updates.put, self._reconnected.set)
        self._refresh_account()
        self._reconcile(startup=True)
        self._publish()
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka.bootstrap_servers,
                "group.id": self.config.group_id,
                # static membership: a restarted executor takes its partitions back at once
                # instead of waiting for the killed one's session to expire
                "group.instance.id": f"{self.config.group_id}-executor",
                "session.timeout.ms": 10_000,
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
                "auto.commit.interval.ms": 1000,
                "auto.offset.reset": self.config.start_from,
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe([self.config.topics.signals])
        self._consumer = consumer
        log.info(
            "executor started: broker %s (%s), store %s, halted=%s, blocked=%s",
            self.broker.name,
            "paper" if self.broker.paper else "LIVE",
            self.store.path,
            self.store.halted(),
            self._blocked,
        )

    def _close(self) -> None:
        try:
            if self._consumer is not None:
                try:
                    self._commit_offsets(sync=True)
                except KafkaException as exc:  # the decisions are stored: repeats are skipped
                    log.warning("executor: final offset commit failed: %s", exc)
                self._consumer.close()
        finally:
            self.market.close()
            self.broker.close()
            try:
                self._publish()
            except TransientError as exc:
                log.warning("executor: records left in the outbox for next start: %s", exc)
            self.stats.halted = self.store.halted()
            self.stats.blocked = self._blocked
            self.store.close()

    # ------------------------------------------------------------------ the loop

    def _beat(self) -> None:
        self._next_beat = time.monotonic() + self.config.heartbeat_interval_s
        self.store.beat(self.clock(), os.getpid())

    def _tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_beat:
            self._beat()
        self.market.poll()
        self._apply_updates()
        if now >= self._next_halt_check:
            self._watch_kill_switch()
            self._next_halt_check = now + 0.25
        if now >= self._next_account:
            self._refresh_account()
        if self._reconnected.is_set():
            self._reconnected.clear()
            self._follow_open_orders()  # events missed while disconnected are not replayed
        elif now >= self._next_poll:
            self._follow_open_orders()
        if now >= self._next_reconcile:
            self._reconcile()
        self._publish()

    def _consume_batch(self) -> None:
        assert self._consumer is not None
        messages = self._consumer.consume(BATCH, timeout=0.1)
        if messages:
            self.market.poll()
        for msg in messages:
            if msg.error() is not None:
                log.warning("executor: consumer error: %s", msg.error())
                continue
            self._handle(msg)
            if self._updates.qsize():
                self._apply_updates()
        if messages:
            self.store.commit()
            self._commit_offsets(sync=False)

    def _mark_done(self, msg: Message) -> None:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is not None and partition is not None and offset is not None:
            self._done[(topic, partition)] = offset + 1

    def _commit_offsets(self, *, sync: bool) -> None:
        """Offsets of signals whose decision is durable; only ever called after a store commit."""
        if self._consumer is None or not self._done:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._done.items()]
        self._consumer.store_offsets(offsets=offsets)
        if sync:
            self._consumer.commit(offsets=offsets, asynchronous=False)

    # ------------------------------------------------------------------ signals

    def _handle(self, msg: Message) -> None:
        """Decide on one signal record; whatever goes wrong with it ends as a dead letter."""
        self.stats.signals += 1
        raw = msg.value() or b""
        parsed = intake.parse(raw)
        if isinstance(parsed, intake.Invalid):
            self.stats.invalid += 1
            self._dead_letter(msg, parsed.reason)
            return
        try:
            self._decide(parsed, msg)
        except (sqlite3.Error, KafkaException):
            raise  # the store or the bus failed, not this signal: stop, restart resumes here
        except Exception as exc:
            log.exception("executor: signal %s at offset %s failed", parsed.id, msg.offset())
            self._dead_letter(msg, f"executor failed on this signal: {type(exc).__name__}: {exc}")

    def _dead_letter(self, msg: Message, reason: str) -> None:
        log.warning(
            "executor: dead letter for %s[%s]@%s: %s",
            msg.topic(),
            msg.partition(),
            msg.offset(),
            reason,
        )
        letter = DeadLetter.of(
            msg.topic() or self.config.topics.signals,
            reason,
            msg.value(),
            ts=self.clock(),
            partition=msg.partition(),
            offset=msg.offset(),
        )
        self.store.add_dead_letter(letter, self.config.topics.deadletter)
        self.stats.dead_letters += 1
        self._mark_done(msg)

    def _decide(self, signal: events.Signal, msg: Message) -> None:
        coid = client_order_id(self.config.client_order_prefix, signal.id)
        if self.store.exists(coid):
            self.stats.repeats += 1
            self._mark_done(msg)
            return
        market = self.market.prices.get(signal.symbol)
        if market is None and self.market.catch_up(2.0):  # the price may be just behind
            market = self.market.prices.get(signal.symbol)
        sizing = self.config.sizing_for(signal.strategy)
        qty = risk.size(signal, sizing, self._equity, market)
        snapshot = self._snapshot()
        decision = risk.check(signal, qty, snapshot, self.config.risk)
        if not decision.allowed:
            self._deny(coid, signal, decision)
            self._mark_done(msg)
            return
        order = self.store.add_intent(
            client_order_id=coid,
            signal=signal,
            symbol=signal.symbol,
            side=signal.side,
            qty=decision.qty,
            notional=None,
            price=market,
        )
        self.crash("intent_stored")
        self._mark_done(msg)
        self._commit_offsets(sync=True)
        self.crash("offset_committed")
        log.info(
            "executor: placing %s %s %s at ~%s (signal %s, %s)",
            signal.side.value,
            decision.qty,
            signal.symbol,
            market,
            signal.id,
            coid,
        )
        self._place(order)

    def _snapshot(self) -> risk.Snapshot:
        now = self.clock()
        open_orders = [
            risk.OpenOrder(
                o.symbol, o.side, max(Decimal(0), (o.qty or Decimal(0)) - o.filled_qty), o.price
            )
            for o in self.store.open_orders()
        ]
        market = self.market.prices.as_dict()
        return risk.Snapshot(
            now_ms=now,
            positions=self._positions,
            open_orders=open_orders,
            last_prices={**self._last_prices, **market},
            market_prices=market,
            sent_last_minute=self.store.sent_since(now - 60_000),
            market_open=self._market_open,
            halted=self.store.halted(),
            blocked=self._blocked,
            equity=self._equity,
        )

    def _deny(self, coid: str, signal: events.Signal, decision: risk.Decision) -> None:
        rule = decision.rule or "unknown"
        self.store.record_denial(
            client_order_id=coid,
            signal=signal,
            qty=decision.qty,
            rule=rule,
            reason=decision.reason or rule,
        )
        self.stats.denied += 1
        self.stats.denied_by_rule[rule] = self.stats.denied_by_rule.get(rule, 0) + 1
        log.info("executor: denied %s %s (%s): %s", signal.symbol, signal.id, rule, decision.reason)
        if rule not in Rule.QUIET:
            self._alert(
                "executor.order_denied",
                f"order for signal {signal.id} ({signal.strategy} {signal.side.value} "
                f"{signal.symbol}) denied by {rule}: {decision.reason}",
                symbol=signal.symbol,
                throttle_key=rule,
            )
        if rule == Rule.ORDER_RATE:
            denials = self.store.denials_since(Rule.ORDER_RATE, self.clock() - 60_000)
            if risk.runaway(denials, self.config.risk):
                self._halt(
                    f"runaway: {denials} signals over the order rate limit "
                    f"({self.config.risk.max_orders_per_minute}/min) in the last minute, "
                    f"latest from strategy {signal.strategy}",
                    value=float(denials),
                    threshold=float(self.config.risk.halt_after_rate_denials),
                )

    # ------------------------------------------------------------------ placing

    def _request(self, order: StoredOrder) -> OrderRequest:
        return OrderRequest(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            qty=order.qty or Decimal(0),
        )

    def _place(self, order: StoredOrder) -> None:
        coid = order.client_order_id
        self.store.mark_sending(coid)
        self.crash("request_sent")
        self.stats.orders_sent += 1
        try:
            placed = self._submit(order)
        except OrderExists:
            log.info("executor: %s already exists at the broker; looking it up", coid)
            self._resolve(coid, allow_resend=False)
            return
        except OrderRefused as exc:
            self.stats.rejected += 1
            self.store.transition(coid, OrderStatus.REJECTED, reason=str(exc))
            self._alert(
                "executor.order_rejected",
                f"broker refused {order.side.value} {order.qty} {order.symbol} ({coid}): {exc}",
                symbol=order.symbol,
                throttle_key="rejected",
            )
            return
        except OutcomeUnknown as exc:
            self.stats.unknown += 1
            log.warning("executor: outcome of %s unknown (%s); looking it up", coid, exc)
            self.store.mark_unknown(coid, f"outcome unknown: {exc}")
            for _ in range(3):
                if self._resolve(coid, allow_resend=False) != "unreachable":
                    return
                time.sleep(self.config.unknown_retry_s)
            return  # still unknown: the poll keeps looking it up, risk counts it as open
        self.crash("response_received")
        self._apply(placed, None)

    def _submit(self, order: StoredOrder) -> BrokerOrder:
        """Send one order; the broker asks ``may_send`` before every attempt (retries too)."""
        coid = order.client_order_id

        def may_send() -> str | None:
            current = self.store.get(coid)
            why = self._resend_refusal(current or order)
            return None if why is None else f"not sent: {why}"

        return self.broker.submit(self._request(order), may_send=may_send)

    def _resolve(self, coid: str, *, allow_resend: bool) -> str:
        """Look an order up by ``client_order_id`` and apply what the broker says.

        Returns ``found``, ``resent``, ``abandoned`` (never reached the broker, not resent),
        ``missing`` (the broker acknowledged it once and now has no record) or ``unreachable``.
        """
        order = self.store.get(coid)
        if order is None or not order.open:
            return "found"
        try:
            found = self.broker.get_order(coid)
        except TransientError as exc:
            log.warning("executor: look-up of %s failed: %s", coid, exc)
            return "unreachable"
        if found is not None:
            self._apply(found, None)
            return "found"
        if order.phase == Phase.ACKED:
            return "missing"
        # The broker has no order with this id: the request never arrived (or is still in
        # flight; the broker refuses a second order with the same client_order_id).
        if not allow_resend:
            return "unreachable"  # right after a failure: the request may be in flight; later
        why = self._resend_refusal(order)
        if why is not None:
            self.store.transition(coid, OrderStatus.CANCELED, reason=f"not sent: {why}")
            return "abandoned"
        log.info("executor: %s never reached the broker; sending it now", coid)
        self._place(order)
        return "resent"

    def _resend_refusal(self, order: StoredOrder) -> str | None:
        """Why ``order`` must not be (re)sent now: the kill switch (flatten orders excepted: they
        are sent while it is on) or its signal's age, judged by the same times as the risk check
        (event time only while ``signal_age_from_event_time`` is on); None when it may go."""
        halted = self.store.halted()
        if halted and order.strategy != flattening.STRATEGY:
            return f"kill switch is on ({halted})"
        limits = self.config.risk
        born = order.born_ms if limits.signal_age_from_event_time else order.created_ms
        return risk.age_problem((born,), self.clock(), limits)

    # ------------------------------------------------------------------ following orders

    def _apply_updates(self) -> None:
        while True:
            try:
                update = self._updates.get_nowait()
            except queue.Empty:
                return
            self._apply(update.order, update)

    def _apply(self, broker_order: BrokerOrder, update: TradeUpdate | None) -> None:
        coid = broker_order.client_order_id
        order = self.store.get(coid)
        if order is None:
            log.warning(
                "executor: broker reports order %s (%s) unknown to the store; "
                "the next reconciliation decides",
                broker_order.id,
                coid,
            )
            self._next_reconcile = min(self._next_reconcile, time.monotonic() + 1.0)
            return
        if broker_order.filled_qty > order.filled_qty and not order.status.final:
            self._record_fill(order, broker_order, update)
        self.store.transition(
            coid,
            broker_order.status,
            broker_order_id=broker_order.id,
            filled_qty=max(order.filled_qty, broker_order.filled_qty),
            filled_avg_price=broker_order.filled_avg_price,
        )

    def _record_fill(
        self, order: StoredOrder, broker_order: BrokerOrder, update: TradeUpdate | None
    ) -> None:
        delta = broker_order.filled_qty - order.filled_qty
        price: Decimal | None = None
        if broker_order.filled_avg_price is not None:
            before = (order.filled_avg_price or Decimal(0)) * order.filled_qty
            price = (broker_order.filled_avg_price * broker_order.filled_qty - before) / delta
        if (price is None or price <= 0) and update is not None:
            price = update.price
        if price is None or price <= 0:
            price = broker_order.filled_avg_price or order.price or Decimal(0)
        if update is not None and update.is_fill and update.execution_id:
            execution_id = update.execution_id
        else:  # learned over REST: a deterministic id, so a replay records it once
            execution_id = f"{broker_order.id}:{broker_order.filled_qty}"
        if self.store.has_fill(execution_id):
            return
        commission = update.commission if update is not None else Decimal(0)
        fill = Fill(
            ts=(update.ts if update is not None and update.ts else self.clock()),
            id=execution_id,
            order_id=broker_order.id,
            client_order_id=order.client_order_id,
            strategy=order.strategy,
            symbol=order.symbol,
            side=order.side,
            qty=delta,
            price=price.quantize(Decimal("0.000001")) if price > 0 else Decimal("0.000001"),
            commission=commission,
            position_qty=update.position_qty if update is not None else None,
            broker=self.broker.name,
        )
        if self.store.add_fill(fill, commit=False):
            sign = 1 if order.side == Side.BUY else -1
            self._positions[order.symbol] = (
                self._positions.get(order.symbol, Decimal(0)) + sign * delta
            )
            if self._positions[order.symbol] == 0:
                del self._positions[order.symbol]
            self._last_prices[order.symbol] = fill.price
            self.stats.fills += 1

    def _follow_open_orders(self) -> None:
        """Look up every order not yet final (missed stream events, unknown outcomes)."""
        self._next_poll = time.monotonic() + self.config.order_poll_interval_s
        grace_ms = 2_000 * self.config.request_timeout_s
        for order in self.store.open_orders():
            # an order whose outcome was unknown and that the broker still does not know after
            # twice the request timeout never arrived: send it again (same client_order_id, so
            # the broker refuses a second one if the first turns up after all)
            settled = self.clock() - order.updated_ms > grace_ms
            allow = order.phase == Phase.INTENT or (
                settled and order.phase in (Phase.SENDING, Phase.UNKNOWN)
            )
            self._resolve(order.client_order_id, allow_resend=allow)

    # ------------------------------------------------------------------ reconciliation

    def _reconcile(self, *, startup: bool = False) -> None:
        self.stats.reconciliations += 1
        differences = self._differences(startup=startup)
        if differences:  # fills may have been in flight between the two reports: look again
            time.sleep(0.3)
            self._apply_updates()
            differences = self._differences(startup=False)
        interval = self.config.reconcile_interval_s
        if differences and any(d.startswith("could not") for d in differences):
            interval = min(interval, 5.0)
        self._next_reconcile = time.monotonic() + interval
        blocked = "; ".join(differences) if differences else None
        if blocked != self._blocked:
            if blocked:
                log.error("executor: reconciliation failed, new orders blocked: %s", blocked)
                self._alert(
                    "executor.reconciliation_failed",
                    f"broker and order store differ; new orders blocked until they agree: "
                    f"{blocked}",
                    severity=Severity.CRITICAL,
                )
            else:
                log.info("executor: reconciliation ok; new orders allowed")
                self._alert(
                    "executor.reconciled",
                    "broker and order store agree again; new orders allowed",
                    severity=Severity.INFO,
                )
        self._blocked = blocked
        self.stats.blocked = blocked
        self.store.commit()

    def _differences(self, *, startup: bool) -> list[str]:
        out: list[str] = []
        for order in self.store.open_orders():
            # at start-up an intent never sent is sent now (the signal's offset is committed)
            allow = order.phase == Phase.INTENT or (startup and order.phase != Phase.ACKED)
            result = self._resolve(order.client_order_id, allow_resend=allow)
            if result == "missing":
                out.append(
                    f"order {order.client_order_id} was acknowledged but the broker has no record"
                )
            elif result == "unreachable":
                out.append(f"could not resolve order {order.client_order_id} (outcome unknown)")
        self._apply_updates()
        try:
            broker_open = self.broker.open_orders()
            broker_positions = self.broker.positions()
        except TransientError as exc:
            return [*out, f"could not reach the broker: {exc}"]
        self._apply_updates()
        for bo in broker_open:
            local = self.store.get(bo.client_order_id)
            if local is None:
                out.append(
                    f"open order {bo.id} ({bo.client_order_id or 'no client id'}: "
                    f"{bo.side.value} {bo.qty} {bo.symbol}) at the broker is not in the store"
                )
            elif local.status.final:
                out.append(
                    f"order {bo.client_order_id} is {local.status.value} in the store "
                    f"but {bo.broker_status} at the broker"
                )
        local_positions = self.store.positions()
        self._positions = dict(local_positions)
        for symbol in sorted(set(local_positions) | set(broker_positions)):
            b = broker_positions.get(symbol, Decimal(0))
            lq = local_positions.get(symbol, Decimal(0))
            if b != lq:
                out.append(f"position {symbol}: broker {b}, store {lq}")
        return out

    # ------------------------------------------------------------------ account, kill switch

    def _refresh_account(self) -> None:
        self._next_account = time.monotonic() + self.config.account_refresh_s
        try:
            account = self.broker.account()
            self._market_open = self.broker.market_open()
        except TransientError as exc:
            log.warning("executor: account refresh failed: %s", exc)
            return
        self._equity = account.equity
        peak_text = self.store.get_value("peak_equity")
        peak = max(Decimal(peak_text) if peak_text else account.equity, account.equity)
        self.store.set_value("peak_equity", str(peak))
        breach = risk.account_breach(account.equity, account.last_equity, peak, self.config.risk)
        if breach is not None and not self.store.halted():
            rule, reason, value, threshold = breach
            self._halt(f"{rule}: {reason}", value=value, threshold=threshold)
        if account.trading_blocked:
            log.warning("executor: the broker reports the account as blocked from trading")

    def _halt(
        self, reason: str, *, value: float | None = None, threshold: float | None = None
    ) -> None:
        if self.store.halted():
            return
        self.store.halt(reason)
        self._halted_seen = reason
        log.error("executor: HALTED: %s", reason)
        self._alert(
            "executor.halt",
            f"trading halted (kill switch set): {reason}. `flinktrade resume` lifts it.",
            severity=Severity.CRITICAL,
            value=value,
            threshold=threshold,
        )
        self.store.commit()

    def _watch_kill_switch(self) -> None:
        halted = self.store.halted()
        if halted == self._halted_seen:
            return
        self._halted_seen = halted
        if halted:
            message = f"kill switch set: {halted}; no new orders"
        else:
            message = "kill switch cleared; new orders allowed"
        log.warning("executor: %s", message)
        self._alert(
            "executor.kill_switch",
            message,
            severity=Severity.CRITICAL if halted else Severity.INFO,
        )
        self.store.commit()

    # ------------------------------------------------------------------ outputs

    def _alert(
        self,
        kind: str,
        message: str,
        *,
        symbol: str | None = None,
        severity: Severity = Severity.WARNING,
        value: float | None = None,
        threshold: float | None = None,
        throttle_key: str | None = None,
    ) -> None:
        if throttle_key is not None:
            key = (f"{kind}:{throttle_key}", symbol)
            now = time.monotonic()
            last = self._alerted.get(key)
            if last is not None and now - last < self.config.risk.deny_alert_interval_s:
                return
            self._alerted[key] = now
        ts = self.clock()
        self.store.add_alert(
            Alert(
                ts=ts,
                id=Alert.make_id(kind, symbol, ts) + f"-{self.stats.alerts}",
                kind=kind,
                severity=severity,
                symbol=symbol,
                message=message,
                value=value,
                threshold=threshold,
            )
        )
        self.stats.alerts += 1

    def _publish(self) -> None:
        """Send what the outbox holds to Kafka, then forget it (at least once)."""
        self.store.commit()
        while True:
            records = self.store.outbox(5000)
            if not records:
                return
            for record in records:
                self._producer.send_raw(record.topic, record.value, record.key, record.ts)
            try:
                self._producer.flush(15.0)
            except TransientError as exc:
                log.warning("executor: publishing failed, will retry: %s", exc)
                return
            self.store.delete_outbox(records[-1].seq)

    # ------------------------------------------------------------------ flatten

    def flatten_plan(self) -> flattening.FlattenPlan:
        """What ``flatten`` would send now (nothing is sent or stored)."""
        return flattening.plan(
            self.broker.positions(),
            self.broker.open_orders(),
            prefix=self.config.client_order_prefix,
            day=flattening.utc_day(self.clock()),
            taken=self.store.exists,
        )

    def flatten(self, timeout_s: float = 60.0) -> list[StoredOrder]:
        """Set the kill switch, then close every position the broker reports with market orders
        that go through the store like any other (so reconciliation stays consistent), and
        follow them until final or ``timeout_s``. The kill switch stays on.

        Idempotent: flatten orders of an earlier run still open in the store are followed (or
        sent, if they never reached the broker) before planning, and the plan counts orders open
        at the broker and uses ids per symbol and UTC day, so a second run never over-sells."""
        self._halt("flatten requested by the operator")
        self.broker.start_updates(self._updates.put, self._reconnected.set)
        placed: list[str] = []
        try:
            for order in self.store.open_orders():
                if order.strategy == flattening.STRATEGY:
                    self._resolve(order.client_order_id, allow_resend=True)
                    placed.append(order.client_order_id)
            self._apply_updates()
            for close in self.flatten_plan().closes:
                order = self.store.add_intent(
                    client_order_id=close.client_order_id,
                    signal=None,
                    strategy=flattening.STRATEGY,
                    symbol=close.symbol,
                    side=close.side,
                    qty=close.qty,
                    notional=None,
                    price=self.market.prices.get(close.symbol)
                    or self._last_prices.get(close.symbol),
                )
                self._place(order)
                placed.append(close.client_order_id)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                self._apply_updates()
                self._publish()
                orders = [self.store.get(c) for c in placed]
                if all(o is not None and not o.open for o in orders):
                    break
                self._follow_open_orders()
                time.sleep(0.2)
        finally:
            self.broker.close()
            self._publish()
        result = [o for o in (self.store.get(c) for c in placed) if o is not None]
        self.store.close()
        return result


def make_broker(settings: Settings, broker: str, *, live: bool = False) -> Broker:
    """The broker named on the command line, configured from the settings."""
    if broker == "sim":
        if live:
            raise ConfigError("--live makes no sense with the simulated broker")
        from flinktrade.execution.brokers.simulated import SimulatedBroker

        return SimulatedBroker(settings)
    if broker == "alpaca":
        from flinktrade.execution.brokers.alpaca import AlpacaBroker

        key = settings.alpaca_api_key_id
        secret = settings.alpaca_api_secret_key
        if key is None or secret is None:
            raise ConfigError("--broker alpaca needs APCA_API_KEY_ID and APCA_API_SECRET_KEY")
        return AlpacaBroker(
            key.get_secret_value(),
            secret.get_secret_value(),
            base_url=settings.alpaca_api_base_url,
            stream_url=settings.alpaca_api_trading_stream_url,
            live=live,
            timeout_s=settings.execution.request_timeout_s,
            max_rate_limit_wait_s=settings.execution.max_rate_limit_wait_s,
            requests_per_minute=settings.execution.trading_requests_per_minute,
        )
    raise ConfigError(f"unknown broker {broker!r} (sim or alpaca)")


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
