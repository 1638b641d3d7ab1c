"""Per-strategy books: one ledger of fills per (strategy, symbol), pure (no I/O, no clock).

Several strategies may trade one symbol; the broker nets them into one position. ``Ledger`` keeps a
book per strategy so each one's position, cost and P&L can be read on its own, and the books add up
to the account: the quantities per symbol sum to the account's position, and realised + unrealised
P&L minus commissions over all books equals the account's P&L (cash paid and received plus the
netted position at the marks).

**Average cost.** A position's cost basis is the signed sum of quantity x price of the shares it
holds. A fill in the position's direction (or from flat) adds to it; a fill against it closes
shares at the average cost (cost basis / quantity) and realises ``(price - average cost) x closed
shares`` for a long, the opposite for a short. A fill that crosses through zero (sell 15 while
long 10) is split: the part up to zero closes the position, the rest opens one in the other
direction at the fill's price (short 5 at the fill price).

**Commissions** are counted apart: ``realized`` is before commissions and a book's P&L is
``realized - commissions + unrealized``.

**Round trips.** A round trip starts when a strategy's position in a symbol leaves zero and closes
when it returns to zero (or crosses it). Its P&L is what it realised minus the commissions of its
fills; a crossing fill's whole commission counts in the trip it closes. A win is a trip whose P&L
is above zero; ``win_rate`` is wins / trips (None before the first closed trip).

**Marks.** Unrealised P&L is ``quantity x mark - cost basis`` at the mark the caller passes, else
at the last price given to ``mark``; a position without a mark has no unrealised P&L (None) and no
exposure. Exposure is ``abs(quantity) x mark`` summed over symbols (gross) or ``quantity x mark``
(net).

**Equity curve.** ``mark(ts, prices)`` records the marks and adds a point (realised - commissions +
unrealised, positions without a mark at cost) to each book whose equity changed since its last
point. Points are in time order (an older ``ts`` counts at the newest point's time; the same
``ts`` replaces that point). A curve holds at most ``max_points``: when full, every second point is
dropped (the first kept), so it keeps its whole span at half the resolution.

**Fills without a strategy** (and positions adopted from the broker, ``set_adopted``) go to the
book ``MANUAL`` so the books still sum to the account. Adopted shares have no known cost: they
count in the quantity held and in exposure, not in P&L.

Money is ``Decimal`` throughout (a 60-digit context, so quantity x price is exact within the
wire's bounds, which ``record`` enforces); views round nothing, ``as_json`` rounds money to the
cent for display.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation, localcontext
from typing import Any

from flinktrade.events import MAX_PRICE, MAX_SIZE, Fill, Side

MANUAL = "(manual)"
"""The book of fills without a strategy and of positions adopted from the broker."""
ZERO = Decimal(0)
CENT = Decimal("0.01")
MAX_POINTS = 500
"""Equity points kept per book by default."""
_CONTEXT = Context(prec=60)


@dataclass(frozen=True)
class EquityPoint:
    """A book's equity (realised - commissions + unrealised) at ``ts`` (epoch ms)."""

    ts: int
    equity: Decimal


@dataclass
class Position:
    """One book's position in one symbol (mutable): a strategy's in ``Ledger``, the account's in
    the API's ``PositionBook``. ``apply`` takes signed shares; ``avg_cost`` is ``cost / qty``."""

    qty: Decimal = ZERO
    """Signed shares with a known cost (from fills)."""
    cost: Decimal = ZERO
    """Signed cost basis of ``qty``: the sum of quantity x price of the shares held."""
    adopted: Decimal = ZERO
    """Signed shares adopted from the broker, of unknown cost."""
    realized: Decimal = ZERO
    commissions: Decimal = ZERO
    trip_pnl: Decimal = ZERO
    trips: int = 0
    wins: int = 0

    def apply(self, signed: Decimal, price: Decimal, commission: Decimal) -> None:
        self.commissions += commission
        self.trip_pnl -= commission
        if self.qty == 0 or (self.qty > 0) == (signed > 0):  # opens or adds
            self.qty += signed
            self.cost += signed * price
            return
        held = abs(self.qty)
        closed = min(abs(signed), held)
        removed = self.cost if closed == held else self.cost * closed / held
        direction = 1 if self.qty > 0 else -1
        gain = (closed * price - abs(removed)) * direction
        self.realized += gain
        self.trip_pnl += gain
        self.qty -= closed * direction
        self.cost -= removed
        if self.qty != 0:
            return
        self.cost = ZERO  # exactly flat: no rounding residue carried into the next trip
        self.trips += 1
        if self.trip_pnl > 0:
            self.wins += 1
        self.trip_pnl = ZERO
        rest = abs(signed) - closed
        if rest:  # crossed through zero: the rest opens the other way at this price
            self.qty = -direction * rest
            self.cost = self.qty * price

    @property
    def avg_cost(self) -> Decimal:
        """The average cost of the shares held (0 when flat)."""
        return self.cost / self.qty if self.qty else ZERO

    def unrealized(self, mark: Decimal | None) -> Decimal | None:
        if self.qty == 0:
            return ZERO
        return None if mark is None else self.qty * mark - self.cost


@dataclass(frozen=True)
class PositionView:
    """One strategy's position in one symbol, valued at ``mark`` (None: no price known)."""

    strategy: str
    symbol: str
    qty: Decimal
    """Shares held (adopted ones included)."""
    avg_cost: Decimal | None
    """Average cost of the shares with a known cost; None when there are none."""
    mark: Decimal | None
    realized: Decimal
    commissions: Decimal
    unrealized: Decimal | None
    trades: int
    wins: int
    adopted: Decimal = ZERO

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None

    @property
    def market_value(self) -> Decimal | None:
        return None if self.mark is None else self.qty * self.mark

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: quantities exact, average cost to 6 decimals, money to the cent."""
        return {
            "symbol": self.symbol,
            "qty": str(self.qty),
            "avg_cost": _fixed(self.avg_cost, Decimal("0.000001")),
            "mark": None if self.mark is None else str(self.mark),
            "realized_pnl": _money(self.realized),
            "commissions": _money(self.commissions),
            "unrealized_pnl": _money(self.unrealized),
            "market_value": _money(self.market_value),
            "trades": self.trades,
            "wins": self.wins,
            "win_rate": _rate(self.win_rate),
            "adopted": str(self.adopted),
        }


@dataclass(frozen=True)
class StrategyView:
    """One book: its positions, P&L, trades, exposure and equity curve."""

    strategy: str
    positions: tuple[PositionView, ...]
    equity: tuple[EquityPoint, ...] = field(default_factory=tuple)

    @property
    def realized(self) -> Decimal:
        return sum((p.realized for p in self.positions), ZERO)

    @property
    def commissions(self) -> Decimal:
        return sum((p.commissions for p in self.positions), ZERO)

    @property
    def unrealized(self) -> Decimal:
        """Over the positions with a mark (``unpriced`` lists the others)."""
        return sum((p.unrealized for p in self.positions if p.unrealized is not None), ZERO)

    @property
    def unpriced(self) -> tuple[str, ...]:
        """Symbols held without a mark: their unrealised P&L and exposure are unknown."""
        return tuple(p.symbol for p in self.positions if p.qty != 0 and p.mark is None)

    @property
    def pnl(self) -> Decimal:
        return self.realized - self.commissions + self.unrealized

    @property
    def trades(self) -> int:
        return sum(p.trades for p in self.positions)

    @property
    def wins(self) -> int:
        return sum(p.wins for p in self.positions)

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None

    @property
    def gross_exposure(self) -> Decimal:
        return sum((abs(v) for p in self.positions if (v := p.market_value) is not None), ZERO)

    @property
    def net_exposure(self) -> Decimal:
        return sum((v for p in self.positions if (v := p.market_value) is not None), ZERO)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: money as strings to the cent, the equity curve as ``{ts, equity}``."""
        return {
            "strategy": self.strategy,
            "pnl": _money(self.pnl),
            "realized_pnl": _money(self.realized),
            "unrealized_pnl": _money(self.unrealized),
            "commissions": _money(self.commissions),
            "trades": self.trades,
            "wins": self.wins,
            "win_rate": _rate(self.win_rate),
            "gross_exposure": _money(self.gross_exposure),
            "net_exposure": _money(self.net_exposure),
            "unpriced": list(self.unpriced),
            "positions": [p.as_json() for p in self.positions],
            "equity": [{"ts": p.ts, "equity": _money(p.equity)} for p in self.equity],
        }


class _Curve:
    """At most ``max_points`` equity points in time order (see the module docstring)."""

    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self.points: list[EquityPoint] = []

    def add(self, ts: int, equity: Decimal) -> None:
        points = self.points
        if points:
            last = points[-1]
            if equity == last.equity:
                return
            if ts <= last.ts:
                points[-1] = EquityPoint(last.ts, equity)
                return
        if len(points) >= self.max_points:
            self.points = points = points[::2]
        points.append(EquityPoint(ts, equity))


class Ledger:
    """Books per strategy over a stream of fills (see the module docstring for the rules)."""

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        if max_points < 2:
            raise ValueError("max_points must be at least 2")
        self.max_points = max_points
        self._books: dict[str, dict[str, Position]] = {}
        self._curves: dict[str, _Curve] = {}
        self._marks: dict[str, Decimal] = {}
        self._holders: dict[str, set[str]] = {}
        """Symbol -> the books holding it (whose equity moves with its mark)."""
        self._changed: set[str] = set()
        """Books changed by a fill or an adoption since their last equity point."""

    # ------------------------------------------------------------------ input

    def apply(self, fill: Fill) -> None:
        """Book one fill in its strategy's book (``MANUAL`` without a strategy)."""
        self.record(fill.strategy, fill.symbol, fill.side, fill.qty, fill.price, fill.commission)

    def record(
        self,
        strategy: str | None,
        symbol: str,
        side: Side,
        qty: Decimal,
        price: Decimal,
        commission: Decimal = ZERO,
    ) -> None:
        """Book one execution of ``qty`` shares at ``price``. ``ValueError`` (and nothing booked)
        for a quantity or price that is not positive or above the wire's bounds (``MAX_SIZE``,
        ``MAX_PRICE``), or a commission that is not finite or above ``MAX_PRICE``."""
        if not (qty.is_finite() and 0 < qty <= MAX_SIZE):
            raise ValueError(f"quantity {qty} is not a positive number up to {MAX_SIZE}")
        if not (price.is_finite() and 0 < price <= MAX_PRICE):
            raise ValueError(f"price {price} is not a positive number up to {MAX_PRICE}")
        if not (commission.is_finite() and abs(commission) <= MAX_PRICE):
            raise ValueError(f"commission {commission} is not a number up to {MAX_PRICE}")
        book = strategy or MANUAL
        position = self._books.setdefault(book, {}).setdefault(symbol, Position())
        with localcontext(_CONTEXT):
            position.apply(qty if side == Side.BUY else -qty, price, commission)
        self._hold(book, symbol, position)
        self._changed.add(book)

    def set_adopted(self, adopted: Mapping[str, Decimal]) -> None:
        """The shares adopted from the broker per symbol, in all (replacing earlier ones): held
        in ``MANUAL`` at no known cost."""
        book = self._books.get(MANUAL)
        if book is None:
            if not any(adopted.values()):
                return
            book = self._books[MANUAL] = {}
        for symbol in sorted(set(book) | set(adopted)):
            position = book.setdefault(symbol, Position())
            qty = adopted.get(symbol, ZERO)
            if position.adopted != qty:
                position.adopted = qty
                self._changed.add(MANUAL)
            self._hold(MANUAL, symbol, position)

    def mark(self, ts: int, prices: Mapping[str, Decimal]) -> None:
        """Take ``prices`` as the symbols' marks and add an equity point at ``ts`` to every book
        whose equity changed since its last point."""
        self._marks.update(prices)
        books = set(self._changed)
        for symbol in prices:
            books |= self._holders.get(symbol, set())
        self._changed.clear()
        for book in sorted(books):
            curve = self._curves.setdefault(book, _Curve(self.max_points))
            curve.add(ts, self._equity(book))

    def _hold(self, book: str, symbol: str, position: Position) -> None:
        holders = self._holders.setdefault(symbol, set())
        if position.qty != 0:
            holders.add(book)
        else:
            holders.discard(book)

    def _equity(self, book: str) -> Decimal:
        total = ZERO
        with localcontext(_CONTEXT):
            for symbol, position in self._books[book].items():
                total += position.realized - position.commissions
                unrealized = position.unrealized(self._marks.get(symbol))
                if unrealized is not None:
                    total += unrealized
        return total

    # ------------------------------------------------------------------ output

    @property
    def marks(self) -> dict[str, Decimal]:
        """The last price given to ``mark`` per symbol."""
        return dict(self._marks)

    def strategies(self) -> list[str]:
        return sorted(self._books)

    def view(self, strategy: str, marks: Mapping[str, Decimal] | None = None) -> StrategyView:
        """One book, valued at ``marks`` (over the marks given to ``mark``)."""
        prices = {**self._marks, **(marks or {})}
        positions = []
        with localcontext(_CONTEXT):
            for symbol in sorted(self._books.get(strategy, {})):
                p = self._books[strategy][symbol]
                mark = prices.get(symbol)
                held = p.qty + p.adopted
                positions.append(
                    PositionView(
                        strategy=strategy,
                        symbol=symbol,
                        qty=held,
                        avg_cost=p.cost / p.qty if p.qty else None,
                        mark=mark if held else None,
                        realized=p.realized,
                        commissions=p.commissions,
                        unrealized=p.unrealized(mark),
                        trades=p.trips,
                        wins=p.wins,
                        adopted=p.adopted,
                    )
                )
        curve = self._curves.get(strategy)
        return StrategyView(strategy, tuple(positions), tuple(curve.points) if curve else ())

    def views(self, marks: Mapping[str, Decimal] | None = None) -> list[StrategyView]:
        """Every book, by name."""
        return [self.view(strategy, marks) for strategy in self.strategies()]

    def positions(self) -> dict[str, Decimal]:
        """Shares per symbol over all books (the account's netted positions); no zeros."""
        totals: dict[str, Decimal] = {}
        for book in self._books.values():
            for symbol, p in book.items():
                totals[symbol] = totals.get(symbol, ZERO) + p.qty + p.adopted
        return {s: q for s, q in sorted(totals.items()) if q != 0}


def ledger_of(fills: Iterable[Fill], max_points: int = MAX_POINTS) -> Ledger:
    """A ledger over ``fills`` in the order given, each marking its symbol at its own price."""
    ledger = Ledger(max_points)
    for fill in fills:
        ledger.apply(fill)
        ledger.mark(fill.ts, {fill.symbol: fill.price})
    return ledger


def _money(value: Decimal | None) -> str | None:
    return _fixed(value, CENT)


def _fixed(value: Decimal | None, step: Decimal) -> str | None:
    if value is None:
        return None
    with localcontext(_CONTEXT):
        try:
            rounded = value.quantize(step)
        except InvalidOperation:  # more digits than the context holds: shown as it is
            return str(value)
    return str(abs(rounded) if rounded == 0 else rounded)  # never "-0.00"


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
