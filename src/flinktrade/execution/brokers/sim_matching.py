"""The simulated broker's glue over the one matching model (``flinktrade.matching``).

Orders other than a simple market order (and, with ``match_on = bars``, every order) are matched
by the backtester's model. This part keeps the model and the SQLite book in step: ``_restore``
puts the book's working orders back into the model at start (a trailing stop's best price
restarts there); ``_apply`` writes what the model did (the legs it created, as orders of their own
under their parent; statuses; executions into cash and positions) and returns the trade updates
to send once committed. Floats of the model become exact decimals of 6 places (``dec``).
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from flinktrade.events import OrderClass, OrderSpec, OrderStatus, OrderType, Side
from flinktrade.execution.brokers.base import OrderRefused, TradeUpdate
from flinktrade.execution.brokers.sim_book import COLUMNS, SimBook
from flinktrade.execution.settings import SimBrokerSettings, SimMatchOn
from flinktrade.execution.store.records import spec_from_text, spec_text
from flinktrade.matching import Book, Change, Costs, Execution, Order
from flinktrade.orders import Leg
from flinktrade.sessions import Calendar

PRICE_STEP = Decimal("0.000001")


class SimMatching(SimBook):
    """The SQLite book with the matching model beside it, kept in step."""

    def __init__(
        self, path: Path, config: SimBrokerSettings, *, follow_sessions: bool, calendar: Calendar
    ) -> None:
        super().__init__(path, config.starting_cash)
        self.matching = Book(
            Costs(
                per_share=float(config.commission_per_share),
                minimum=float(config.commission_min),
                slippage_bps=float(config.slippage_bps),
            ),
            follow_sessions=follow_sessions,  # as the backtester's --market-hours
            calendar=calendar,
        )
        self._last_ts = 0
        """The newest price time seen: orders are placed at it, prices meet them after it."""
        self.bars = config.match_on is SimMatchOn.BARS
        self._restore()

    def _restore(self) -> None:
        """Put the working orders of the matching model back into it (a restart)."""
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM orders WHERE spec IS NOT NULL"
            " AND status IN ('new', 'partially_filled') ORDER BY created_ms, id"
        ).fetchall()
        for row in rows:
            _oid, coid, symbol, side, qty, _st, filled, _avg, _created, spec_json, parent, leg = row
            spec = spec_from_text(spec_json)
            if spec is None:
                continue
            left = float(Decimal(qty) - Decimal(filled))
            order = Order.of(coid, symbol, Side(side), spec.model_copy(update={"qty": None}), left)
            if parent is not None:  # a leg: no exits of its own, cancelled with its group
                order.spec = None
                order.leg = Leg(leg) if leg else Leg.ENTRY
                order.parent_id = parent
                order.group = parent
            elif spec.oco:  # its stop leg is a row of its own, put back on its own
                order.spec = None
                order.group = coid
            self.matching.submit(order, 0)

    def _apply(self, changes: list[Change]) -> list[TradeUpdate]:
        """Write what the matching model did (new legs, statuses, fills: cash and positions);
        the trade updates to send once committed. Under the lock."""
        events: dict[str, tuple[str, Execution | None]] = {}
        for change in changes:
            if isinstance(change, Execution):
                self._execute(change)
                event = (
                    "fill"
                    if self.matching.orders[change.order_id].remaining <= 0
                    else ("partial_fill")
                )
                events[change.order_id] = (event, change)
                continue
            self._ensure_row(change.order_id)
            self._set_status(change.order_id, change.status.value)
            if change.order_id not in events or events[change.order_id][1] is None:
                events[change.order_id] = (change.status.value, None)
        updates = []
        for coid, (event, execution) in events.items():
            order = self.get_order(coid)
            if order is None:
                continue
            if execution is None:
                updates.append(TradeUpdate(event=event, order=order, ts=now_ms()))
                continue
            updates.append(
                TradeUpdate(
                    event=event,
                    order=order,
                    execution_id=str(uuid.uuid4()),
                    price=dec(execution.price),
                    qty=dec(execution.qty),
                    position_qty=self._position(order.symbol),
                    ts=execution.ts if self.bars else now_ms(),  # bars: the bar's start
                    commission=dec(execution.commission),
                )
            )
        return updates

    def _ensure_row(self, coid: str) -> None:
        """A leg the matching model created: an order row of its own, under its parent."""
        known = self._db.execute("SELECT 1 FROM orders WHERE client_order_id = ?", (coid,))
        if known.fetchone() is not None:
            return
        leg = self.matching.orders[coid]
        spec = OrderSpec(
            type=leg.type,
            time_in_force=leg.time_in_force,
            limit_price=_price(leg.limit_price),
            stop_price=_price(leg.stop_price),
            trail_percent=None if leg.trail_percent is None else dec(leg.trail_percent),
            trail_price=_price(leg.trail_price),
        )
        self._db.execute(
            "INSERT INTO orders (id, client_order_id, symbol, side, qty, status, created_ms,"
            " spec, parent, leg) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()),
                coid,
                leg.symbol,
                leg.side.value,
                str(dec(leg.qty or 0.0)),
                OrderStatus.NEW.value,
                now_ms(),
                spec_text(spec),
                leg.parent_id,
                leg.leg.value,
            ),
        )

    def _execute(self, fill: Execution) -> None:
        """Book one execution of the matching model: cash, position, the order's fill."""
        self._ensure_row(fill.order_id)
        self._book(fill.symbol, fill.side, dec(fill.qty), dec(fill.price), dec(fill.commission))
        order = self.matching.orders[fill.order_id]
        self._db.execute(
            "UPDATE orders SET filled_qty = ?, filled_avg_price = ? WHERE client_order_id = ?",
            (str(dec(order.filled_qty)), str(dec(order.avg_price)), fill.order_id),
        )


def replaced_spec(
    spec: OrderSpec,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    trail: Decimal | None,
) -> OrderSpec:
    """``spec`` with a replace's new prices (``trail`` in the unit the spec trails by);
    ``OrderRefused`` when a field does not fit the order's type."""
    update: dict[str, Any] = {}
    if limit_price is not None:
        if spec.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            raise OrderRefused(f"{spec.type.value} orders have no limit_price to replace")
        update["limit_price"] = limit_price
    if stop_price is not None:
        if spec.type not in (OrderType.STOP, OrderType.STOP_LIMIT):
            raise OrderRefused(f"{spec.type.value} orders have no stop_price to replace")
        update["stop_price"] = stop_price
    if trail is not None:
        if spec.type is not OrderType.TRAILING_STOP:
            raise OrderRefused("trail is only for trailing_stop orders")
        update["trail_percent" if spec.trail_percent is not None else "trail_price"] = trail
    try:
        return OrderSpec.model_validate({**spec.model_dump(), **update})
    except ValueError as exc:
        raise OrderRefused(f"invalid replace: {str(exc).splitlines()[0][:200]}") from None


def simple_market(spec: OrderSpec) -> bool:
    """Whether ``spec`` is a simple market order (with ``match_on = trades``: not matched by the
    model but filled at the next price)."""
    return spec.type is OrderType.MARKET and spec.order_class is OrderClass.SIMPLE


def dec(value: float) -> Decimal:
    """A float of the matching model as an exact decimal of its shortest repr, 6 decimals."""
    return Decimal(repr(value)).quantize(PRICE_STEP)


def _price(value: float | None) -> Decimal | None:
    return None if value is None else dec(value)


def now_ms() -> int:
    """The wall clock in epoch ms (trade updates are stamped with it)."""
    return time.time_ns() // 1_000_000
