"""Deciding on one signal: record -> (dead letter | repeat | denied | intent) -> order.

Per record, in the executor's one deciding thread:

1. decode and validate (``intake``); a record that fails goes to the dead-letter topic with its
   reason, and so does any other failure while deciding on one signal (the store or the signal
   source failing stops the service instead: a restart resumes there);
2. a ``client_order_id`` (prefix + signal id) already in the store is a repeat: skip;
3. size (the signal's ``order``: its ``qty`` or ``notional``, else the executor's sizing at its
   own market price), then the risk checks (no I/O; the order's shape first, by Alpaca's rules;
   the ``session`` rule on ``market_calendar``'s calendar: the broker's, cached, or the refreshed
   or bundled one;
   open exits of the signal's strategy on its symbol and side do not count as already closing
   the position: the order cancels them before it is sent, ``cancelling``);
   a breach is stored as a ``denied`` order and alerted (throttled; a runaway of order-rate
   denials sets the kill switch);
4. store the intent with its order event (one transaction, fsync), then commit the signal's
   offset, then hand the order to the life cycle, which sends it (after cancelling the exits
   in its way; the intent keeps the last fill stored as its ``fill_mark``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from decimal import Decimal

from flinktrade import events, sessions
from flinktrade.events import DeadLetter
from flinktrade.execution import intake, risk
from flinktrade.execution.alerts import Alerter, AlertKind
from flinktrade.execution.book import Book, ExecutorStats
from flinktrade.execution.exits import owns_exits
from flinktrade.execution.guard import TradingGuard
from flinktrade.execution.lifecycle import OrderLifecycle
from flinktrade.execution.market_calendar import MarketCalendar
from flinktrade.execution.risk import Rule
from flinktrade.execution.settings import ExecutionSettings, SessionRule
from flinktrade.execution.source import PriceSource, SignalRecord, SignalSource
from flinktrade.execution.store import OrderStore, StoredOrder

log = logging.getLogger(__name__)

PRICE_CATCH_UP_S = 2.0
"""How long a signal without a market price waits for the price topics to catch up."""


def remaining(order: StoredOrder) -> Decimal:
    """Shares of an open order not filled yet (a notional order's at its price when stored)."""
    qty = order.qty
    if qty is None and order.notional is not None and order.price:
        qty = order.notional / order.price
    return max(Decimal(0), (qty or Decimal(0)) - order.filled_qty)


def client_order_id(prefix: str, signal_id: str) -> str:
    """The broker's ``client_order_id`` for a signal: stable, at most 48 characters."""
    return f"{prefix}{signal_id}"[:48]


class SignalDesk:
    def __init__(
        self,
        *,
        store: OrderStore,
        config: ExecutionSettings,
        clock: Callable[[], int],
        alert: Alerter,
        stats: ExecutorStats,
        book: Book,
        market: PriceSource,
        guard: TradingGuard,
        orders: OrderLifecycle,
        source: SignalSource,
        checkpoint: Callable[[str], None],
        calendar: Callable[[], sessions.Calendar] = sessions.bundled,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.alert = alert
        self.stats = stats
        self.book = book
        self.market = market
        self.guard = guard
        self.orders = orders
        self.source = source
        self.checkpoint = checkpoint
        self.calendar = MarketCalendar(guard.broker, fallback=calendar)
        """The market calendar of the ``session`` rule: the broker's (cached) over ``calendar``
        (the refreshed or bundled one), or ``calendar`` alone."""

    def handle(self, record: SignalRecord) -> None:
        """Decide on one signal record; whatever goes wrong with it ends as a dead letter."""
        self.stats.signals += 1
        parsed = intake.parse(record.value or b"")
        if isinstance(parsed, intake.Invalid):
            self.stats.invalid += 1
            self.dead_letter(record, parsed.reason)
            return
        fatal: tuple[type[BaseException], ...] = (sqlite3.Error, *self.source.errors)
        try:
            self.decide(parsed, record)
        except fatal:
            raise  # the store or the bus failed, not this signal: stop, restart resumes here
        except Exception as exc:
            log.exception("executor: signal %s at offset %s failed", parsed.id, record.offset)
            self.dead_letter(record, f"executor failed on this signal: {type(exc).__name__}: {exc}")

    def dead_letter(self, record: SignalRecord, reason: str) -> None:
        log.warning(
            "executor: dead letter for %s[%s]@%s: %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
        )
        letter = DeadLetter.of(
            record.topic or self.config.topics.signals,
            reason,
            record.value,
            ts=self.clock(),
            partition=record.partition,
            offset=record.offset,
        )
        self.store.add_dead_letter(letter, self.config.topics.deadletter)
        self.stats.dead_letters += 1
        self.source.decided(record)

    def decide(self, signal: events.Signal, record: SignalRecord) -> None:
        coid = client_order_id(self.config.client_order_prefix, signal.id)
        if self.store.exists(coid):
            self.stats.repeats += 1
            self.source.decided(record)
            return
        market = self.market.prices.get(signal.symbol)
        if market is None and self.market.catch_up(PRICE_CATCH_UP_S):  # the price may be behind
            market = self.market.prices.get(signal.symbol)
        spec = signal.order
        qty, notional = self.size(signal, market)
        in_the_way = self.exits_in_the_way(signal)
        snap = self.snapshot(signal, leave_out={o.client_order_id for o in in_the_way})
        decision = risk.check(signal, qty, snap, self.config.risk)
        if not decision.allowed:
            self.deny(coid, signal, decision)
            self.source.decided(record)
            return
        if notional is not None and decision.qty < qty:  # capped (long-only): sell what is held
            notional = None
        order = self.store.add_intent(
            client_order_id=coid,
            signal=signal,
            symbol=signal.symbol,
            side=signal.side,
            qty=None if notional is not None else decision.qty,
            notional=notional,
            price=market,
            spec=spec,
            exits="pending" if spec is not None and owns_exits(spec) else None,
            fill_mark=self.store.last_fill() if in_the_way else None,
        )
        self.checkpoint("intent_stored")
        self.source.decided(record)
        self.source.commit(sync=True)
        self.checkpoint("offset_committed")
        log.info(
            "executor: placing %s %s %s %s at ~%s (signal %s, %s)",
            signal.side.value,
            order.qty if order.qty is not None else f"${order.notional} of",
            order.order.type.value,
            signal.symbol,
            market,
            signal.id,
            coid,
        )
        self.orders.place(order)

    def size(self, signal: events.Signal, market: Decimal | None) -> tuple[Decimal, Decimal | None]:
        """The shares the signal's order is for, and its notional when it asks for one: its
        ``qty``, or its ``notional`` (judged as shares at the market price), or the executor's
        sizing."""
        spec = signal.order
        if spec is not None and spec.qty is not None:
            return spec.qty, None
        if spec is not None and spec.notional is not None:
            if market is None or market <= 0:
                return Decimal(0), spec.notional
            return spec.notional / market, spec.notional
        sizing = self.config.sizing_for(signal.strategy)
        return risk.size(signal, sizing, self.guard.equity, market), None

    def exits_in_the_way(self, signal: events.Signal) -> list[StoredOrder]:
        """The open exits a signal's order would cancel before it is sent (``cancelling``): of
        its strategy, on its symbol and side (it closes what they protect); none for an oco
        exit pair."""
        if signal.order is not None and signal.order.oco:
            return []
        return [
            o
            for o in self.store.open_exits(signal.symbol)
            if o.side == signal.side and o.strategy == signal.strategy
        ]

    def snapshot(
        self,
        signal: events.Signal | None = None,
        leave_out: frozenset[str] | set[str] = frozenset(),
    ) -> risk.Snapshot:
        """What the risk checks judge ``signal`` against, now; the open orders ``leave_out``
        names (exits the order cancels first) do not count as closing the position. The market
        calendar is looked up only for a signal the ``session`` rule judges (a plain order under
        ``auto`` with the Alpaca broker is not: the broker's clock is)."""
        now = self.clock()
        session_rule = self.config.session_rule(self.guard.broker.name)
        calendar = None
        if signal is not None and (
            session_rule is SessionRule.ALL
            or (session_rule is SessionRule.EXTENDED and risk.order_terms(signal)[2])
        ):
            calendar = self.calendar.at(signal.ts)
        open_orders = [
            risk.OpenOrder(o.symbol, o.side, remaining(o), o.price)
            for o in self.store.open_orders()
            if o.client_order_id not in leave_out
        ]
        market = self.market.prices.as_dict()
        return risk.Snapshot(
            now_ms=now,
            positions=self.book.positions,
            open_orders=open_orders,
            last_prices={**self.book.last_prices, **market},
            market_prices=market,
            sent_last_minute=self.store.sent_since(now - 60_000),
            market_open=self.guard.market_open,
            halted=self.store.halted(),
            blocked=self.guard.blocked,
            equity=self.guard.equity,
            session_rule=session_rule,
            calendar=calendar,
            fractional=self.orders.broker.fractional,
        )

    def deny(self, coid: str, signal: events.Signal, decision: risk.Decision) -> None:
        rule = str(decision.rule or "unknown")
        self.store.record_denial(
            client_order_id=coid,
            signal=signal,
            qty=decision.qty,
            rule=rule,
            reason=decision.reason or rule,
            spec=signal.order,
        )
        self.stats.denied += 1
        self.stats.denied_by_rule[rule] = self.stats.denied_by_rule.get(rule, 0) + 1
        log.info("executor: denied %s %s (%s): %s", signal.symbol, signal.id, rule, decision.reason)
        if rule not in risk.QUIET:
            self.alert(
                AlertKind.ORDER_DENIED,
                f"order for signal {signal.id} ({signal.strategy} {signal.side.value} "
                f"{signal.symbol}) denied by {rule}: {decision.reason}",
                symbol=signal.symbol,
                throttle_key=rule,
            )
        if rule == Rule.ORDER_RATE:
            limits = self.config.risk
            denials = self.store.denials_since(Rule.ORDER_RATE, self.clock() - 60_000)
            if risk.runaway(denials, limits):
                self.guard.halt(
                    f"runaway: {denials} signals over the order rate limit "
                    f"({limits.max_orders_per_minute}/min) in the last minute, "
                    f"latest from strategy {signal.strategy}",
                    value=float(denials),
                    threshold=float(limits.halt_after_rate_denials),
                )
