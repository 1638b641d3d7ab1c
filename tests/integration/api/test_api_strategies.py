"""``GET /api/strategies`` against the real broker and a real order store: per-strategy P&L,
trades, win rate, exposure and equity curves, summing to the account's positions.

A module of its own: its fills would change the positions the other API tests expect."""

from __future__ import annotations

from decimal import Decimal

from api_helpers import MINUTE, T0, ApiEnv

from flinktrade.events import Fill, Side


def _fill(n: int, strategy: str, side: Side, qty: str, price: str, commission: str = "0") -> Fill:
    return Fill(
        ts=T0 + n * MINUTE,
        id=f"book-{n}",
        order_id=f"o-{n}",
        client_order_id=f"c-{n}",
        strategy=strategy,
        symbol="AAA",
        side=side,
        qty=Decimal(qty),
        price=Decimal(price),
        commission=Decimal(commission),
    )


def test_strategies_books_sum_to_the_account(api_env: ApiEnv) -> None:
    store = api_env.store()
    try:
        for fill in (
            _fill(1, "trend", Side.BUY, "10", "100.00", commission="0.50"),
            _fill(2, "revert", Side.SELL, "4", "101.00"),
            _fill(3, "trend", Side.SELL, "4", "102.50"),  # realises 4 x 2.50 = 10
        ):
            assert store.add_fill(fill)
        store.adopt_positions({"AAA": Decimal(2), "CCC": Decimal(3)})  # 3 CCC adopted
    finally:
        store.close()
    with api_env.client() as client:
        missing = client.get("/api/strategies")
        response = client.get("/api/strategies", headers=api_env.auth)
        positions = client.get("/api/positions", headers=api_env.auth).json()
    assert missing.status_code == 401
    assert response.status_code == 200, response.text
    books = {b["strategy"]: b for b in response.json()}
    assert list(books) == ["(manual)", "revert", "trend"]
    last = api_env.seeded.bars["AAA"][-1]  # the mark: the last bar's close

    trend = books["trend"]
    [aaa] = trend["positions"]
    assert (aaa["qty"], aaa["avg_cost"]) == ("6", "100.000000")
    assert Decimal(aaa["mark"]) == last.close
    assert Decimal(trend["unrealized_pnl"]) == round((last.close - 100) * 6, 2)
    assert (trend["realized_pnl"], trend["commissions"]) == ("10.00", "0.50")
    assert Decimal(trend["pnl"]) == round(Decimal("9.50") + (last.close - 100) * 6, 2)
    assert Decimal(trend["gross_exposure"]) == round(last.close * 6, 2)
    assert (trend["trades"], trend["win_rate"]) == (0, None)
    # the curve: a point at each fill, then one at the last bar's time
    assert trend["equity"][0] == {"ts": T0 + MINUTE, "equity": "-0.50"}
    assert trend["equity"][-1] == {"ts": last.ts, "equity": trend["pnl"]}

    revert = books["revert"]
    assert Decimal(revert["unrealized_pnl"]) == round((101 - last.close) * 4, 2)
    assert Decimal(revert["net_exposure"]) == round(-last.close * 4, 2)

    manual = books["(manual)"]
    assert [(p["symbol"], p["qty"], p["avg_cost"]) for p in manual["positions"]] == [
        ("CCC", "3", None)
    ]
    assert manual["unpriced"] == ["CCC"]  # no bars for CCC

    # the books add up to the account's positions
    total: dict[str, Decimal] = {}
    for b in books.values():
        for p in b["positions"]:
            total[p["symbol"]] = total.get(p["symbol"], Decimal(0)) + Decimal(p["qty"])
    assert {s: q for s, q in total.items() if q} == {"AAA": Decimal(2), "CCC": Decimal(3)}
    assert {p["symbol"]: Decimal(p["qty"]) for p in positions} == {
        "AAA": Decimal(2),
        "CCC": Decimal(3),
    }
