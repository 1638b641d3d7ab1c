"""In-memory stand-ins for what the executor's core is given (signals, prices, a broker, a sink),
so its decision branches are tested without Kafka. The order store is the real one (a file)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from flinktrade import events
from flinktrade.errors import TransientError
from flinktrade.events import OrderStatus, Side, Signal
from flinktrade.execution.brokers.base import (
    Account,
    Broker,
    BrokerOrder,
    OrderExists,
    OrderRefused,
    OrderRequest,
    OutcomeUnknown,
    ReconnectHandler,
    SendGuard,
    UpdateHandler,
)
from flinktrade.execution.core import ExecutorCore
from flinktrade.execution.market import LastPrices, MarketPrice
from flinktrade.execution.settings import ExecutionSettings, RiskSettings
from flinktrade.execution.source import SignalRecord
from flinktrade.execution.store import OrderStore


class MemorySource:
    """Signals handed in by the test; records what the core reported and when it committed."""

    errors: tuple[type[BaseException], ...] = (ConnectionError,)

    def __init__(self) -> None:
        self.pending: list[SignalRecord] = []
        self.decided_offsets: list[int | None] = []
        self.log: list[str] = []
        self._offsets = itertools.count()

    def add(self, value: bytes) -> SignalRecord:
        record = SignalRecord(value, "signals", 0, next(self._offsets))
        self.pending.append(record)
        return record

    def poll(self, max_records: int, timeout_s: float) -> list[SignalRecord]:
        out, self.pending = self.pending[:max_records], self.pending[max_records:]
        return out

    def decided(self, record: SignalRecord) -> None:
        self.decided_offsets.append(record.offset)
        self.log.append(f"decided {record.offset}")

    def commit(self, *, sync: bool) -> None:
        self.log.append("commit sync" if sync else "commit async")


class StaticPrices:
    """Market prices set by the test."""

    def __init__(self, **prices: str) -> None:
        self.prices = LastPrices()
        for symbol, price in prices.items():
            self.set(symbol, price)

    def set(self, symbol: str, price: str) -> None:
        self.prices.update(MarketPrice(symbol, Decimal(price), events.now_ms()))

    def start(self) -> None:
        pass

    def poll(self, max_records: int = 1000) -> int:
        return 0

    def catch_up(self, timeout_s: float) -> bool:
        return True

    def close(self) -> None:
        pass


@dataclass
class ListSink:
    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def send_raw(self, topic: str, value: bytes, key: bytes | None, ts: int | None) -> None:
        self.sent.append((topic, value))

    def flush(self, timeout_s: float = 60.0) -> None:
        pass


class BookBroker(Broker):
    """A broker that fills market orders at once at ``fill_price`` (other types stay open), or
    fails as told; ``requests`` keeps every request it took."""

    name = "book"

    def __init__(self, fill_price: str = "100") -> None:
        self.fill_price = Decimal(fill_price)
        self.orders: dict[str, BrokerOrder] = {}
        self.held: dict[str, Decimal] = {}
        self.submit_error: Exception | None = None
        self.lookup_error: Exception | None = None
        self.read_error: Exception | None = None
        self.accept_after_error = False
        """With ``submit_error``: the order is taken although the call fails (unknown outcome)."""
        self.equity = Decimal(100_000)
        self.last_equity = Decimal(100_000)
        self.submitted: list[str] = []
        self.requests: list[OrderRequest] = []
        self.refusals: list[str] = []
        self.canceled: list[str] = []
        """The client_order_ids asked to be cancelled, in order."""
        self.cancel_error: Exception | None = None
        self.cancel_confirms = True
        self.replaced: list[str] = []
        """The new client_order_ids of every replace asked for, in order."""
        self.replace_refusal: str | None = None
        self.on_submit: list[str] = []
        """Where each submit is noted (a test may pass the source's log, to see the order)."""

    def submit(self, request: OrderRequest, may_send: SendGuard | None = None) -> BrokerOrder:
        why = may_send() if may_send is not None else None
        if why is not None:
            self.refusals.append(why)
            raise OrderRefused(why)
        self.submitted.append(request.client_order_id)
        self.requests.append(request)
        self.on_submit.append(f"submit {request.client_order_id}")
        if self.submit_error is not None:
            if self.accept_after_error:
                self._take(request)
            raise self.submit_error
        if request.client_order_id in self.orders:
            raise OrderExists(request.client_order_id)
        return self._take(request)

    def _take(self, request: OrderRequest) -> BrokerOrder:
        spec = request.spec
        market = spec.type == "market"
        qty = request.qty
        if qty is None and request.notional is not None:
            qty = request.notional / self.fill_price
        assert qty is not None
        order = BrokerOrder(
            id=f"b-{len(self.orders) + 1}",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            qty=qty,
            status=OrderStatus.FILLED if market else OrderStatus.NEW,
            filled_qty=qty if market else Decimal(0),
            filled_avg_price=self.fill_price if market else None,
            broker_status="filled" if market else "new",
            type=spec.type.value,
            order_class=spec.order_class.value,
        )
        self.orders[request.client_order_id] = order
        if market:
            self.fill_held(request.symbol, request.side, qty)
        return order

    def fill_held(self, symbol: str, side: Side, qty: Decimal) -> None:
        sign = 1 if side == Side.BUY else -1
        held = self.held.get(symbol, Decimal(0)) + sign * qty
        self.held = {s: q for s, q in {**self.held, symbol: held}.items() if q != 0}

    def get_order(self, client_order_id: str) -> BrokerOrder | None:
        if self.lookup_error is not None:
            raise self.lookup_error
        return self.orders.get(client_order_id)

    def cancel(self, client_order_id: str) -> bool:
        order = self.orders.get(client_order_id)
        if self.cancel_error is not None:
            raise self.cancel_error
        self.canceled.append(client_order_id)
        if order is None or order.status.final:
            return False
        if not self.cancel_confirms:
            return True  # taken, but the order stays open (the confirmation never comes)
        gone = replace(order, status=OrderStatus.CANCELED, broker_status="canceled")
        self.orders[client_order_id] = gone
        return True

    def replace(
        self,
        client_order_id: str,
        new_client_order_id: str,
        *,
        qty: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        trail: Decimal | None = None,
    ) -> BrokerOrder:
        """The old order ends canceled (``replaced``), the new one takes its place, open (or
        ``replace_refusal`` is raised, nothing changed)."""
        self.replaced.append(new_client_order_id)
        if self.replace_refusal is not None:
            raise OrderRefused(self.replace_refusal)
        order = self.orders.get(client_order_id)
        if order is None or order.status.final:
            raise OrderRefused(f"replace of {client_order_id}: the order is not open")
        if new_client_order_id in self.orders:
            raise OrderExists(new_client_order_id)
        self.orders[client_order_id] = replace(
            order, status=OrderStatus.CANCELED, broker_status="replaced"
        )
        new = replace(
            order,
            id="b-" + new_client_order_id,
            client_order_id=new_client_order_id,
            qty=order.qty if qty is None else qty,
            limit_price=order.limit_price if limit_price is None else limit_price,
            stop_price=order.stop_price if stop_price is None else stop_price,
            filled_qty=Decimal(0),
            filled_avg_price=None,
        )
        self.orders[new_client_order_id] = new
        return new

    def open_orders(self) -> list[BrokerOrder]:
        if self.read_error is not None:
            raise self.read_error
        return [o for o in self.orders.values() if not o.status.final]

    def positions(self) -> dict[str, Decimal]:
        if self.read_error is not None:
            raise self.read_error
        return dict(self.held)

    def account(self) -> Account:
        return Account(equity=self.equity, last_equity=self.last_equity, cash=self.equity)

    def market_open(self) -> bool:
        return True

    def start_updates(self, on_update: UpdateHandler, on_reconnect: ReconnectHandler) -> None:
        pass

    def close(self) -> None:
        pass


def settings(*, partial_exits: bool = False, **risk: Any) -> ExecutionSettings:
    limits = {"max_signal_age_s": 600.0, "deny_alert_interval_s": 60.0, **risk}
    return ExecutionSettings(
        risk=RiskSettings(**limits), unknown_retry_s=0.01, exits_on_partial_fill=partial_exits
    )


@dataclass
class Rig:
    """A core over a real store in ``tmp`` and the in-memory parts above."""

    core: ExecutorCore
    store: OrderStore
    broker: BookBroker
    source: MemorySource
    prices: StaticPrices
    sink: ListSink

    def decide(self, *signals: Signal) -> None:
        for s in signals:
            self.source.add(events.encode(s))
        self.core.handle_batch(self.source.poll(100, 0))

    def alerts(self) -> list[str]:
        self.core.publish()
        return [
            events.decode(events.Alert, value).kind
            for topic, value in self.sink.sent
            if topic == self.core.config.topics.alerts
        ]


def make_rig(
    tmp: Path,
    *,
    broker: BookBroker | None = None,
    start: bool = True,
    clock: Callable[[], int] = events.now_ms,
    checkpoint: Callable[[str], None] | None = None,
    partial_exits: bool = False,
    **risk: Any,
) -> Rig:
    config = settings(partial_exits=partial_exits, **risk)
    store = OrderStore(tmp / "orders.sqlite", broker="book")
    venue = broker or BookBroker()
    source, prices, sink = MemorySource(), StaticPrices(AAPL="100"), ListSink()
    core = ExecutorCore(
        config,
        venue,
        store,
        source=source,
        market=prices,
        sink=sink,
        sleep=lambda _s: None,
        clock=clock,
        **({} if checkpoint is None else {"checkpoint": checkpoint}),
    )
    if start:
        core.start()
    return Rig(core, store, venue, source, prices, sink)


_SEQ = itertools.count()


def signal(
    side: Side = Side.BUY,
    *,
    symbol: str = "AAPL",
    price: str = "100",
    age_ms: int = 1_000,
    order: dict[str, Any] | None = None,
) -> Signal:
    """A new signal (a new id each call), stamped ``age_ms`` ago, asking for ``order`` (an
    ``OrderSpec``'s fields; None: a plain market order)."""
    ts = events.now_ms() - age_ms
    bar_ts = ts - 60_000
    return Signal(
        id=Signal.make_id("unit", symbol, next(_SEQ)),
        strategy="unit",
        symbol=symbol,
        side=side,
        price=Decimal(price),
        bar_ts=bar_ts,
        ts=ts,
        ingest_ts=ts,
        order=None if order is None else events.OrderSpec.model_validate(order),
    )


__all__ = ["OutcomeUnknown", "TransientError", "make_rig", "signal"]
