"""A deterministic portfolio simulator: the job's signals and bars in, orders, trades and equity out.

Pure Python, no clock, no I/O. The execution model (see ``docs/backtest.md``):

- a signal is a market order: it fills at the next bar's open (``next_open``, the default) or at
  the close of the bar that triggered it (``close``); a ``next_open`` signal on the last bar of a
  symbol never fills (status ``unfilled``);
- buys fill ``slippage_bps`` above the price, sells that much below it;
- commission per fill: ``commission`` x traded value + ``commission_per_share`` x units;
- sizing: all available equity of the symbol's sleeve in whole units, commission included
  (``int(equity // (price * (1 + commission) + commission_per_share))``);
- ``long_only``: a buy opens a long when flat, a sell closes it; ``reverse``: each signal closes
  the open position and opens the opposite one (always in the market after the first signal);
  a signal on the side already held does nothing;
- cash mode ``sleeves`` (the default): with several symbols the cash is split equally into one
  sleeve per symbol; each sleeve trades its own symbol with all of its equity; portfolio equity is
  the sum of the sleeves;
- cash mode ``shared``: one cash pool for every symbol; an opening order is sized at
  ``position_size`` (default ``1 / number of symbols``) of the portfolio's equity at the fill
  (positions marked at the latest price of each symbol), in whole units, commission included; it
  is ``refused`` (recorded with the amounts) when that costs more than the free cash (cash minus
  what open shorts reserve: equity minus the gross value of the positions); at one instant the
  fills that close positions go first, then the opening ones, symbol by symbol;
- equity is marked to market at every bar close; a position still open at the end stays open
  (it counts in equity, not in the closed-trade statistics), as in backtesting.py;
- a signal with an order (``events.OrderSpec`` other than the plain market order) goes through
  the matching model (``flinktrade.matching``, one ``Book`` per symbol): its entry is placed when a
  plain signal would fill (at the next open, or matched at once against the signal bar's close),
  sized like a plain order at the price it fills at (unless the spec has a qty or a notional),
  and its exits (take-profit, stop-loss, trailing stop) close the position with their reason; an
  ``oco`` spec is the exit pair of the open position on its other side. A signal cancels the
  symbol's working orders before it acts (a signal on the side held, or of a working entry, is
  skipped); a spec ``orders.order_problem`` refuses is ``refused`` with that reason. Plain
  signals fill as above and share the model's costs (``matching.Costs``);
- trades carry their exit reason: ``signal``, ``stop_loss``, ``take_profit``, ``trailing_stop``,
  or ``end`` (still open at the end).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeVar

from flinktrade import events, sessions
from flinktrade.errors import ConfigError
from flinktrade.matching import Book, Change, Costs, Execution, MatchBar
from flinktrade.matching import Order as BookOrder
from flinktrade.orders import Leg, order_problem

PricedBar = MatchBar
"""What the simulation reads of a bar (``events.Bar`` has it, so has the in-process engine's
``PriceBar``): the matching model's bar."""


B = TypeVar("B", bound=PricedBar)


class FillAt(StrEnum):
    NEXT_OPEN = "next_open"
    CLOSE = "close"


class Mode(StrEnum):
    LONG_ONLY = "long_only"
    REVERSE = "reverse"


class CashMode(StrEnum):
    SLEEVES = "sleeves"
    """Equal cash per symbol, each symbol trading alone (the default)."""
    SHARED = "shared"
    """One cash pool; each position sized at ``position_size`` of the portfolio's equity."""


@dataclass(frozen=True)
class ExecutionModel:
    """How signals become fills. Money is in the account currency, commission a fraction."""

    cash: float = 10_000.0
    commission: float = 0.0
    commission_per_share: float = 0.0
    slippage_bps: float = 0.0
    fill: FillAt = FillAt.NEXT_OPEN
    mode: Mode = Mode.LONG_ONLY
    cash_mode: CashMode = CashMode.SLEEVES
    position_size: float | None = None
    """Shared cash: the fraction of equity per position (None: 1 / number of symbols)."""
    commission_min: float = 0.0
    """The least commission an order with a fill pays."""
    volume_share: float | None = None
    """Orders with a spec: at most this fraction of a bar's volume fills per bar (None: all)."""
    follow_sessions: bool = False
    """Orders with a spec meet only bars of sessions they may trade in (the regular one; pre-
    and after-hours too with ``extended_hours``), by ``calendar`` (``--market-hours`` other than
    ``all`` sets it)."""
    calendar: sessions.Calendar | None = field(default=None, compare=False, repr=False)
    """The market calendar orders with a spec follow (a ``day`` order's end, ``opg``/``cls``,
    ``follow_sessions``); None: the bundled one. The command passes the one in effect
    (``calendars.current``: a refreshed file over the bundled calendar)."""

    @property
    def costs(self) -> Costs:
        """The matching model's costs of this execution model."""
        return Costs(
            commission=self.commission,
            per_share=self.commission_per_share,
            minimum=self.commission_min,
            slippage_bps=self.slippage_bps,
            volume_share=self.volume_share,
        )

    def __post_init__(self) -> None:
        if not self.cash > 0:
            raise ConfigError(f"--cash must be positive, got {self.cash}")
        if not 0 <= self.commission < 1:
            raise ConfigError(f"--commission is a fraction in [0, 1), got {self.commission}")
        if self.commission_per_share < 0:
            raise ConfigError(
                f"--commission-per-share must be >= 0, got {self.commission_per_share}"
            )
        if not 0 <= self.slippage_bps < 10_000:
            raise ConfigError(f"--slippage-bps must be in [0, 10000), got {self.slippage_bps}")
        if self.commission_min < 0:
            raise ConfigError(f"--commission-min must be >= 0, got {self.commission_min}")
        if self.volume_share is not None and not 0 < self.volume_share <= 1:
            raise ConfigError(f"--volume-share is a fraction in (0, 1], got {self.volume_share}")
        if self.position_size is not None:
            if self.cash_mode is not CashMode.SHARED:
                raise ConfigError("--position-size goes with --cash-mode shared")
            if not 0 < self.position_size <= 1:
                raise ConfigError(
                    f"--position-size is a fraction of equity in (0, 1], got {self.position_size}"
                )


@dataclass(frozen=True)
class Order:
    """One order derived from a signal (a reversal is two: ``close`` then ``open``; an entry
    with exits adds one ``exit`` order per exit leg)."""

    id: str
    signal_id: str
    strategy: str
    symbol: str
    side: events.Side
    intent: str  # "open" or "close"
    signal_ts: int  # the signal's time (close of the signal bar)
    status: str
    """"filled", "skipped" (nothing to do, or not one unit), "refused" (shared cash: the free
    cash cannot pay for it; or an invalid order spec), "unfilled" (no bar left); orders of the
    matching model also "partially_filled", "canceled", "expired", "new" (still working)."""
    qty: float = 0
    fill_ts: int | None = None  # start of the bar whose open (or close) filled it
    fill_price: float | None = None
    commission: float = 0.0
    reason: str = ""
    type: str = "market"
    time_in_force: str = "day"
    order_class: str = "simple"
    leg: str = ""
    """"entry", "take_profit", "stop_loss", "trailing_stop" for orders of the matching model."""
    parent_id: str = ""
    limit_price: float | None = None
    stop_price: float | None = None
    trail: str = ""
    """A trailing stop's trail: "2%" or "1.5" (a price)."""


@dataclass(frozen=True)
class Trade:
    """A round trip, or the position still open at the end (``exit_ts`` is ``None``)."""

    symbol: str
    direction: str  # "long" or "short"
    size: float
    entry_ts: int
    entry_price: float
    exit_ts: int | None
    exit_price: float | None
    pnl: float | None  # net of both commissions; None while open
    return_pct: float | None
    commission: float  # entry + exit
    exit_reason: str = ""
    """"signal", "stop_loss", "take_profit", "trailing_stop", or "end" (still open)."""


@dataclass(frozen=True)
class EquityPoint:
    ts: int  # bar start
    equity: float
    exposed: bool  # a position was open at this bar's close


@dataclass
class SimulationResult:
    orders: list[Order]
    trades: list[Trade]
    equity: list[EquityPoint]
    """Portfolio equity at each distinct bar start over all symbols, in time order."""
    exposure_bars: int
    """Bars (summed over symbols) at whose close a position was open."""
    total_bars: int
    symbols: list[str]
    first_close: dict[str, float] = field(default_factory=dict)
    last_close: dict[str, float] = field(default_factory=dict)
    closes: dict[str, list[float]] = field(default_factory=dict)
    """Per symbol, the close of each of its bars (for charts)."""
    times: dict[str, list[int]] = field(default_factory=dict)
    """Per symbol, the start of each of its bars (the times of ``closes``)."""


@dataclass
class _Open:
    qty: float  # signed: > 0 long, < 0 short
    entry_ts: int
    entry_price: float
    entry_commission: float


class _Wallet:
    """The cash a sleeve draws on: its own (``sleeves``) or the portfolio's one pool (``shared``,
    with ``weight``: the fraction of equity an opening order is sized at)."""

    def __init__(self, cash: float, weight: float | None = None) -> None:
        self.cash, self.weight = cash, weight
        self.sleeves: list[_Sleeve] = []
        self.marks: dict[str, float] = {}
        """Shared cash: each symbol's latest price (the equity at a fill uses it)."""

    def size(self, unit_cost: float) -> tuple[int, str, str]:
        """(units, status, reason) of an opening order: a status only when it is not filled."""
        if self.weight is None:  # a sleeve: all of its cash
            qty = int(max(0.0, self.cash) // unit_cost)
            return (qty, "", "") if qty > 0 else (0, "skipped", "not enough equity for one unit")
        equity = gross = 0.0
        for sleeve in self.sleeves:  # in symbol order: the same sum every time
            if sleeve.position is not None:
                value = sleeve.position.qty * self.marks[sleeve.symbol]
                equity += value
                gross += abs(value)
        equity += self.cash
        qty = int(max(0.0, self.weight * equity) // unit_cost)
        if qty <= 0:
            return 0, "skipped", "not enough equity for one unit"
        free = equity - gross
        if qty * unit_cost > free:
            return 0, "refused", f"needs {qty * unit_cost:.2f}, {max(free, 0.0):.2f} free cash"
        return qty, "", ""


class _Sleeve:
    """One symbol's position, and the cash it trades with (its own share or the shared pool)."""

    def __init__(
        self, symbol: str, cash: float, model: ExecutionModel, wallet: _Wallet | None = None
    ) -> None:
        self.symbol, self.model = symbol, model
        self.wallet = wallet if wallet is not None else _Wallet(cash)
        self.costs = model.costs
        self.position: _Open | None = None
        self.orders: list[Order] = []
        self.trades: list[Trade] = []
        self.book: Book | None = None
        """The matching model's book: made at the first signal with an order spec."""
        self._booked: dict[str, tuple[events.Signal, str]] = {}
        """Entry and OCO ids in the book -> (their signal, their intent)."""
        self._reasons: dict[str, str] = {}
        self._filled_at: dict[str, int] = {}

    @property
    def cash(self) -> float:
        return self.wallet.cash

    @cash.setter
    def cash(self, value: float) -> None:
        self.wallet.cash = value

    def equity(self, price: float) -> float:
        held = self.position.qty * price if self.position else 0.0
        return self.cash + held

    def _price(self, side: events.Side, price: float) -> float:
        return self.costs.slipped(side, price)

    def _commission(self, qty: float, price: float) -> float:
        fee = self.costs.fee(qty, price)
        return max(fee, self.costs.minimum) if self.costs.minimum else fee

    def closes(self, signal: events.Signal) -> bool:
        """Whether ``signal`` closes the open position at the market (it is on the other side,
        and not an ``oco`` exit pair, which works in the book)."""
        if signal.order is not None and signal.order.oco:
            return False
        want = 1 if signal.side is events.Side.BUY else -1
        return self.position is not None and (self.position.qty > 0) != (want > 0)

    def _entry_working(self, side: events.Side) -> bool:
        """Whether an entry on ``side`` is working in the book (not yet filled)."""
        if self.book is None or not self.book.has_working(self.symbol):
            return False
        return any(o.leg is Leg.ENTRY and o.side is side for o in self.book.working(self.symbol))

    def act(self, signal: events.Signal, price: float, ts: int, closed: bool = False) -> None:
        """Apply ``signal`` at the market ``price`` (before slippage) of the bar starting ``ts``
        (``closed``: its closing fill is done already, only the opening one is left)."""
        spec = signal.order
        if spec is not None and spec != events.PLAIN_ORDER:
            self._act_spec(signal, spec, price, ts, closed)
            return
        want = 1 if signal.side is events.Side.BUY else -1
        held = 0 if self.position is None else (1 if self.position.qty > 0 else -1)
        if closed:
            held = -want
        elif held == want or self._entry_working(signal.side):
            self.orders.append(self._order(signal, "open", "skipped", reason="already in position"))
            return
        elif held != 0:
            self._close(signal, price, ts)
        if self.book is not None and self.book.has_working(self.symbol):
            self._apply(self.book.cancel_all(self.symbol, ts, "a later signal"))
        opens = self.model.mode is Mode.REVERSE or want > 0
        if not opens:
            if held == 0:
                self.orders.append(self._order(signal, "open", "skipped", reason="long only"))
            return
        fill = self._price(signal.side, price)
        unit_cost = fill * (1 + self.model.commission) + self.model.commission_per_share
        qty, status, reason = self.wallet.size(unit_cost)
        if status:
            self.orders.append(self._order(signal, "open", status, reason=reason))
            return
        commission = self._commission(qty, fill)
        signed = qty * want
        self.cash -= signed * fill + commission
        self.position = _Open(signed, ts, fill, commission)
        self.orders.append(self._order(signal, "open", "filled", qty, ts, fill, commission))

    def _close(self, signal: events.Signal, price: float, ts: int) -> None:
        position = self.position
        assert position is not None
        if self.book is not None and self.book.has_working(self.symbol):
            self._apply(self.book.cancel_all(self.symbol, ts, "position closed by a signal"))
        side = events.Side.SELL if position.qty > 0 else events.Side.BUY
        fill = self._price(side, price)
        commission = self._commission(position.qty, fill)
        self.cash += position.qty * fill - commission
        gross = position.qty * (fill - position.entry_price)
        pnl = gross - position.entry_commission - commission
        self.trades.append(
            Trade(
                symbol=self.symbol,
                direction="long" if position.qty > 0 else "short",
                size=abs(position.qty),
                entry_ts=position.entry_ts,
                entry_price=position.entry_price,
                exit_ts=ts,
                exit_price=fill,
                pnl=pnl,
                return_pct=pnl / (abs(position.qty) * position.entry_price) * 100,
                commission=position.entry_commission + commission,
                exit_reason="signal",
            )
        )
        self.position = None
        order = self._order(signal, "close", "filled", abs(position.qty), ts, fill, commission)
        self.orders.append(replace(order, side=side))

    def _order(
        self,
        signal: events.Signal,
        intent: str,
        status: str,
        qty: float = 0,
        fill_ts: int | None = None,
        fill_price: float | None = None,
        commission: float = 0.0,
        reason: str = "",
    ) -> Order:
        return Order(
            id=f"{signal.id}:{intent}",
            signal_id=signal.id,
            strategy=signal.strategy,
            symbol=signal.symbol,
            side=signal.side,
            intent=intent,
            signal_ts=signal.ts,
            status=status,
            qty=qty,
            fill_ts=fill_ts,
            fill_price=fill_price,
            commission=commission,
            reason=reason,
        )

    def all_orders(self) -> list[Order]:
        """Its orders: the plain ones, then the book's."""
        return [*self.orders, *self.book_orders()]

    def all_trades(self) -> list[Trade]:
        """Its closed trades, then the one still open (if any)."""
        still_open = self.open_trade()
        return [*self.trades, *([still_open] if still_open is not None else [])]

    def open_trade(self) -> Trade | None:
        if self.position is None:
            return None
        p = self.position
        return Trade(
            symbol=self.symbol,
            direction="long" if p.qty > 0 else "short",
            size=abs(p.qty),
            entry_ts=p.entry_ts,
            entry_price=p.entry_price,
            exit_ts=None,
            exit_price=None,
            pnl=None,
            return_pct=None,
            commission=p.entry_commission,
            exit_reason="end",
        )

    # -- orders with a spec: the matching model --------------------------------------------------

    def _act_spec(
        self, signal: events.Signal, spec: events.OrderSpec, price: float, ts: int, closed: bool
    ) -> None:
        want = 1 if signal.side is events.Side.BUY else -1
        held = 0 if self.position is None else (1 if self.position.qty > 0 else -1)
        if closed:
            held = -want
        book = self._book()
        problem = order_problem(spec)
        if spec.oco:
            if held != -want or self.position is None:
                reason = "an oco order exits an open position on its other side"
                self._spec_row(signal, spec, "close", "skipped", reason)
                return
            if problem is not None:
                self._spec_row(signal, spec, "close", "refused", problem)
                return
            self._apply(book.cancel_all(self.symbol, ts, "replaced by an oco exit"))
            qty = float(abs(self.position.qty))
            self._submit(
                BookOrder.of(f"{signal.id}:close", self.symbol, signal.side, spec, qty), ts
            )
            self._booked[f"{signal.id}:close"] = (signal, "close")
            return
        if held == want or self._entry_working(signal.side):
            self._spec_row(signal, spec, "open", "skipped", "already in position")
            return
        if held != 0 and not closed:
            self._close(signal, price, ts)
        if book.has_working(self.symbol):
            self._apply(book.cancel_all(self.symbol, ts, "a later signal"))
        if not (self.model.mode is Mode.REVERSE or want > 0):
            if held == 0:
                self._spec_row(signal, spec, "open", "skipped", "long only")
            return
        if problem is not None:
            self._spec_row(signal, spec, "open", "refused", problem)
            return
        order = BookOrder.of(f"{signal.id}:open", self.symbol, signal.side, spec)
        self._booked[order.id] = (signal, "open")
        self._submit(order, ts, price if self.model.fill is FillAt.CLOSE else None)

    def _spec_row(
        self, signal: events.Signal, spec: events.OrderSpec, intent: str, status: str, reason: str
    ) -> None:
        """The row of an order with a spec that never reached the book."""
        self.orders.append(_spec_fields(self._order(signal, intent, status, reason=reason), spec))

    def _book(self) -> Book:
        if self.book is None:
            self.book = Book(
                self.costs,
                sizer=self._size,
                calendar=self.model.calendar,
                follow_sessions=self.model.follow_sessions,
            )
        return self.book

    def _size(self, order: BookOrder, price: float) -> tuple[float, str]:
        unit_cost = price * (1 + self.model.commission) + self.model.commission_per_share
        qty, _status, reason = self.wallet.size(unit_cost)
        return float(qty), reason

    def _submit(self, order: BookOrder, ts: int, price: float | None = None) -> None:
        assert self.book is not None
        self._apply(self.book.submit(order, ts, price))

    def match(self, bar: MatchBar) -> None:
        """The book's working orders against ``bar`` (orders placed before it only)."""
        if self.book is not None and self.book.has_working(self.symbol):
            self._apply(self.book.on_bar(bar))

    def _apply(self, changes: list[Change]) -> None:
        for change in changes:
            if isinstance(change, Execution):
                self._filled_at.setdefault(change.order_id, change.ts)
                self._execute(change)
            elif change.reason:
                self._reasons[change.order_id] = change.reason

    def _execute(self, fill: Execution) -> None:
        signed = _units(fill.qty if fill.side is events.Side.BUY else -fill.qty)
        position = self.position
        if fill.leg is Leg.ENTRY and self._booked.get(fill.order_id, (None, ""))[1] == "open":
            self.cash -= signed * fill.price + fill.commission
            if position is None:
                self.position = _Open(signed, fill.ts, fill.price, fill.commission)
            else:
                total = position.qty + signed
                position.entry_price = (
                    position.entry_price * position.qty + fill.price * signed
                ) / total
                position.qty = _units(total)
                position.entry_commission += fill.commission
            return
        if position is None or (position.qty > 0) == (signed > 0):
            return  # cannot happen: exits follow their entry's position
        qty = min(abs(signed), abs(position.qty))
        part = qty / abs(position.qty)
        entry_commission = position.entry_commission * part
        long = position.qty > 0
        held = qty if long else -qty
        self.cash += held * fill.price - fill.commission
        pnl = held * (fill.price - position.entry_price) - entry_commission - fill.commission
        reason = fill.exit_reason.value if fill.exit_reason is not None else "signal"
        self.trades.append(
            Trade(
                symbol=self.symbol,
                direction="long" if long else "short",
                size=_units(qty),
                entry_ts=position.entry_ts,
                entry_price=position.entry_price,
                exit_ts=fill.ts,
                exit_price=fill.price,
                pnl=pnl,
                return_pct=pnl / (qty * position.entry_price) * 100,
                commission=entry_commission + fill.commission,
                exit_reason=reason,
            )
        )
        if qty >= abs(position.qty):
            self.position = None
        else:
            position.qty = _units(position.qty - held)
            position.entry_commission -= entry_commission

    def book_orders(self) -> list[Order]:
        """The orders the book took, as rows (their final status, or ``new`` while working)."""
        if self.book is None:
            return []
        rows = []
        for o in self.book.orders.values():
            root = o.parent_id or o.id
            signal, intent = self._booked[root]
            spec = self.book.orders[root].spec
            filled = o.filled_qty > 0
            rows.append(
                Order(
                    id=o.id,
                    signal_id=signal.id,
                    strategy=signal.strategy,
                    symbol=self.symbol,
                    side=o.side,
                    intent=intent if o.parent_id is None else "exit",
                    signal_ts=signal.ts,
                    status=o.status.value,
                    qty=_units(o.filled_qty if filled else (o.qty or 0.0)),
                    fill_ts=self._filled_at.get(o.id),
                    fill_price=o.avg_price if filled else None,
                    commission=o.commission,
                    reason=self._reasons.get(o.id, ""),
                    type=o.type.value,
                    time_in_force=o.time_in_force.value,
                    order_class=spec.order_class.value if spec is not None else "",
                    leg=o.leg.value,
                    parent_id=o.parent_id or "",
                    limit_price=o.limit_price,
                    stop_price=o.stop_price,
                    trail=_trail(o.trail_percent, o.trail_price),
                )
            )
        return rows


def _units(qty: float) -> float:
    """A quantity as an int when it is whole (so whole units print as before: ``82``)."""
    return int(qty) if float(qty).is_integer() else qty


def _trail(percent: float | None, price: float | None) -> str:
    if percent is not None:
        return f"{percent:g}%"
    return "" if price is None else f"{price:g}"


def _spec_fields(order: Order, spec: events.OrderSpec) -> Order:
    """``order`` with the type, prices and class ``spec`` asked for (a refused order's row)."""
    return replace(
        order,
        type=spec.type.value,
        time_in_force=spec.time_in_force.value,
        order_class=spec.order_class.value,
        leg=Leg.ENTRY.value,
        limit_price=None if spec.limit_price is None else float(spec.limit_price),
        stop_price=None if spec.stop_price is None else float(spec.stop_price),
        trail=_trail(
            None if spec.trail_percent is None else float(spec.trail_percent),
            None if spec.trail_price is None else float(spec.trail_price),
        ),
    )


def dedupe_bars(bars: Iterable[B]) -> dict[str, list[B]]:
    """Per symbol, one bar per start time (the first seen; the job's output is at-least-once),
    sorted by time."""
    out: dict[str, dict[int, B]] = {}
    for bar in bars:
        out.setdefault(bar.symbol, {}).setdefault(bar.ts, bar)
    return {s: [by_ts[t] for t in sorted(by_ts)] for s, by_ts in sorted(out.items())}


def dedupe_signals(signals: Iterable[events.Signal]) -> list[events.Signal]:
    """One signal per id, in (bar time, symbol, strategy) order."""
    seen: dict[str, events.Signal] = {}
    for signal in signals:
        seen.setdefault(signal.id, signal)
    return sorted(seen.values(), key=lambda s: (s.bar_ts, s.symbol, s.strategy, s.id))


def simulate(
    bars: Iterable[PricedBar], signals: Iterable[events.Signal], model: ExecutionModel
) -> SimulationResult:
    """Run the execution model over the bars and signals of one backtest."""
    by_symbol = dedupe_bars(bars)
    if not by_symbol:
        raise ConfigError("the backtest input has no bars")
    if model.cash_mode is CashMode.SLEEVES:
        return gather(run_sleeves(by_symbol, signals, model, len(by_symbol)))
    sleeves, equity, exposure = _run_shared(by_symbol, _pending(signals), model)
    return _result(
        [o for s in sleeves for o in s.all_orders()],
        [t for s in sleeves for t in s.all_trades()],
        equity,
        exposure,
        sum(len(series) for series in by_symbol.values()),
        {s: [bar.ts for bar in b] for s, b in by_symbol.items()},
        {s: [float(bar.close) for bar in b] for s, b in by_symbol.items()},
    )


@dataclass
class SleeveRun:
    """One symbol's sleeve run on its own ``cash`` (cash mode ``sleeves``): what the portfolio's
    result takes of it. Its per-bar values are columns, so a worker process of the in-process
    engine hands it back cheaply (``inprocess.replay``)."""

    symbol: str
    cash: float
    orders: list[Order]
    trades: list[Trade]
    """The closed trades, then the one still open (if any)."""
    times: array[int]
    """The start of each of its bars."""
    closes: array[float]
    equity: array[float]
    """The sleeve's equity at each bar's close."""
    exposed: bytearray
    """1 where a position was open at the bar's close."""


def run_sleeves(
    by_symbol: dict[str, list[B]],
    signals: Iterable[events.Signal],
    model: ExecutionModel,
    symbols: int,
) -> list[SleeveRun]:
    """The sleeves of ``by_symbol`` (one symbol's bars each, as ``dedupe_bars`` gives them), each
    on ``model.cash / symbols``: ``symbols`` counts every symbol of the backtest, including those
    another process runs."""
    pending = _pending(signals)
    share = model.cash / symbols
    return [
        _run_sleeve(symbol, share, series, pending.get(symbol, {}), model)
        for symbol, series in by_symbol.items()
    ]


def gather(runs: Sequence[SleeveRun]) -> SimulationResult:
    """The portfolio of ``runs`` (in symbol order): the sum of their equity, their orders and
    trades in the result's order."""
    if not runs:
        raise ConfigError("the backtest input has no bars")
    return _result(
        [o for run in runs for o in run.orders],
        [t for run in runs for t in run.trades],
        _combine([(run.times, run.equity, run.exposed, run.cash) for run in runs]),
        sum(run.exposed.count(1) for run in runs),
        sum(len(run.times) for run in runs),
        {run.symbol: run.times.tolist() for run in runs},
        {run.symbol: run.closes.tolist() for run in runs},
    )


def _pending(signals: Iterable[events.Signal]) -> dict[str, dict[int, list[events.Signal]]]:
    """Per symbol and bar start, its signals (``dedupe_signals``' order)."""
    pending: dict[str, dict[int, list[events.Signal]]] = {}
    for signal in dedupe_signals(signals):
        pending.setdefault(signal.symbol, {}).setdefault(signal.bar_ts, []).append(signal)
    return pending


def _result(
    orders: list[Order],
    trades: list[Trade],
    equity: list[EquityPoint],
    exposure: int,
    total: int,
    times: dict[str, list[int]],
    closes: dict[str, list[float]],
) -> SimulationResult:
    """The result of the sleeves' ``orders`` and ``trades`` (each in sleeve order) and per symbol
    its bars' ``times`` and ``closes``."""
    orders.sort(key=lambda o: (o.signal_ts, o.symbol, o.intent != "close", o.id))
    trades.sort(key=lambda t: (t.entry_ts, t.symbol))
    return SimulationResult(
        orders=orders,
        trades=trades,
        equity=equity,
        exposure_bars=exposure,
        total_bars=total,
        symbols=list(times),
        first_close={s: c[0] for s, c in closes.items()},
        last_close={s: c[-1] for s, c in closes.items()},
        closes=closes,
        times=times,
    )


def _run_sleeve(
    symbol: str,
    cash: float,
    series: Sequence[PricedBar],
    signals: dict[int, list[events.Signal]],
    model: ExecutionModel,
) -> SleeveRun:
    sleeve = _Sleeve(symbol, cash, model)
    times: array[int] = array("q")
    closes: array[float] = array("d")
    equity: array[float] = array("d")
    exposed = bytearray()
    queued: list[events.Signal] = []
    for bar in series:
        for signal in queued:  # next_open: signals of the previous bar fill at this open
            sleeve.act(signal, float(bar.open), bar.ts)
        queued = []
        if sleeve.book is not None:  # orders with a spec: the matching model
            sleeve.match(bar)
        for signal in signals.get(bar.ts, []):
            if model.fill is FillAt.CLOSE:
                sleeve.act(signal, float(bar.close), bar.ts)
            else:
                queued.append(signal)
        close = float(bar.close)
        times.append(bar.ts)
        closes.append(close)
        equity.append(sleeve.equity(close))
        exposed.append(sleeve.position is not None)
    for signal in queued:
        sleeve.orders.append(
            sleeve._order(signal, "open", "unfilled", reason="no bar after the signal")
        )
    known = set(times)
    for bar_ts, orphans in sorted(signals.items()):
        if bar_ts not in known:  # cannot happen with the job's output; reported, not dropped
            for signal in orphans:
                reason = "signal bar not in the input"
                sleeve.orders.append(sleeve._order(signal, "open", "skipped", reason=reason))
    return SleeveRun(
        symbol=symbol,
        cash=cash,
        orders=sleeve.all_orders(),
        trades=sleeve.all_trades(),
        times=times,
        closes=closes,
        equity=equity,
        exposed=exposed,
    )


def _run_shared(
    by_symbol: dict[str, list[PricedBar]],
    pending: dict[str, dict[int, list[events.Signal]]],
    model: ExecutionModel,
) -> tuple[list[_Sleeve], list[EquityPoint], int]:
    """Every symbol on one cash pool, in time order: (the sleeves, the equity, exposed bars).

    At each bar start ``t``: the opens of the bars starting at ``t`` become the marks, and the
    signals of each symbol's previous bar fill there (``next_open``); then the closes become the
    marks and the signals of the bars at ``t`` fill at them (``close``); the equity is taken. At
    each of those two instants the closing fills of every symbol go first, then the opening ones,
    by symbol and signal order."""
    wallet = _Wallet(model.cash, model.position_size or 1 / len(by_symbol))
    sleeves = {symbol: _Sleeve(symbol, 0.0, model, wallet) for symbol in by_symbol}
    wallet.sleeves = list(sleeves.values())
    at: dict[int, list[tuple[str, PricedBar]]] = {}
    for symbol, series in by_symbol.items():
        for bar in series:
            at.setdefault(bar.ts, []).append((symbol, bar))
    queued: dict[str, list[events.Signal]] = {}
    equity: list[EquityPoint] = []
    exposure = 0
    for ts in sorted(at):
        now = at[ts]
        opens: list[tuple[_Sleeve, events.Signal, float]] = []
        for symbol, bar in now:
            wallet.marks[symbol] = float(bar.open)
            opens += [(sleeves[symbol], s, float(bar.open)) for s in queued.pop(symbol, [])]
        _fill_together(opens, ts)
        for symbol, bar in now:  # orders with a spec: the matching model
            sleeves[symbol].match(bar)
        closes: list[tuple[_Sleeve, events.Signal, float]] = []
        for symbol, bar in now:
            close = float(bar.close)
            wallet.marks[symbol] = close
            for signal in pending.get(symbol, {}).get(bar.ts, []):
                if model.fill is FillAt.CLOSE:
                    closes.append((sleeves[symbol], signal, close))
                else:
                    queued.setdefault(symbol, []).append(signal)
        _fill_together(closes, ts)
        exposure += sum(1 for symbol, _bar in now if sleeves[symbol].position is not None)
        value = wallet.cash
        for sleeve in wallet.sleeves:
            if sleeve.position is not None:
                value += sleeve.position.qty * wallet.marks[sleeve.symbol]
        exposed = any(sleeve.position is not None for sleeve in wallet.sleeves)
        equity.append(EquityPoint(ts, value, exposed))
    for symbol, signals in queued.items():
        sleeve = sleeves[symbol]
        for signal in signals:
            sleeve.orders.append(
                sleeve._order(signal, "open", "unfilled", reason="no bar after the signal")
            )
    for symbol, sleeve in sleeves.items():
        known = {bar.ts for bar in by_symbol[symbol]}
        for bar_ts, orphans in sorted(pending.get(symbol, {}).items()):
            if bar_ts not in known:  # cannot happen with the job's output; reported, not dropped
                for signal in orphans:
                    reason = "signal bar not in the input"
                    sleeve.orders.append(sleeve._order(signal, "open", "skipped", reason=reason))
    return list(sleeves.values()), equity, exposure


def _fill_together(fills: list[tuple[_Sleeve, events.Signal, float]], ts: int) -> None:
    """Fills at one instant on the shared cash: every closing fill first (the first signal of a
    symbol on the other side of its position closes it), then each signal's opening fill."""
    fills.sort(key=lambda f: f[0].symbol)  # stable: a symbol's signals keep their order
    closer: dict[str, int] = {}
    for i, (sleeve, signal, price) in enumerate(fills):
        if sleeve.symbol not in closer and sleeve.closes(signal):
            sleeve._close(signal, price, ts)
            closer[sleeve.symbol] = i
    for i, (sleeve, signal, price) in enumerate(fills):
        first = closer.get(sleeve.symbol, -1)
        if i < first:  # on the side of the position its closing signal (later) found
            reason = "already in position"
            sleeve.orders.append(sleeve._order(signal, "open", "skipped", reason=reason))
        else:
            sleeve.act(signal, price, ts, closed=i == first)


def buy_and_hold(result: SimulationResult, cash: float) -> list[float]:
    """At each point of ``result.equity``, the value of ``cash`` split equally over the symbols
    and invested (fractionally, no commission) at each one's first close: the benchmark line."""
    share = cash / len(result.symbols) if result.symbols else 0.0
    curves = [
        (
            result.times.get(symbol, []),
            [share * close / result.first_close[symbol] for close in result.closes.get(symbol, [])],
            bytes(len(result.times.get(symbol, []))),
            share,
        )
        for symbol in result.symbols
        if result.first_close.get(symbol)
    ]
    if not curves:
        return []
    combined = {p.ts: p.equity for p in _combine(curves)}
    return [combined.get(p.ts, cash) for p in result.equity]


Curve = tuple[Sequence[int], Sequence[float], Sequence[int], float]
"""A sleeve's equity: its bars' start times, its equity at each, whether it was exposed at each,
and the cash it held before its first bar."""


def _combine(curves: Sequence[Curve]) -> list[EquityPoint]:
    """Sum the sleeves' equity at every bar start of any symbol (a sleeve's last value carries
    forward; before its first bar it holds its cash), in sleeve order."""
    stamps = sorted({ts for times, _e, _x, _c in curves for ts in times})
    if all(len(times) == len(stamps) for times, _e, _x, _c in curves):
        # every sleeve has a bar at every stamp (its times are distinct): the columns line up
        sums = map(sum, zip(*(equity for _t, equity, _x, _c in curves), strict=True))
        anys = map(any, zip(*(exposed for _t, _e, exposed, _c in curves), strict=True))
        return [EquityPoint(ts, t, x) for ts, t, x in zip(stamps, sums, anys, strict=True)]
    position = [0] * len(curves)
    latest = [cash for _t, _e, _x, cash in curves]
    exposed = [False] * len(curves)
    out: list[EquityPoint] = []
    for ts in stamps:
        for i, (times, equity, flags, _cash) in enumerate(curves):
            while position[i] < len(times) and times[position[i]] <= ts:
                latest[i], exposed[i] = equity[position[i]], bool(flags[position[i]])
                position[i] += 1
        out.append(EquityPoint(ts, sum(latest), any(exposed)))
    return out
