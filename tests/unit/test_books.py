"""The per-strategy ledger (``flinktrade.books``): average cost, realised and unrealised P&L,
commissions, round trips, exposure, the equity curve, and the books summing to the account.

Every expected value is worked out by hand in the comment beside it (or, for the account, from
the cash paid and received), never by the ledger.
"""

from __future__ import annotations

import random
from decimal import Decimal as D

import pytest

from flinktrade.books import MANUAL, EquityPoint, Ledger, StrategyView, ledger_of
from flinktrade.events import Fill, Side

T0 = 1_704_205_800_000

_ids = iter(range(1_000_000))


def fill(
    strategy: str | None,
    side: str,
    qty: str,
    price: str,
    symbol: str = "AAPL",
    commission: str = "0",
    ts: int = T0,
) -> Fill:
    n = next(_ids)
    return Fill(
        ts=ts,
        id=f"x-{n}",
        order_id=f"o-{n}",
        client_order_id=f"c-{n}",
        strategy=strategy,
        symbol=symbol,
        side=Side(side),
        qty=D(qty),
        price=D(price),
        commission=D(commission),
    )


def book(ledger: Ledger, strategy: str, marks: dict[str, D] | None = None) -> StrategyView:
    return ledger.view(strategy, marks)


def test_a_winning_round_trip_with_commissions() -> None:
    ledger = Ledger()
    ledger.apply(fill("a", "buy", "10", "100", commission="1"))
    ledger.apply(fill("a", "sell", "10", "105", commission="1"))
    view = book(ledger, "a")
    [position] = view.positions
    assert position.qty == 0 and position.avg_cost is None
    assert view.realized == D(50)  # 10 x (105 - 100)
    assert view.commissions == D(2)
    assert view.pnl == D(48)
    assert (view.trades, view.wins, view.win_rate) == (1, 1, 1.0)
    assert view.gross_exposure == 0


def test_average_cost_and_unrealised_at_a_mark() -> None:
    ledger = Ledger()
    ledger.apply(fill("a", "buy", "10", "100"))
    ledger.apply(fill("a", "buy", "10", "110"))  # 20 at (1000 + 1100) / 20 = 105
    ledger.apply(fill("a", "sell", "5", "120"))  # realises 5 x (120 - 105) = 75
    view = book(ledger, "a", {"AAPL": D(100)})
    [position] = view.positions
    assert position.qty == 15 and position.avg_cost == D(105)
    assert position.realized == D(75)
    assert position.unrealized == D(-75)  # 15 x (100 - 105)
    assert view.pnl == D(0)
    assert (view.trades, view.win_rate) == (0, None)  # still open: no round trip closed
    assert view.gross_exposure == view.net_exposure == D(1500)  # 15 x 100


def test_a_sell_through_zero_closes_the_long_and_opens_a_short_at_its_price() -> None:
    ledger = Ledger()
    ledger.apply(fill("a", "buy", "10", "100", commission="1"))
    ledger.apply(fill("a", "sell", "15", "90", commission="3"))
    view = book(ledger, "a", {"AAPL": D(85)})
    [position] = view.positions
    assert position.qty == -5 and position.avg_cost == D(90)  # the rest opened at 90
    assert position.realized == D(-100)  # 10 x (90 - 100)
    assert position.unrealized == D(25)  # short 5 from 90, marked at 85
    # the first trip: -100 - 1 - 3 (the crossing fill's whole commission) = -104, a loss
    assert (view.trades, view.wins) == (1, 0)
    ledger.apply(fill("a", "buy", "5", "80", commission="1"))  # closes the short: 5 x (90 - 80)
    view = book(ledger, "a")
    assert view.realized == D(-50)  # -100 + 50
    assert view.commissions == D(5)
    # the second trip: 50 - 1 = 49, a win
    assert (view.trades, view.wins, view.win_rate) == (2, 1, 0.5)


def test_a_short_position() -> None:
    ledger = Ledger()
    ledger.apply(fill("s", "sell", "10", "50"))
    ledger.apply(fill("s", "buy", "4", "45"))  # covers 4: 4 x (50 - 45) = 20
    view = book(ledger, "s", {"AAPL": D(48)})
    [position] = view.positions
    assert position.qty == -6 and position.avg_cost == D(50)
    assert position.realized == D(20)
    assert position.unrealized == D(12)  # 6 x (50 - 48)
    assert view.gross_exposure == D(288) and view.net_exposure == D(-288)  # 6 x 48


def test_two_strategies_trade_one_symbol_in_opposite_directions() -> None:
    ledger = Ledger()
    ledger.apply(fill("trend", "buy", "10", "100"))
    ledger.apply(fill("revert", "sell", "6", "101"))
    assert ledger.positions() == {"AAPL": D(4)}  # the broker nets 10 - 6
    trend, revert = (
        book(ledger, "trend", {"AAPL": D(102)}),
        book(ledger, "revert", {"AAPL": D(102)}),
    )
    assert trend.unrealized == D(20)  # 10 x (102 - 100)
    assert revert.unrealized == D(-6)  # 6 x (101 - 102)
    # the account: paid 1000, received 606, holds 4 at 102 -> -1000 + 606 + 408 = 14
    assert trend.pnl + revert.pnl == D(14)
    ledger.apply(fill("trend", "sell", "10", "103"))
    ledger.apply(fill("revert", "buy", "6", "99"))
    assert ledger.positions() == {}
    assert book(ledger, "trend").realized == D(30)  # 10 x (103 - 100)
    assert book(ledger, "revert").realized == D(12)  # 6 x (101 - 99)
    # the account: -1000 + 606 + 1030 - 594 = 42
    assert sum((v.pnl for v in ledger.views()), D(0)) == D(42)
    assert [(v.strategy, v.trades, v.wins) for v in ledger.views()] == [
        ("revert", 1, 1),
        ("trend", 1, 1),
    ]


def test_partial_fills_close_one_round_trip() -> None:
    ledger = Ledger()
    for qty, price in (("3", "10.00"), ("3", "10.10"), ("4", "10.05")):
        ledger.apply(fill("p", "buy", qty, price))
    [position] = book(ledger, "p").positions
    assert position.avg_cost == D("10.05")  # (30 + 30.30 + 40.20) / 10
    ledger.apply(fill("p", "sell", "5", "10.20"))  # 5 x 0.15 = 0.75
    assert book(ledger, "p").trades == 0  # half closed: the trip is still open
    ledger.apply(fill("p", "sell", "5", "10.30"))  # 5 x 0.25 = 1.25
    view = book(ledger, "p")
    assert view.realized == D("2.00")
    assert (view.trades, view.wins) == (1, 1)


def test_fractional_quantities() -> None:
    ledger = Ledger()
    ledger.apply(fill("f", "buy", "0.5", "200"))  # cost 100
    ledger.apply(fill("f", "buy", "0.25", "204"))  # cost 51: 0.75 for 151
    ledger.apply(fill("f", "sell", "0.3", "210"))  # 63 received - 151 x 0.3 / 0.75 = 60.4 cost
    view = book(ledger, "f", {"AAPL": D(205)})
    [position] = view.positions
    assert position.qty == D("0.45")
    assert position.realized == D("2.6")  # 63 - 60.4
    assert position.unrealized == D("1.65")  # 0.45 x 205 - (151 - 60.4) = 92.25 - 90.6
    assert view.as_json()["positions"][0]["avg_cost"] == "201.333333"  # 90.6 / 0.45 = 151 / 0.75


def test_fills_without_a_strategy_and_adopted_shares_are_the_manual_book() -> None:
    ledger = Ledger()
    ledger.apply(fill("a", "buy", "10", "100"))
    ledger.apply(fill(None, "sell", "10", "104"))  # e.g. a close placed by hand
    ledger.set_adopted({"MSFT": D(3)})
    assert ledger.strategies() == [MANUAL, "a"]
    manual = book(ledger, MANUAL, {"AAPL": D(104), "MSFT": D(400)})
    aapl, msft = manual.positions
    assert (aapl.qty, aapl.avg_cost, aapl.unrealized) == (D(-10), D(104), D(0))
    assert (msft.qty, msft.avg_cost, msft.adopted) == (D(3), None, D(3))
    assert msft.unrealized == 0  # no known cost: not in P&L
    assert msft.market_value == D(1200)  # ... but in exposure
    assert ledger.positions() == {"MSFT": D(3)}  # AAPL nets to zero across the books
    ledger.set_adopted({})  # replaced, not added
    assert ledger.positions() == {}


def test_a_position_without_a_mark_has_no_unrealised_pnl() -> None:
    ledger = Ledger()
    ledger.apply(fill("a", "buy", "2", "50", symbol="AAA"))
    ledger.apply(fill("a", "buy", "1", "20", symbol="BBB"))
    view = book(ledger, "a", {"AAA": D(55)})
    assert [p.unrealized for p in view.positions] == [D(10), None]  # 2 x 5; BBB unknown
    assert view.unpriced == ("BBB",)
    assert view.unrealized == D(10) and view.gross_exposure == D(110)
    assert view.as_json()["positions"][1]["unrealized_pnl"] is None


@pytest.mark.parametrize(
    ("qty", "price", "commission"),
    [
        ("0", "1", "0"),
        ("-1", "1", "0"),
        ("1e13", "1", "0"),  # above MAX_SIZE
        ("1", "0", "0"),
        ("1", "NaN", "0"),
        ("1", "1e400", "0"),  # above MAX_PRICE
        ("1", "1", "Inf"),
        ("1", "1", "-1e400"),
    ],
)
def test_bad_executions_are_refused_and_book_nothing(qty: str, price: str, commission: str) -> None:
    ledger = Ledger()
    with pytest.raises(ValueError):
        ledger.record("a", "AAPL", Side.BUY, D(qty), D(price), D(commission))
    assert ledger.strategies() == [] and ledger.positions() == {}


def test_equity_curve_points_at_marks() -> None:
    fills = [
        fill("a", "buy", "10", "100", ts=T0),
        fill("b", "sell", "5", "100", ts=T0 + 1),
        fill("a", "sell", "10", "103", commission="1", ts=T0 + 2),
    ]
    ledger = ledger_of(fills)
    ledger.mark(T0 + 3, {"AAPL": D(98)})
    a, b = ledger.views()
    # a: 0 at its buy; b's sell marks AAPL at 100 again: a unchanged, no point;
    # a's sell: 10 x 3 - 1 = 29; the mark at 98 moves only b
    assert a.equity == (EquityPoint(T0, D(0)), EquityPoint(T0 + 2, D(29)))
    # b: 0 at its sell; at 103: 5 x (100 - 103) = -15; at 98: 5 x 2 = 10
    assert b.equity == (
        EquityPoint(T0 + 1, D(0)),
        EquityPoint(T0 + 2, D(-15)),
        EquityPoint(T0 + 3, D(10)),
    )


def test_equity_curve_is_bounded_and_keeps_its_span() -> None:
    ledger = Ledger(max_points=4)
    ledger.apply(fill("a", "buy", "1", "100"))
    for k in range(10):
        ledger.mark(T0 + k, {"AAPL": D(100 + k + 1)})  # equity 1, 2, ... 10
    curve = ledger.view("a").equity
    assert len(curve) <= 4
    assert curve[0] == EquityPoint(T0, D(1)) and curve[-1] == EquityPoint(T0 + 9, D(10))
    assert [p.ts for p in curve] == sorted(p.ts for p in curve)
    # an older mark counts at the newest point's time; the same equity adds nothing
    ledger.mark(T0 + 5, {"AAPL": D(120)})
    ledger.mark(T0 + 20, {"AAPL": D(120)})
    assert ledger.view("a").equity[-1] == EquityPoint(T0 + 9, D(20))


def test_as_json_rounds_money_to_the_cent_and_never_shows_minus_zero() -> None:
    ledger = Ledger()
    ledger.apply(fill("a", "buy", "3", "10.001"))
    ledger.apply(fill("a", "sell", "3", "10.000"))  # realises 3 x -0.001 = -0.003
    data = ledger.view("a").as_json()
    assert data["realized_pnl"] == "0.00" and data["pnl"] == "0.00"
    assert data["trades"] == 1 and data["win_rate"] == 0.0


def test_the_books_sum_to_the_account_to_the_cent() -> None:
    """Three strategies and hand trades on two symbols, fractional quantities, commissions, many
    crossings through zero: the books' P&L summed equals the account's, computed from the cash
    flows and the netted position alone."""
    rng = random.Random(19)
    strategies = ["trend", "revert", "breakout", None]
    prices = {"AAA": D("100.00"), "BBB": D("20.00")}
    fills = []
    for k in range(400):
        symbol = rng.choice(sorted(prices))
        prices[symbol] = max(D("1.00"), prices[symbol] + D(rng.randint(-150, 150)) / 100)
        fills.append(
            fill(
                rng.choice(strategies),
                rng.choice(["buy", "sell"]),
                str(D(rng.randint(1, 40)) / 4),  # quarter shares
                str(prices[symbol]),
                symbol=symbol,
                commission=str(D(rng.randint(0, 300)) / 1000),
                ts=T0 + k,
            )
        )
    marks = {symbol: price + D("0.37") for symbol, price in prices.items()}

    cash, held = D(0), {s: D(0) for s in prices}
    for f in fills:
        sign = 1 if f.side == Side.BUY else -1
        cash -= sign * f.qty * f.price + f.commission
        held[f.symbol] += sign * f.qty
    account = cash + sum(held[s] * marks[s] for s in held)

    ledger = Ledger()
    for f in fills:
        ledger.apply(f)
    views = ledger.views(marks)
    assert {v.strategy for v in views} == {"trend", "revert", "breakout", MANUAL}
    books_pnl = sum((v.pnl for v in views), D(0))
    assert round(books_pnl, 2) == round(account, 2)
    assert ledger.positions() == {s: q for s, q in sorted(held.items()) if q != 0}
    assert sum(v.trades for v in views) > 20  # the sequence did cross zero many times
